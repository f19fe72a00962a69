"""The fault benchmark (``dogfilter-bench --only faults``): the pipeline under the faults users and attackers bring.

Each live fault runs on a fresh pipeline (demo source, 640×480 at 30 frames/s, one detect and one classify
process) watched through the display's statistics: kill -9 and restart of each stage, a pause (SIGSTOP) of the
display and of a detect worker, floods of malformed messages and of hostile-but-valid ones on every port, browser
tabs opened and closed by the hundred (each a stream of its own that must end everywhere), a worker of another
local user (uid nobody, as root) joining as a detect and a classify worker.  Then a
huge picture, and a detect and a classify worker killed in the middle of a file.  Per fault: how long until video
flows again, the longest gap in the video, the frame rate in the seconds after, what was counted as dropped, and the
peak memory of every stage over the whole fault.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq

from dogfilter.commands.bench import proc_usage
from dogfilter.commands.run import Pipeline
from dogfilter.common.stage import NAMES
from dogfilter.common.transport import wire
from dogfilter.common.transport.protocol import send
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.wire import Face, Message

FPS = 30.0


class Watch:
    """A live pipeline and what its display shows of the demo stream, sampled every 50 ms (a restarted capture or
    display counts from 0 again: added up); peak RSS of every stage."""

    def __init__(self, d: Path, size: str = "640x480", n_classify: int = 1, **values: Any) -> None:
        self.stats = d / "stats.json"
        self.p = Pipeline(mode="live", restart=False, n_classify=n_classify,
                          values={"source": ["demo"], "size": size, "fps": FPS, "stats_out": str(self.stats), **values})
        self.samples: list[tuple[float, int]] = []  # (time, frames shown)
        self.peak: dict[str, float] = {}
        self._stop = False

    def __enter__(self) -> Watch:
        self.p.start()
        threading.Thread(target=self._sample, daemon=True).start()
        self.wait_frames(30, 120)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.p.stop()

    def read(self) -> dict[str, Any]:
        for _ in range(40):
            try:
                return json.loads(self.stats.read_text())
            except (OSError, ValueError):
                time.sleep(0.025)
        return {"frames": 0, "counters": {}}

    def _sample(self) -> None:
        base, last = 0, 0
        while not self._stop:
            n = self.read().get("streams", {}).get("cam0", {}).get("frames", 0)  # the demo stream only
            if n < last:  # a restarted display counts from 0 again
                base += last
            last = n
            self.samples.append((time.monotonic(), base + n))
            for name, proc in list(self.p.procs.items()):
                self.peak[name.split(".")[0]] = max(self.peak.get(name.split(".")[0], 0.0), proc_usage(proc.pid)[1])
            time.sleep(0.05)

    def frames(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def wait_frames(self, n: int, timeout: float) -> float:
        """Seconds until ``n`` more frames were shown (timeout if never)."""
        t0, start = time.monotonic(), self.frames()
        while time.monotonic() - t0 < timeout:
            if self.frames() >= start + n:
                return time.monotonic() - t0
            time.sleep(0.02)
        return float("nan")

    def gap(self, since: float) -> float:
        """The longest time without a new frame since ``since``."""
        pts = [(t, n) for t, n in self.samples if t >= since]
        changes = [pts[0][0]] + [t for (t, n), (_, m) in zip(pts[1:], pts, strict=False) if n > m] if pts else []
        return max((b - a for a, b in zip(changes, changes[1:], strict=False)), default=0.0)

    def fps_over(self, seconds: float) -> float:
        n0 = self.frames()
        time.sleep(seconds)
        return (self.frames() - n0) / seconds

    def dropped(self) -> int:
        """Everything any stage counted as dropped, refused or stale."""
        keys = ("malformed", "oversized", "bad_value", "unsealed", "unexpected", "unknown_job", "unknown_worker",
                "bad_reply", "stale_frames", "frames_dropped", "display_dropped", "too_many_workers",
                "refused_worker", "frames_lost", "frames_lost_in_workers", "bad_frames", "jobs_dropped")
        return sum(int(v) for c in self.read().get("counters", {}).values() for k, v in c.items() if k in keys)

    def rss(self, stage: str) -> float:
        return proc_usage(self.p.procs[f"{stage}.1"].pid)[1]


def peer_socket(kind: int, addr: str, ident: bytes | None = None) -> zmq.Socket:
    """A bare socket connected to a stage's port, as a foreign (hostile or broken) peer would open one."""
    s: zmq.Socket = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if ident:
        s.setsockopt(zmq.ROUTING_ID, ident)
    s.connect(addr)
    time.sleep(0.2)  # connected before the first message
    return s


