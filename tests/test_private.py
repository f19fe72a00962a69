"""Private by default on one host: other local users are outside the pipeline, a frame's age is what capture sealed,
pages answer only to their own names, tokenless clients cannot lock a token holder out, and the launcher's stages
die with it.

The honcho-style pipeline below is the five stages started with the settings of ``.env``, as ``honcho start`` starts
them (its own ``$XDG_RUNTIME_DIR``, so it runs beside any other); a foreign user is uid ``nobody``
(``setpriv``, as root: the tests that need it skip otherwise).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from dogfilter.commands.bench_faults import foreign_counts, foreign_worker, peer_socket
from dogfilter.common import options
from dogfilter.common.stage import NAMES
from dogfilter.common.transport.protocol import send
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.wire import Message
from tests.conftest import ROOT, free_port, read_index, read_stats, stamp_index, wait_for

pytestmark = pytest.mark.system

STAGES = tuple(reversed(NAMES))  # as the launcher starts them
TOKEN = "sesame"


def _dotenv() -> dict[str, str]:
    """The settings in force in ``.env`` (what honcho exports)."""
    out = {}
    for line in (ROOT / ".env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out


class Honcho:
    def __init__(self, folder: Path) -> None:
        self.runtime = Path(tempfile.mkdtemp(prefix="dogfilter-test-xdg-"))
        self.runtime.chmod(0o755)  # any user may look in: only the run folder inside keeps them out
        self.folder, self.stats = folder, folder / "stats.json"
        self.env = {**os.environ, **_dotenv(), "XDG_RUNTIME_DIR": str(self.runtime),
                    "DOGFILTER_HTTP_PORT": str(free_port()), "DOGFILTER_WEB_PORT": str(free_port()),
                    "DOGFILTER_SIZE": "320x240", "DOGFILTER_FPS": "15", "DOGFILTER_STATS_OUT": str(self.stats),
                    "DOGFILTER_WEB_TOKEN": TOKEN}
        self.env.pop("DOGFILTER_RUN_DIR", None)
        self.procs: dict[str, subprocess.Popen] = {}

    def addr(self, link: str) -> str:
        value = self.env.get(f"DOGFILTER_{link.upper()}_ADDR") or options.LINKS[link].default
        return value.replace("{run}", str(self.runtime / "dogfilter"))

    @property
    def secret(self) -> Path:
        return self.runtime / "dogfilter" / "secret"

    def port(self, name: str) -> int:
        return int(self.env[f"DOGFILTER_{name.upper()}_PORT"])

    def start(self) -> Honcho:
        for stage in STAGES:
            with (self.folder / f"{stage}.log").open("wb") as err:
                self.procs[stage] = subprocess.Popen(
                    [sys.executable, "-m", f"dogfilter.services.{stage}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                    stderr=err, env={**self.env, "HONCHO_PROCESS_NAME": f"{stage}.1"})
        return self

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def honcho(tmp_path_factory):
    h = Honcho(tmp_path_factory.mktemp("honcho")).start()
    try:
        try:
            wait_for(h.stats, lambda s: s["frames"] >= 10, timeout=90)
        except AssertionError as e:
            logs = {st: (h.folder / f"{st}.log").read_text(errors="replace")[-600:] for st in STAGES}
            raise AssertionError(f"{e}; stage logs: {logs}") from None
        yield h
    finally:
        h.stop()


# ----------------------------------------------------------------------------------------------- other users

def _counts(p: subprocess.Popen) -> dict[str, int]:
    got, why = foreign_counts(p)
    if got is None:
        pytest.skip(f"the foreign worker could not run (its python or this checkout unreadable?): {why}")
    return got


@pytest.mark.timeout(120)
def test_another_local_user_joining_as_a_worker_gets_no_frame_and_no_face_crop(honcho) -> None:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a process as uid nobody")
    before = read_stats(honcho.stats)["frames"]
    thieves = {role: foreign_worker(role, honcho.addr(link), 6, as_nobody=True)
               for role, link in (("detect", "frames"), ("classify", "classify"))}
    got = {role: _counts(p) for role, p in thieves.items()}
    # the same worker as the pipeline's own user does get work: the addresses are right, the test can fail
    mine = _counts(foreign_worker("detect", honcho.addr("frames"), 3, as_nobody=False))
    assert mine.get("frame", 0) > 0, mine
    assert got["detect"].get("frame", 0) == 0, got
    assert got["classify"].get("crops", 0) == 0, got
    s = read_stats(honcho.stats)
    assert s["frames"] > before + 30  # the real stages kept working meanwhile
    mode = (honcho.runtime / "dogfilter").stat().st_mode & 0o777
    assert mode == 0o700 and honcho.secret.stat().st_mode & 0o777 == 0o600


@pytest.mark.timeout(60)
def test_a_run_folder_others_may_open_or_another_user_owns_is_refused(tmp_path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    cases = [(open_dir, "chmod 700")]
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)  # made first by another user (nobody), to listen in
        cases.append((theirs, "belongs to another user"))
    for folder, words in cases:
        r = subprocess.run([sys.executable, "-m", "dogfilter.services.composite", "--run-dir", str(folder)],
                           cwd=ROOT, capture_output=True, text=True, timeout=50,
                           env={k: v for k, v in os.environ.items() if not k.startswith("DOGFILTER_")})
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert words in r.stderr and str(folder) in r.stderr, r.stderr
        assert not list(folder.iterdir())  # no socket, no secret put there


# ----------------------------------------------------------------------------------------------- sealed age


@pytest.mark.timeout(60)
def test_a_restamped_capture_time_breaks_the_seal_and_the_frame_is_never_shown(honcho) -> None:
    sealer = Sealer.from_file(honcho.secret)
    sock = peer_socket(zmq.DEALER, honcho.addr("detections"))
    epoch = int(time.time() * 1000)
    try:
        for stream, restamp in (("restamped", True), ("honest", False)):
            for i in range(6):
                m = Message("detections", stream, i, epoch, image=np.zeros((240, 320, 3), np.uint8),
                            crops=np.zeros((0, 48, 48), np.uint8))
                m.ts["capture"] = time.time() - (2.0 if restamp else 0.0)  # 2 s old: stale
                sealer.seal(m)
                if restamp:
                    m.ts["capture"] = time.time()  # a forwarding peer passes it as fresh
                send(sock, m, block=True)
                time.sleep(0.02)
        s = wait_for(honcho.stats, lambda x: "honest" in x["streams"], timeout=20)
        time.sleep(1.0)
        s = read_stats(honcho.stats)
    finally:
        sock.close()
    assert "restamped" not in s["streams"], s["streams"].get("restamped")
    assert s["counters"]["composite"].get("unsealed", 0) >= 6


# ----------------------------------------------------------------------------------------------- pages


def _status(port: int, request: str, timeout: float = 10) -> int:
    """The status code a raw request gets (Host and all headers exactly as given)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(request.encode())
        head = c.recv(200).decode(errors="replace")
    return int(head.split()[1])


