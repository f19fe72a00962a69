"""The virtual camera benchmark (``dogfilter-bench --only vcam``), and the PipeWire pieces its test shares.

A private PipeWire (pipewire, wireplumber and a session D-Bus in a temporary ``XDG_RUNTIME_DIR``: nothing of the
user's desktop is touched), a test camera published into it (demo frames, each numbered by a barcode along its
bottom edge, written at 30 frames/s to a ``gst-launch-1.0 … pipewiresink``), and a consumer as an application would
be one (``gst-launch-1.0 pipewiresrc target-object=dogfilter``, frames read with their arrival time).

hop    the virtual camera alone: ``VirtualCamera.put`` → the consumer (latency, CPU per frame of the writer thread
       and of its gst-launch child)
chain  ``dogfilter live --source pipewire:benchcam --virtual-camera``: the test camera → capture → … → display →
       the virtual camera → the consumer (what a video call sees), frames/s at the consumer and latency
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dogfilter.commands.bench import pct
from dogfilter.common import children

CLK = os.sysconf("SC_CLK_TCK")
BITS, BAR_H = 10, 16  # a frame number (mod 1024) as black/white cells along the bottom edge
TOOLS = ("pipewire", "wireplumber", "dbus-daemon", "gst-launch-1.0", "gst-inspect-1.0", "pw-dump")
ELEMENTS = ("pipewiresink", "pipewiresrc", "y4menc", "rawvideoparse", "videoconvert", "fdsrc")


def missing() -> str | None:
    """Why the PipeWire pieces cannot run here (None: they can)."""
    from dogfilter.common.media.vcam import gst_has

    gone = [t for t in TOOLS if not shutil.which(t)]
    if gone:
        return (f"{', '.join(gone)} not installed (Debian: apt install pipewire pipewire-bin wireplumber dbus "
                "gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good)")
    gone = [e for e in ELEMENTS if not gst_has(e)]
    return f"GStreamer elements missing: {', '.join(gone)}" if gone else None


def stamp(frame: np.ndarray, i: int) -> np.ndarray:
    h, w = frame.shape[:2]
    cell = w // BITS
    for b in range(BITS):
        frame[h - BAR_H:, b * cell:(b + 1) * cell] = 255 if (i >> b) & 1 else 0
    return frame


def read_stamp(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    cell = w // BITS
    strip = frame[h - BAR_H + 4:h - 4].mean(axis=(0, 2))
    return sum(1 << b for b in range(BITS) if strip[b * cell + 4:(b + 1) * cell - 4].mean() > 128)


def cpu_s(pid: int, tid: int | None = None) -> float:
    """CPU seconds of a process (or of one of its threads), from /proc."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        f = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK
    except (OSError, IndexError):
        return 0.0