def bomb_jpeg(width: int, height: int) -> bytes:
    """A decompression bomb: a JPEG of ~630 bytes whose frame header claims ``width``×``height`` pixels."""
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    b = bytearray(buf.tobytes())
    i = b.index(b"\xff\xc0")  # the baseline frame header: length, precision, then height and width
    struct.pack_into(">HH", b, i + 5, height, width)
    return bytes(b)


def bomb_message(kind: str, jpeg: bytes, stream: str = "cam0", frame: int = 0, sealer: Sealer | None = None,
                 ) -> list[Any]:
    """A message whose header declares a small JPEG image (240×320×3, under every cap) and whose part is ``jpeg``."""
    crops = np.zeros((0, 48, 48), np.uint8) if kind == "detections" else None
    msg = Message(kind, stream, frame, int(time.time() * 1000) - 10, image=np.zeros((240, 320, 3), np.uint8),
                  crops=crops)
    msg.stamp("capture")
    if sealer is not None:
        sealer.seal(msg)
    frames = wire.encode(msg, jpeg_quality=50)
    frames[1] = jpeg
    return frames


def web_bomb(port: int, jpegs: list[bytes]) -> None:
    """Each of ``jpegs`` sent by a browser tab (a WebSocket client) to the browser camera."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
        ws.recv(timeout=10)
        for j in jpegs:
            ws.send(struct.pack(">d", time.time() * 1000) + j)
        time.sleep(0.5)


# ----------------------------------------------------------------------------------------------- live faults


def decompression_bombs(w: Watch, n: int) -> dict[str, Any]:
    """``n`` 629-byte JPEGs claiming 60000×60000 and ``n`` claiming 32767×32767 to the display, the composite and
    the browser camera (sealed and not): every one dropped, fast, with little memory."""
    sealer = Sealer.from_file(w.p.secret)
    disp = peer_socket(zmq.PUSH, w.p.endpoints["display"])
    det = peer_socket(zmq.DEALER, w.p.endpoints["detections"])
    fps_before, d0, t0 = w.fps_over(2), w.dropped(), time.monotonic()
    jpegs = [bomb_jpeg(60000, 60000), bomb_jpeg(32767, 32767)] * n
    for i, j in enumerate(jpegs):
        key = sealer if i % 4 < 2 else None  # half of them sealed: the size check, not the seal, must stop those
        send_parts = [(disp, bomb_message("composited", j, "bomb", i, key)),
                      (det, bomb_message("detections", j, "bomb", i, key))]
        for sock, parts in send_parts:
            sock.send_multipart(parts)
    web = w.p.values.get("web_port")
    if web:
        web_bomb(int(web), jpegs)
    end = time.monotonic() + 30
    while w.dropped() - d0 < 3 * len(jpegs) and time.monotonic() < end:
        time.sleep(0.02)
    took = time.monotonic() - t0
    fps_during = w.fps_over(2)
    disp.close()
    det.close()
    alive = all(p.poll() is None for p in w.p.procs.values())
    return {"recovery_s": 0.0, "gap_s": w.gap(t0), "fps_after": fps_during, "fps_before": fps_before,
            "dropped": w.dropped() - d0, "sent": 3 * len(jpegs), "seconds": took, "alive": alive}


def no_classify_worker(w: Watch, seconds: float) -> dict[str, Any]:
    """No classify worker at all for ``seconds``: video keeps flowing (painted by its deadline) and the
    composite's memory stays flat (the jobs no worker takes are dropped, counted)."""
    t0, f0 = time.monotonic(), w.frames()
    rss = [w.rss("composite")]
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        rss.append(w.rss("composite"))
    fps = (w.frames() - f0) / (time.monotonic() - t0)
    return {"recovery_s": 0.0, "gap_s": w.gap(t0), "fps_after": fps, "rss_composite_mb": rss,
            "rss_growth_mb": max(rss) - rss[0]}




def kill_and_restart(w: Watch, stage: str) -> dict[str, Any]:
    name = f"{stage}.1"
    t0 = time.monotonic()
    w.p.procs[name].send_signal(signal.SIGKILL)
    w.p.procs[name].wait()
    time.sleep(0.5)
    w.p.start_one(stage, name)
    recovery = w.wait_frames(5, 60)
    return {"recovery_s": recovery, "gap_s": w.gap(t0), "fps_after": w.fps_over(3)}


