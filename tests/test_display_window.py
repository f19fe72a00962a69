"""The display's OpenCV window on a real (virtual) screen: it shows the frames and `q` quits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from dogfilter.common.transport import wire
from dogfilter.common.transport.protocol import send
from dogfilter.common.transport.seal import Sealer
from tests.conftest import ROOT

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]


def _x(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True,
                          text=True, timeout=10).stdout.strip()


@pytest.fixture
def screen():
    if not (shutil.which("Xvfb") and shutil.which("xdotool")):
        pytest.skip("Xvfb and xdotool are not installed (apt-get install xvfb xdotool): no virtual screen")
    display = f":{50 + os.getpid() % 200}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    yield display
    xvfb.terminate()
    xvfb.wait(5)


def test_window_shows_frames_and_q_quits(screen, tmp_path) -> None:
    addr = f"ipc://{tmp_path}/display"
    env = {**os.environ, "DISPLAY": screen, "DOGFILTER_DISPLAY_ADDR": addr}
    secret = tmp_path / "secret"
    secret.write_text("ab" * 32)
    secret.chmod(0o600)
    sealer = Sealer.from_file(secret)
    cmd = [sys.executable, "-m", "dogfilter.services.display", "--window", "--stats-out", str(tmp_path / "s.json"),
           "--secret-file", str(secret)]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(addr)
        for i in range(5):
            msg = wire.Message("composited", "t", i, 1, image=np.full((240, 320, 3), 40 * i, np.uint8))
            msg.stamp("composite")
            send(push, sealer.seal(msg), block=True)
        win = ""
        for _ in range(50):
            win = _x(screen, "search", "--onlyvisible", "--name", "^dogfilter t$")
            if win:
                break
            time.sleep(0.2)
        assert win, "no window titled 'dogfilter t' (the stream's name) appeared"
        w, h = (int(v) for v in _x(screen, "getwindowgeometry", "--shell", win.split()[0]).split("WIDTH=")[1]
                .replace("HEIGHT=", "").split()[:2])
        assert w >= 320 and h >= 240  # the frame, plus the toolbar some OpenCV builds add
        assert p.poll() is None
        _x(screen, "mousemove", "--window", win.split()[0], "50", "50", "click", "1")
        time.sleep(0.3)
        _x(screen, "key", "q")
        assert p.wait(10) == 0
        push.close()
    finally:
        if p.poll() is None:
            p.kill()
