"""The display pays for JPEG only while someone watches (#20): a display process fed composited frames encodes none
with no viewer, and a viewer that connects gets the stream's next frame at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from dogfilter.common.transport import wire
from dogfilter.common.transport.protocol import send
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.sockets import make_socket
from tests.conftest import ROOT, free_port, read_index, read_stats, stamp_index, wait_for

pytestmark = pytest.mark.system


def _jpegs(stats: dict) -> int:
    return stats["counters"]["display"].get("jpeg_encoded", 0)


@pytest.mark.timeout(90)
def test_a_display_encodes_jpeg_only_while_a_viewer_watches(tmp_path: Path) -> None:
    secret, stats, port = tmp_path / "secret", tmp_path / "stats.json", free_port()
    secret.write_text("5e" * 32)
    secret.chmod(0o600)
    env = {**os.environ, "DOGFILTER_MODE": "live", "DOGFILTER_SECRET_FILE": str(secret),
           "DOGFILTER_DISPLAY_ADDR": f"ipc://{tmp_path}/display", "DOGFILTER_RETURNS_ADDR": f"ipc://{tmp_path}/ret"}
    p = subprocess.Popen([sys.executable, "-m", "dogfilter.services.display", "--http-port", str(port),
                          "--stats-out", str(stats)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    sealer = Sealer.from_file(secret)
    feed = make_socket(zmq.Context.instance(), zmq.PUSH)
    feed.connect(f"ipc://{tmp_path}/display")
    sent, stop = [0], threading.Event()

    def composite() -> None:  # 30 frames/s of one stream, each numbered
        img = np.full((240, 320, 3), 90, np.uint8)
        while not stop.is_set():
            stamp_index(img, sent[0])
            m = wire.Message("composited", "cam0", sent[0], 1, image=img, meta={"fps": 30.0})
            m.stamp("capture")
            send(feed, sealer.seal(m), timeout_s=0.5)
            sent[0] += 1
            time.sleep(1 / 30)

    feeder = threading.Thread(target=composite, daemon=True)
    feeder.start()
    try:
        wait_for(stats, lambda s: s["frames"] >= 60, timeout=45)  # two seconds of video shown, nobody watching
        assert _jpegs(read_stats(stats)) == 0
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(f"GET /frame/cam0.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        waited, now = time.monotonic() - t0, sent[0]
        head, body = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head[:80]
        got = read_index(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
        assert now - got <= 10 and waited < 1.0, (got, now, waited)  # the next frame, not a stored one
        s = wait_for(stats, lambda s: _jpegs(s) >= 1, timeout=10)
        assert _jpegs(s) <= s["frames"]
    finally:
        stop.set()
        feeder.join(5)
        feed.close(linger=0)
        p.terminate()
        p.wait(10)
    assert "Traceback" not in p.stderr.read()