def pause(w: Watch, stage: str, seconds: float = 3.0) -> dict[str, Any]:
    pid = w.p.procs[f"{stage}.1"].pid
    d0, t0 = w.dropped(), time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    os.kill(pid, signal.SIGCONT)
    recovery = w.wait_frames(5, 30)
    lat = w.read().get("latency_ms", {}).get("capture→display", {})
    return {"recovery_s": recovery, "gap_s": w.gap(t0), "fps_after": w.fps_over(3), "dropped": w.dropped() - d0,
            "max_latency_ms": lat.get("max")}


# a worker as anyone could write one: it connects, asks for jobs, and counts what it is given (JSON on its last line)
FOREIGN_WORKER = """
import json, sys, time, zmq
from dogfilter.common.transport import wire
role, addr, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
print("started", flush=True)
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(addr)
meta = {"credit": 4} if role == "detect" else {"credit": 64, "classes": ["happy", "sad", "surprise", "neutral"]}
got, last, end = {}, 0.0, time.monotonic() + seconds
while time.monotonic() < end:
    if time.monotonic() - last > 0.5:
        try:
            s.send_multipart(wire.encode(wire.Message("ready", meta=meta)), zmq.NOBLOCK)
        except zmq.Again:
            pass
        last = time.monotonic()
    if s.poll(100):
        kind = wire.decode(s.recv_multipart()).kind
        got[kind] = got.get(kind, 0) + 1
print(json.dumps(got), flush=True)
"""