class PrivatePipeWire:
    """pipewire + wireplumber + a session bus of their own, in a temporary XDG_RUNTIME_DIR; ``env`` reaches it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dogfilter-pw-"))
        self.dir.chmod(0o700)
        bus = f"unix:path={self.dir}/bus"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.dir), "DBUS_SESSION_BUS_ADDRESS": bus,
                    "PIPEWIRE_RUNTIME_DIR": str(self.dir)}
        self.env.pop("PIPEWIRE_REMOTE", None)
        self.procs: list[subprocess.Popen] = []
        self.log = (self.dir / "pipewire.log").open("ab")

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def start(self, timeout_s: float = 20.0) -> PrivatePipeWire:
        self._spawn(["dbus-daemon", "--session", f"--address={self.env['DBUS_SESSION_BUS_ADDRESS']}", "--nofork"])
        self._wait(lambda: (self.dir / "bus").exists(), timeout_s, "the session bus")
        self._spawn(["pipewire"])
        self._wait(lambda: (self.dir / "pipewire-0").exists(), timeout_s, "pipewire")
        self._spawn(["wireplumber"])
        self._wait(self._session_up, timeout_s, "wireplumber")
        return self

    def _session_up(self) -> bool:
        out = subprocess.run(["pw-dump"], env=self.env, capture_output=True, text=True, timeout=10).stdout
        return "WirePlumber" in out or "wireplumber" in out

    def _wait(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not cond():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"private PipeWire: {what} did not start ({'exited' if dead else 'timeout'})")
            time.sleep(0.1)

    def stop(self) -> None:
        children.stop(reversed(self.procs), group=True)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePipeWire:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def face_frames(n: int, size: tuple[int, int] = (640, 480), fps: float = 30.0) -> list[np.ndarray]:
    """n frames of the demo scene (three faces that change expression)."""
    from dogfilter.common.scene import DemoScene

    scene = DemoScene(*size)
    return [scene.render(i / fps) for i in range(n)]


class TestCamera:
    """A PipeWire camera named ``name``: ``frames`` in a loop at ``fps``, each stamped with its number; ``sent``
    holds when each number went out (the newest time per number)."""

    def __init__(self, env: dict[str, str], name: str, frames: list[np.ndarray], fps: float = 30.0) -> None:
        h, w = frames[0].shape[:2]
        props = f"props,media.class=Video/Source,media.role=Camera,node.name={name},node.description={name}"
        self.proc = subprocess.Popen(
            ["gst-launch-1.0", "-q", "fdsrc", "fd=0", f"blocksize={w * h * 3}", "!", "rawvideoparse", "format=bgr",
             f"width={w}", f"height={h}", f"framerate={round(fps)}/1", "!", "videoconvert", "!", "pipewiresink",
             "mode=provide", "sync=false", f"stream-properties={props}"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, bufsize=0,
            start_new_session=True)
        self.frames, self.period = frames, 1 / fps
        self.sent: dict[int, float] = {}
        self.stopped = False
        self.thread = threading.Thread(target=self._feed, daemon=True, name=f"camera-{name}")
        self.thread.start()

    def _feed(self) -> None:
        i, t = 0, time.monotonic()
        assert self.proc.stdin is not None
        while not self.stopped:
            f = stamp(self.frames[i % len(self.frames)].copy(), i % (1 << BITS))
            try:
                self.proc.stdin.write(f.tobytes())
            except OSError:
                return
            self.sent[i % (1 << BITS)] = time.monotonic()
            i += 1
            t += self.period
            time.sleep(max(0.0, t - time.monotonic()))

    def stop(self) -> None:
        self.stopped = True
        children.stop([self.proc])


class Consumer:
    """An application reading the camera ``target``: every frame with its arrival time and number; ``keep``
    frames kept whole (every ``keep_every``-th)."""

    def __init__(self, env: dict[str, str], target: str, size: tuple[int, int] = (640, 480),
                 keep_every: int = 0) -> None:
        self.w, self.h = size
        self.proc = subprocess.Popen(
            ["gst-launch-1.0", "-q", "pipewiresrc", f"target-object={target}", "!", "videoconvert", "!",
             f"video/x-raw,format=BGR,width={self.w},height={self.h}", "!", "fdsink", "fd=1", "sync=false"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.times: list[float] = []
        self.numbers: list[int] = []
        self.kept: list[tuple[int, np.ndarray]] = []
        self.keep_every = keep_every
        self.thread = threading.Thread(target=self._read, daemon=True, name=f"consumer-{target}")
        self.thread.start()

    def _read(self) -> None:
        n = self.w * self.h * 3
        assert self.proc.stdout is not None
        while True:
            data = self.proc.stdout.read(n)
            t = time.monotonic()
            if len(data) < n:
                return
            f = np.frombuffer(data, np.uint8).reshape(self.h, self.w, 3)
            self.times.append(t)
            self.numbers.append(read_stamp(f))
            if self.keep_every and len(self.times) % self.keep_every == 0:
                self.kept.append((len(self.times) - 1, f.copy()))

    def stop(self) -> None:
        children.stop([self.proc])
        self.thread.join(5)


def wait_node(env: dict[str, str], name: str, timeout_s: float) -> bool:
    """PipeWire lists a node called ``name``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        out = subprocess.run(["pw-dump"], env=env, capture_output=True, text=True, timeout=10).stdout
        if f'"node.name": "{name}"' in out:
            return True
        time.sleep(0.2)
    return False


def latencies(cam: TestCamera | dict[int, float], c: Consumer, since: float) -> list[float]:
    """ms from a number's publication to each of its first arrivals at the consumer (repeats are not counted)."""
    sent = cam.sent if isinstance(cam, TestCamera) else cam
    out, last = [], None
    for t, n in zip(c.times, c.numbers, strict=False):
        if t >= since and n != last and n in sent and 0 <= t - sent[n] < 5:
            out.append((t - sent[n]) * 1000)
        last = n
    return out


def gaps(times: list[float]) -> float:
    return max(np.diff(times), default=0.0) if len(times) > 1 else float("inf")


def bench_hop(seconds: float, fps: float = 30.0) -> dict[str, float]:
    """The virtual camera alone, in this process: put → the consumer."""
    from dogfilter.common.media.vcam import VirtualCamera

    frames = face_frames(30)
    with PrivatePipeWire() as pw:
        cam = VirtualCamera("pipewire", name="dogfilter", env=pw.env)
        sent: dict[int, float] = {}
        consumer = None
        try:
            i, t = 0, time.monotonic()
            cam.put(stamp(frames[0].copy(), 0), fps)
            if not wait_node(pw.env, "dogfilter", 15):
                raise RuntimeError("the virtual camera did not appear in PipeWire")
            consumer = Consumer(pw.env, "dogfilter")
            end = time.monotonic() + seconds + 2
            t, start, cpu0 = time.monotonic(), 0.0, (0.0, 0.0, 0)
            while time.monotonic() < end:
                if not start and consumer.times:
                    assert cam.proc is not None  # frames came: the writer started it
                    start = time.monotonic()
                    cpu0 = (cpu_s(cam.proc.pid), cpu_s(os.getpid(), cam.tid), cam.counts["frames_sent"])
                i += 1
                n = i % (1 << BITS)
                cam.put(stamp(frames[i % len(frames)].copy(), n), fps)
                sent[n] = time.monotonic()
                t += 1 / fps
                time.sleep(max(0.0, t - time.monotonic()))
            frames_out = cam.counts["frames_sent"] - cpu0[2]
            assert cam.proc is not None
            child = (cpu_s(cam.proc.pid) - cpu0[0]) / max(1, frames_out) * 1000
            writer = (cpu_s(os.getpid(), cam.tid) - cpu0[1]) / max(1, frames_out) * 1000
            lat = latencies(sent, consumer, start + 0.5)
            recv = [x for x in consumer.times if x >= start]
            return {"fps": (len(recv) - 1) / (recv[-1] - recv[0]) if len(recv) > 1 else 0.0,
                    "p50_ms": pct(lat, 50),
                    "p99_ms": pct(lat, 99),
                    "cpu_ms_per_frame_gst": child, "cpu_ms_per_frame_writer": writer, "frames": len(recv)}
        finally:
            if consumer is not None:
                consumer.stop()
            cam.close()