def _get(path: str, host: str, origin: str | None = None, token: bool = True) -> str:
    extra = (f"Origin: {origin}\r\n" if origin else "") + (f"Authorization: Bearer {TOKEN}\r\n" if token else "")
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"


def _ws(host: str, origin: str) -> str:
    return (f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


@pytest.mark.timeout(60)
def test_pages_refuse_a_foreign_host_and_origin_before_anything_else(honcho) -> None:
    view, cam = honcho.port("http"), honcho.port("web")
    here, cam_here = f"127.0.0.1:{view}", f"127.0.0.1:{cam}"
    assert _status(view, _get("/stats.json", here)) == 200
    assert _status(view, _get("/stats.json", f"localhost:{view}", origin=f"http://localhost:{view}")) == 200
    assert _status(view, _get("/stats.json", f"evil.example:{view}")) == 403  # DNS rebinding
    assert _status(view, _get("/stats.json", "evil.example", token=False)) == 403  # before the token
    assert _status(view, _get("/metrics", here, origin="http://evil.example")) == 403  # a script of another site
    assert _status(view, _get("/stats.json", here, origin="null")) == 403
    assert _status(cam, _get(f"/?token={TOKEN}", cam_here, token=False)) == 200
    assert _status(cam, _get(f"/?token={TOKEN}", f"evil.example:{cam}", token=False)) == 403
    assert _status(cam, _ws(cam_here, f"http://{cam_here}")) == 101  # the camera's own page opens its WebSocket
    assert _status(cam, _ws(cam_here, "http://evil.example")) == 403  # cross-site WebSocket
    assert _status(cam, _ws(f"evil.example:{cam}", f"http://evil.example:{cam}")) == 403  # rebinding: same "origin"


@pytest.mark.timeout(60)
def test_slow_tokenless_clients_neither_lock_out_a_token_holder_nor_stay_for_ever(honcho) -> None:
    port = honcho.port("http")
    here = f"127.0.0.1:{port}"
    cut_after: list[float] = []

    def trickle() -> None:  # a byte every second: under a per-read timeout, it would stay for ever
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            try:
                for ch in f"GET /stats.json HTTP/1.1\r\nHost: {here}\r\nX-Slow: {'a' * 60}":
                    c.sendall(ch.encode())
                    time.sleep(1.0)
            except OSError:
                pass
        cut_after.append(time.monotonic() - t0)

    slow = threading.Thread(target=trickle, daemon=True)
    slow.start()
    stalled = []
    try:
        for _ in range(40):  # more than the 32 slots: each sends half a request and waits
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"GET /stats.json HTTP/1.1\r\n")
            stalled.append(c)
        time.sleep(0.5)
        t0 = time.monotonic()
        assert _status(port, _get("/stats.json", here)) == 200
        assert _status(port, _get("/metrics", here)) == 200
        assert time.monotonic() - t0 < 3
        slow.join(20)
    finally:
        for c in stalled:
            c.close()
    assert cut_after and cut_after[0] < 14, cut_after  # the whole request is bounded (10 s), not each read