def foreign_worker(role: str, addr: str, seconds: float, as_nobody: bool = True) -> subprocess.Popen:
    """A detect or classify worker of another user (uid nobody: needs root and setpriv) or of this one."""
    cmd = [sys.executable, "-c", FOREIGN_WORKER, role, addr, str(seconds)]
    if as_nobody:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.Popen(cmd, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def foreign_counts(p: subprocess.Popen) -> tuple[dict[str, int] | None, str]:
    """What a foreign worker was given, by kind (None: it could not run; then why)."""
    out, err = p.communicate(timeout=60)
    lines = out.splitlines()
    if not lines or lines[0] != "started" or p.returncode != 0:
        return None, err.strip()[-300:]
    return json.loads(lines[-1]), ""


def other_user(w: Watch, seconds: float = 5.0) -> dict[str, Any]:
    """Another local user's process joins as a detect worker and as a classify worker for ``seconds``."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return {"recovery_s": 0.0, "gap_s": 0.0, "fps_after": w.fps_over(2), "note": "not run: needs root and setpriv"}
    fps_before, t0 = w.fps_over(2), time.monotonic()
    procs = [foreign_worker("detect", w.p.endpoints["frames"], seconds),
             foreign_worker("classify", w.p.endpoints["classify"], seconds)]
    (frames, why), (crops, _) = (foreign_counts(p) for p in procs)
    fps_during = w.fps_over(2)
    note = (f"it got {frames.get('frame', 0)} frames, {(crops or {}).get('crops', 0)} crops jobs"
            if frames is not None else f"could not run: {why}")
    return {"recovery_s": 0.0, "gap_s": w.gap(t0), "fps_after": fps_during, "fps_before": fps_before, "note": note}


def malformed_flood(w: Watch, n: int) -> dict[str, Any]:
    """``n`` malformed messages on every port: random bytes, truncated msgpack, wrong part counts."""
    rng = np.random.default_rng(0)
    socks = [peer_socket(zmq.DEALER, w.p.endpoints["frames"]), peer_socket(zmq.DEALER, w.p.endpoints["detections"]),
             peer_socket(zmq.DEALER, w.p.endpoints["classify"]), peer_socket(zmq.PUSH, w.p.endpoints["display"])]
    fps_before, d0, t0 = w.fps_over(2), w.dropped(), time.monotonic()
    good = wire.encode(Message("heartbeat"))[0]
    for i in range(n):
        junk = [rng.bytes(int(rng.integers(1, 300))), good[: int(rng.integers(1, len(good)))], good + b"x",
                bytes(good)][i % 4]
        for s in socks:
            try:
                s.send_multipart([junk, b"extra"] if i % 5 == 0 else [junk], zmq.NOBLOCK)
            except zmq.Again:
                pass
    fps_during = w.fps_over(2)
    for s in socks:
        s.close()
    return {"recovery_s": 0.0, "gap_s": w.gap(t0), "fps_after": fps_during, "fps_before": fps_before,
            "dropped": w.dropped() - d0}


def hostile_flood(w: Watch, n: int) -> dict[str, Any]:
    """Messages that parse but carry hostile values, ``n`` of each kind, on every port."""
    sealer = Sealer.from_file(w.p.secret)
    now = int(time.time() * 1000)
    det = peer_socket(zmq.DEALER, w.p.endpoints["detections"])
    disp = peer_socket(zmq.PUSH, w.p.endpoints["display"])
    rogue = peer_socket(zmq.DEALER, w.p.endpoints["classify"], b"rogue")
    thief = peer_socket(zmq.DEALER, w.p.endpoints["frames"], b"thief")
    fps_before, d0, t0 = w.fps_over(2), w.dropped(), time.monotonic()
    img, crops = np.zeros((480, 640, 3), np.uint8), np.zeros((1, 48, 48), np.uint8)
    send(rogue, Message("ready", meta={"credit": 1000, "classes": ["happy", "sad"]}), block=True)
    send(thief, Message("ready", meta={"credit": 1000}), block=True)
    for i in range(n):
        send(disp, Message("eos", "cam0", 1, now, meta={"last": 0}), timeout_s=0.01)  # unsealed
        send(det, Message("detections", "cam0", i, now + 86_400_000, image=img, crops=crops[:0]), timeout_s=0.01)
        send(det, sealer.seal(Message("detections", "x", i, now - 5, faces=[Face(box=(0, 0, 8000, 8000))],
                                      image=img, crops=crops)), timeout_s=0.01)
        send(rogue, Message("emotions", meta={"job": 10**9 + i, "worker": f"w{i}"}), timeout_s=0.01)
        m = Message("composited", "labels", i, now - 5, faces=[Face(box=(1, 1, 9, 9), emotion=f"e{i}")], image=img)
        send(disp, sealer.seal(m), timeout_s=0.01)
    fps_during = w.fps_over(3)
    for s in (det, disp, rogue, thief):
        s.close()
    return {"recovery_s": 0.0, "gap_s": w.gap(t0), "fps_after": fps_during, "fps_before": fps_before,
            "dropped": w.dropped() - d0}


def tab_session(port: int, jpeg: bytes, tries: int = 2, timeout_s: float = 2.0) -> bool:
    """One browser tab, played by a WebSocket client: open the camera, send a frame (another, up to ``tries``, until
    one comes back), close.  True: a filtered frame came back."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10, close_timeout=2) as ws:
            ws.recv(timeout=10)  # the name of its stream
            for _ in range(tries):
                ws.send(struct.pack(">d", time.perf_counter() * 1000) + jpeg)
                try:
                    data = ws.recv(timeout=timeout_s)
                except TimeoutError:
                    continue
                return isinstance(data, bytes) and data[8:10] == b"\xff\xd8"
    except (ConnectionClosed, InvalidStatus, OSError, TimeoutError):
        return False
    return False


def tab_churn(w: Watch, n: int) -> dict[str, Any]:
    """``n`` browser tab sessions in a row (open, a 320×240 frame or two, close), beside the demo stream; then one
    more: how long until its frame comes back."""
    import cv2

    from dogfilter.common.scene import DemoScene

    jpeg = cv2.imencode(".jpg", DemoScene(320, 240).render(0.0))[1].tobytes()
    d0, t0 = w.dropped(), time.monotonic()
    answered = sum(tab_session(w.p.values["web_port"], jpeg) for _ in range(n))
    t1 = time.monotonic()
    last = tab_session(w.p.values["web_port"], jpeg, tries=5)
    return {"recovery_s": time.monotonic() - t1 if last else float("nan"), "gap_s": w.gap(t0),
            "fps_after": w.fps_over(3), "dropped": w.dropped() - d0, "answered": answered,
            "streams_kept": len(w.read().get("streams", {}))}


# ----------------------------------------------------------------------------------------------- inputs and files


def huge_image(d: Path) -> dict[str, Any]:

    import cv2

    img = np.full((9000, 12000, 3), 120, np.uint8)
    path = d / "huge.jpg"
    cv2.imwrite(str(path), img)
    out: dict[str, Any] = {}
    for label, extra in (("refused", []), ("processed", ["--max-pixels", "120000000"])):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "dogfilter.commands.run", "image", str(path), str(d / "o.png"),
                            *extra], capture_output=True, text=True, timeout=300)
        out[label] = {"seconds": time.monotonic() - t0, "code": r.returncode,
                      "line": (r.stderr.strip().splitlines() or [""])[-1]}
    return out