def bench_chain(seconds: float) -> dict[str, float]:
    """``dogfilter live --source pipewire:benchcam --virtual-camera``: the test camera → the consumer."""
    import json

    from dogfilter.commands.run import Pipeline

    frames = face_frames(60)
    with PrivatePipeWire() as pw:
        cam = TestCamera(pw.env, "benchcam", frames)
        consumer = None
        p = Pipeline(mode="live", env={k: pw.env[k] for k in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
                                                                "PIPEWIRE_RUNTIME_DIR")},
                     values={"source": ["pipewire:benchcam"], "virtual_camera": "*"})
        stats = p.dir / "stats.json"
        p.extra["display"].append(f"--stats-out={stats}")
        try:
            if not wait_node(pw.env, "benchcam", 15):
                raise RuntimeError("the test camera did not appear in PipeWire")
            p.start()
            if not wait_node(pw.env, "dogfilter", 60):
                raise RuntimeError("the virtual camera did not appear: " + (p.check() or ("", 0))[0])
            time.sleep(2)  # the models are loaded, frames flow
            consumer = Consumer(pw.env, "dogfilter")
            time.sleep(1)
            start = time.monotonic()
            pids = {n: pr.pid for n, pr in p.procs.items()}
            cpu0 = {n: cpu_s(pid) for n, pid in pids.items()}
            time.sleep(seconds)
            cpu = {n: cpu_s(pid) - cpu0[n] for n, pid in pids.items()}
            s = json.loads(stats.read_text())
            recv = [x for x in consumer.times if x >= start]
            lat = latencies(cam, consumer, start)
            shown = s.get("fps", 0.0)
            inside = s.get("latency_ms", {}).get("capture→display", {}).get("p50", float("nan"))
            return {"fps": (len(recv) - 1) / (recv[-1] - recv[0]) if len(recv) > 1 else 0.0,
                    "new_fps": len(lat) / seconds, "display_fps": shown,
                    "p50_ms": pct(lat, 50),
                    "p99_ms": pct(lat, 99),
                    "capture_display_p50_ms": inside,
                    "display_cpu_ms_per_frame": cpu.get("display.1", 0.0) / max(1, len(recv)) * 1000,
                    "max_gap_ms": gaps(recv) * 1000}
        finally:
            if consumer is not None:
                consumer.stop()
            p.stop()
            cam.stop()


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    why = missing()
    if why:
        log(f"virtual camera: skipped: {why}")
        return ["## Virtual camera", "", f"skipped: {why}", ""], {"skipped": why}
    log("virtual camera…")
    secs = 4 if quick else 10
    hop = bench_hop(secs)
    chain = bench_chain(secs)

    def f(x: float, d: int = 1) -> str:
        return "–" if x != x else f"{x:.{d}f}"

    lines = ["## Virtual camera (`--only vcam`; a private PipeWire, 640×480 at 30 frames/s, consumer = "
             "`gst-launch-1.0 pipewiresrc target-object=dogfilter`)", "",
             "| path | frames/s at the consumer | latency p50 ms | p99 ms | CPU ms/frame |", "|---|---|---|---|---|",
             f"| the hop alone: `put` → consumer | {f(hop['fps'])} | {f(hop['p50_ms'])} | {f(hop['p99_ms'])} | "
             f"{f(hop['cpu_ms_per_frame_gst'], 2)} (gst-launch) + {f(hop['cpu_ms_per_frame_writer'], 2)} (writer) |",
             f"| PipeWire camera → dogfilter live → virtual camera → consumer | {f(chain['fps'])} "
             f"({f(chain['new_fps'])} new) | {f(chain['p50_ms'])} | {f(chain['p99_ms'])} | "
             f"{f(chain['display_cpu_ms_per_frame'], 2)} (display, all of it) |", "",
             f"capture→display p50 inside the pipeline: {f(chain['capture_display_p50_ms'])} ms; longest gap at the "
             f"consumer: {f(chain['max_gap_ms'], 0)} ms.", ""]
    return lines, {"hop": hop, "chain": chain}