@pytest.mark.timeout(60)
def test_the_first_frame_after_nobody_watched_is_fresh_not_the_last_viewers() -> None:
    """The display publishes a stream's frame only while someone watches it (as services/display.py does)."""
    from dogfilter.common.media.webview import WebView

    view = WebView("127.0.0.1", 0, lambda: {}, max_clients=4)
    stop, shown = threading.Event(), [0]

    def display() -> None:  # 20 frames/s, each numbered
        img = np.full((120, 160, 3), 90, np.uint8)
        while not stop.is_set():
            shown[0] += 1
            stamp_index(img, shown[0])
            view.offer("cam0", img)
            time.sleep(0.05)

    threading.Thread(target=display, daemon=True).start()

    def frame() -> tuple[int, int]:
        with socket.create_connection(("127.0.0.1", view.port), timeout=10) as c:
            c.sendall(f"GET /frame.jpg HTTP/1.1\r\nHost: 127.0.0.1:{view.port}\r\n\r\n".encode())
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        now = shown[0]
        body = data.split(b"\r\n\r\n", 1)[1]
        return read_index(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)), now

    try:
        time.sleep(0.5)
        got, now = frame()
        assert now - got <= 24  # at most FRESH_S (1 s) old
        time.sleep(5)  # nobody watches: the display stops publishing after 3 s
        got, now = frame()
        assert now - got <= 4, f"frame {got} served when the display was at {now}: {(now - got) / 20:.1f} s old"
    finally:
        stop.set()
        view.close()


# ----------------------------------------------------------------------------------------------- the launcher


def _stage_pids(folder: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and str(folder).encode() in (d / "cmdline").read_bytes() \
                    and (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(int(d.name))
        except OSError:
            continue
    return out


@pytest.mark.timeout(90)
def test_sigkill_of_the_launcher_leaves_no_stage_and_no_secret_folder(tmp_path) -> None:
    stats = tmp_path / "s.json"
    p = subprocess.Popen([sys.executable, "-m", "dogfilter.commands.run", "live", "--http-port", "0", "--web-port",
                          "0", "--stats-out", str(stats), "--size", "160x120"], cwd=ROOT,
                         env={**os.environ, "TMPDIR": str(tmp_path)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_for(stats, lambda s: s["frames"] > 3, timeout=60)
        (folder,) = tmp_path.glob("dogfilter-*")
        assert len(_stage_pids(folder)) >= 5
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        end = time.monotonic() + 6
        while (_stage_pids(folder) or folder.exists()) and time.monotonic() < end:
            time.sleep(0.1)
        left = _stage_pids(folder)
    finally:
        if p.poll() is None:
            p.kill()
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in left]
    assert not folder.exists(), list(folder.iterdir())


@pytest.mark.timeout(60)
def test_a_stale_run_folder_of_a_dead_launcher_is_cleaned_at_the_next_start(tmp_path, monkeypatch) -> None:
    from dogfilter.commands import janitor
    from dogfilter.commands.run import Pipeline

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / "dogfilter-stale1"
    stale.mkdir(mode=0o700)
    (stale / "secret").write_text("0" * 64)
    (stale / janitor.MARKER).write_text(f"{gone.pid} 12345\n")  # a launcher that is gone
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"--secret-file={stale}/secret"])
    for _ in range(50):  # started: its command line names the folder
        if orphan.pid in _stage_pids(stale):
            break
        time.sleep(0.05)
    live = tmp_path / "dogfilter-live1"  # a running launcher's (ours): kept
    live.mkdir(mode=0o700)
    (live / janitor.MARKER).write_text(f"{os.getpid()} {janitor.start_time(os.getpid())}\n")
    honcho_dir = tmp_path / f"dogfilter-{os.getuid()}"  # honcho's run folder: no marker, kept
    honcho_dir.mkdir(mode=0o700)
    p = Pipeline(mode="live")
    try:
        assert not stale.exists() and live.exists() and honcho_dir.exists()
        assert orphan.wait(5) is not None  # the dead launcher's stage is ended too
    finally:
        p.stop()
        if orphan.poll() is None:
            orphan.kill()
    assert not p.dir.exists()