def demo_clip(path: Path, n: int, w: int = 640, h: int = 480) -> Path:
    """``n`` frames of the demo scene as an MJPG .avi."""
    from dogfilter.common.scene import DemoScene

    scene = DemoScene(w, h)
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, (w, h))
    for i in range(n):
        wr.write(scene.render(i / 30))
    wr.release()
    return path


def full_disk(d: Path) -> dict[str, Any]:
    """``dogfilter file`` (one process, and five) onto a 200 KB tmpfs (root only): one line, exit 2, no file."""
    clip = demo_clip(d / "disk.avi", 60)
    full = d / "full"
    full.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(full)], capture_output=True,
                       text=True)
    if r.returncode:
        return {"skipped": (r.stderr.strip().splitlines() or ["mount failed"])[-1]}
    out: dict[str, Any] = {}
    try:
        for label, inline in (("one process", "yes"), ("five processes", "no")):
            target = full / f"out-{inline}.mp4"
            t0 = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "dogfilter.commands.run", "file", str(clip), str(target),
                                "--inline", inline], capture_output=True, text=True, timeout=300)
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            out[label] = {"seconds": time.monotonic() - t0, "code": r.returncode, "lines": len(lines),
                          "line": lines[-1] if lines else "", "file": target.exists(),
                          "left": sorted(p.name for p in full.iterdir())}
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)
    return out


def file_with_kills(d: Path, n: int) -> dict[str, Any]:
    import cv2

    from dogfilter.common.scene import DemoScene

    clip = d / "clip.avi"
    scene = DemoScene(320, 240)
    wr = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30, (320, 240))
    for i in range(n):
        f = scene.render(i / 30)
        f[-8:, :] = 0
        f[-8:, : int(320 * i / n)] = 255  # a progress bar: frames stay distinct
        wr.write(f)
    wr.release()
    res = {}
    for label, kill in (("no fault", False), ("detect + classify killed", True)):
        out, stats = d / f"out{kill}.avi", d / f"s{kill}.json"
        p = Pipeline(mode="file", n_detect=2, n_classify=2,
                     values={"source": [str(clip)], "output": [str(out)], "stats_out": str(stats)})
        t0 = time.monotonic()
        p.start()
        try:
            while kill:
                try:
                    if json.loads(stats.read_text())["frames"] >= n // 3:
                        break
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.05)
            if kill:
                p.procs["detect.1"].kill()
                p.procs["classify.1"].kill()
            code = p.wait(timeout=600)
        finally:
            p.stop()
        cap = cv2.VideoCapture(str(out))
        written = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        res[label] = {"seconds": time.monotonic() - t0, "written": written, "of": n, "code": code}
    return res


# ----------------------------------------------------------------------------------------------- the table


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    bombs, idle = (5, 10.0) if quick else (20, 30.0)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        live: list[tuple[str, Callable[[Watch], dict[str, Any]]]] = [
            *[(f"kill -9 + restart {s}", lambda w, s=s: kill_and_restart(w, s))
              for s in NAMES],
            ("SIGSTOP display 3 s", lambda w: pause(w, "display")),
            ("SIGSTOP detect 3 s", lambda w: pause(w, "detect")),
            (f"malformed × {300 if quick else 3000} per port", lambda w: malformed_flood(w, 300 if quick else 3000)),
            (f"hostile-but-valid × {100 if quick else 1000} of 6 kinds",
             lambda w: hostile_flood(w, 100 if quick else 1000)),
            (BOMBS.format(n=2 * bombs), lambda w: decompression_bombs(w, bombs)),
            (NO_WORKER.format(s=idle), lambda w: no_classify_worker(w, idle)),
            (f"browser tab churn × {50 if quick else 500} sessions", lambda w: tab_churn(w, 50 if quick else 500)),
            ("a worker of another local user (nobody) on frames + classify, 5 s", other_user),
        ]
        churn = f"browser tab churn × {50 if quick else 500} sessions"
        setup: dict[str, dict[str, Any]] = {
            BOMBS.format(n=2 * bombs): {"web_port": _free_port()}, NO_WORKER.format(s=idle): {"n_classify": 0},
            churn: {"web_port": _free_port()}}
        if quick:  # a smoke run: one of each kind of fault
            live = [f for f in live if f[0].startswith(("kill -9 + restart detect", "SIGSTOP display", "malformed",
                                                        "hostile", "JPEG bombs", "no classify",
                                                        "browser tab churn"))]
        for i, (name, fault) in enumerate(live):
            log(f"faults: {name}…")
            (d / str(i)).mkdir()
            with Watch(d / str(i), **setup.get(name, {})) as w:
                d0 = w.dropped()
                r = fault(w)
                r.setdefault("dropped", w.dropped() - d0)
                r["peak_rss_mb"] = dict(w.peak)
            rows[name] = r
        log("faults: a huge picture…")
        big = huge_image(d)
        log("faults: workers killed in file mode…")
        files = file_with_kills(d, 90 if quick else 300)
        log("faults: a full disk…")
        disk = full_disk(d)
    return _table(rows, big, files, disk), {"live": rows, "huge_image": big, "file": files, "full_disk": disk}


BOMBS = "JPEG bombs (629 B claiming 60000² or 32767²) × {n} to display, composite, camera"
NO_WORKER = "no classify worker for {s:.0f} s"


def _free_port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def _table(rows: dict[str, dict[str, Any]], big: dict[str, Any], files: dict[str, Any],
           disk: dict[str, Any]) -> list[str]:
    stages = NAMES
    lines = ["## Faults (live: demo 640×480 at 30 frames/s, 1 detect, 1 classify; one run each)", "",
             "| fault | video back after s | longest gap s | frames/s after | dropped (counted) | "
             + " | ".join(f"peak RSS {s} MiB" for s in stages) + " |",
             "|---" * (5 + len(stages)) + "|"]
    for name, r in rows.items():
        peak = r["peak_rss_mb"]
        fps = f"{r['fps_after']:.1f}" + (f" (before {r['fps_before']:.1f})" if "fps_before" in r else "")
        if "answered" in r:  # tab churn: "video back after" is the next tab's first frame back
            name = f"{name} ({r['answered']} answered; streams kept after: {r['streams_kept']})"
        label = f"{name}: {r['note']}" if r.get("note") else name
        lines.append(f"| {label} | {r['recovery_s']:.2f} | {r['gap_s']:.2f} | {fps} | {r.get('dropped', 0)} | "
                     + " | ".join(f"{peak.get(s, 0):.0f}" for s in stages) + " |")
    lines += ["", "| input | outcome | seconds |", "|---|---|---|"]
    for label, v in big.items():
        outcome = "written" if v["code"] == 0 else v["line"].rsplit(".jpg: ", 1)[-1]  # the reason, without the path
        lines.append(f"| 12000×9000 picture, {label} | exit {v['code']}: {outcome} | {v['seconds']:.1f} |")
    for label, v in files.items():
        lines.append(f"| file mode, 2 detect + 2 classify, {label} | exit {v['code']}, {v['written']} of {v['of']} "
                     f"frames written | {v['seconds']:.1f} |")
    if "skipped" in disk:
        lines.append(f"| file mode onto a full disk (200 KB tmpfs) | skipped: {disk['skipped']} | |")
    for label, v in disk.items() if "skipped" not in disk else ():
        lines.append(f"| file mode onto a full disk (200 KB tmpfs), {label} | exit {v['code']}, {v['lines']} line(s), "
                     f"{'a file' if v['file'] else 'no file'} at the path, {len(v['left'])} left beside it | "
                     f"{v['seconds']:.1f} |")
    notes = []
    for name, r in rows.items():
        if "sent" in r:
            notes.append(f"{name}: {r['dropped']} of {r['sent']} dropped (counted) in {r['seconds']:.2f} s; "
                         f"every stage {'still up' if r['alive'] else 'NOT up'}.")
        if "rss_composite_mb" in r:
            rss = r["rss_composite_mb"]
            notes.append(f"{name}: composite RSS {rss[0]:.0f} MiB at the start, {max(rss):.0f} at most, {rss[-1]:.0f} "
                         f"at the end ({r['fps_after']:.1f} frames/s shown meanwhile).")
    return lines + ([""] + notes if notes else []) + [""]
