"""The filtered stream as a camera other applications open (Zoom, Meet, Discord, OBS, a browser): a virtual camera.

Backends, both a ``gst-launch-1.0`` child fed raw BGR frames on its stdin (no Python GStreamer bindings, nothing
built; the same one-frame pipe for both):

pipewire      a PipeWire ``Video/Source`` node with ``media.role=Camera`` named "dogfilter" (GStreamer's
              ``pipewiresink``): what modern Linux desktops and the browsers' camera portal list; user space, no
              kernel module
v4l2loopback  ``/dev/videoN`` of the v4l2loopback module (GStreamer's ``v4l2sink``): what older apps and OBS read

How it keeps a call alive: a writer thread sends a new frame as soon as it comes (the newest wins: one that is
replaced before it went out is counted, never queued, and the pipe to the child holds less than one frame, so a slow
reader never builds lag); when none comes for 1.5 frame periods (the pipeline stalls, a stage restarts) it sends the
last good frame again at the stream's rate, so the app never sees the camera freeze or vanish; a stream that ends
leaves a still frame (the last one, dimmed, with a line saying so).  Size and rate are the first frame's; a frame of
another size is letterboxed into it.  A child that dies is started again (back-off up to 10 s), logged and counted.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common import children
from dogfilter.common.errors import DogfilterError
from dogfilter.common.media.sinks import letterbox

BACKENDS = ("auto", "pipewire", "v4l2loopback")
NAME = "dogfilter"
FIRST = "*"  # --virtual-camera without a stream: the first stream the display sees
INSTALL = ("no virtual camera backend here: install PipeWire and its GStreamer plugin (Debian/Ubuntu: apt install "
           "pipewire wireplumber gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-good) and run "
           "them (a desktop session does), or load v4l2loopback (sudo modprobe v4l2loopback video_nr=10 "
           "card_label=dogfilter exclusive_caps=1)")
MAX_BACKOFF_S = 10.0
log = logging.getLogger("vcam")


def gst_has(element: str) -> bool:
    """GStreamer's command-line tools are installed and know ``element``."""
    if not shutil.which("gst-launch-1.0") or not shutil.which("gst-inspect-1.0"):
        return False
    try:
        return subprocess.run(["gst-inspect-1.0", element], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pipewire_running(env: dict[str, str] | None = None) -> bool:
    """A PipeWire daemon this user can reach (its socket in $XDG_RUNTIME_DIR, or $PIPEWIRE_REMOTE)."""
    env = dict(os.environ) if env is None else env
    remote = env.get("PIPEWIRE_REMOTE", "pipewire-0")
    if remote.startswith("/"):
        return Path(remote).exists()
    runtime = env.get("PIPEWIRE_RUNTIME_DIR") or env.get("XDG_RUNTIME_DIR")
    return runtime is not None and runtime != "" and Path(runtime, remote).exists()


def loopback_devices() -> list[str]:
    """v4l2loopback's /dev/videoN (virtual video4linux devices), those labelled "dogfilter" first."""
    found = []
    for d in sorted(Path("/sys/class/video4linux").glob("video*")):
        try:
            virtual = "/virtual/" in str(d.resolve())
            label = (d / "name").read_text().strip()
        except OSError:
            continue
        if virtual and Path("/dev", d.name).exists():
            found.append((NAME not in label.lower(), int(d.name[5:]) if d.name[5:].isdigit() else 0, d.name))
    return [f"/dev/{n}" for *_, n in sorted(found)]


def choose_backend(wanted: str, env: dict[str, str] | None = None) -> tuple[str, str | None]:
    """(backend, device) for ``--virtual-camera-backend``; DogfilterError with what to install when none works."""
    if wanted not in BACKENDS:
        raise DogfilterError(f"--virtual-camera-backend {wanted}: choose one of {', '.join(BACKENDS)}")
    if wanted in ("auto", "pipewire"):
        if pipewire_running(env) and gst_has("pipewiresink"):
            return "pipewire", None
        if wanted == "pipewire":
            raise DogfilterError("--virtual-camera-backend pipewire: " + (
                "PipeWire is not running for this user (no pipewire-0 socket in $XDG_RUNTIME_DIR)"
                if gst_has("pipewiresink") else "GStreamer's PipeWire plugin is missing (Debian/Ubuntu: apt install "
                "gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-good)"))
    devices = loopback_devices()
    if devices and gst_has("v4l2sink"):
        return "v4l2loopback", devices[0]
    if wanted == "v4l2loopback":
        raise DogfilterError("--virtual-camera-backend v4l2loopback: " + (
            "GStreamer's v4l2sink is missing (apt install gstreamer1.0-tools gstreamer1.0-plugins-good)" if devices
            else "no v4l2loopback device: sudo modprobe v4l2loopback video_nr=10 card_label=dogfilter "
                 "exclusive_caps=1"))
    raise DogfilterError(INSTALL)


def gst_command(backend: str, device: str | None, size: tuple[int, int], fps: float, name: str = NAME) -> list[str]:
    """The child that turns raw BGR frames on its stdin into the camera."""
    w, h = size
    num, den = round(fps * 1000), 1000
    head = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", f"blocksize={w * h * 3}", "!",
            "rawvideoparse", "format=bgr", f"width={w}", f"height={h}", f"framerate={num}/{den}", "!",
            "videoconvert", "!", "video/x-raw,format=YUY2", "!", "identity", "drop-allocation=true", "!"]
    # drop-allocation: videoconvert writes into buffers of its own, not the sink's pool (with pipewiresink's pool a
    # converted frame never leaves; PipeWire 0.3.65 even crashes on planar formats)
    if backend == "pipewire":
        props = (f"props,media.class=Video/Source,media.role=Camera,node.name={name},node.description={name},"
                 f"node.nick={name}")
        return [*head, "pipewiresink", "mode=provide", "sync=false", f"client-name={name}",
                f"stream-properties={props}"]
    return [*head, "v4l2sink", f"device={device}", "sync=false"]


def still(img: np.ndarray, text: str) -> np.ndarray:
    """The last frame, dimmed, with a line of text: what a camera whose stream ended shows."""
    out = (img.astype(np.uint16) * 2 // 5).astype(np.uint8)
    h, w = out.shape[:2]
    scale = max(0.5, w / 1280)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    org = (max(4, (w - tw) // 2), (h + th) // 2)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


class VirtualCamera:
    """One stream as a camera.  ``put`` (any thread, never blocks) hands a frame over; a writer thread feeds the
    child; ``end`` leaves a still frame; ``close`` removes the camera."""

    def __init__(self, backend: str = "auto", stream: str = FIRST, name: str = NAME,
                 logger: logging.Logger | None = None, env: dict[str, str] | None = None) -> None:
        self.env = env  # the child's environment (None: this process's)
        self.backend, self.device = choose_backend(backend, env)
        self.stream = None if stream == FIRST else stream
        self.name, self.log = name, logger or log
        self.cond = threading.Condition()
        self.current: np.ndarray | None = None
        self.seq = 0  # frames handed over (a still frame counts as one)
        self.sent_seq = 0
        self.size: tuple[int, int] | None = None
        self.period = 1 / 30
        self.closed = False
        self.proc: subprocess.Popen | None = None
        self.err: Any = None
        self.counts = {"frames_sent": 0, "frames_repeated": 0, "frames_replaced": 0, "frames_letterboxed": 0,
                       "restarts": 0}
        self.thread: threading.Thread | None = None
        self.tid: int | None = None  # the writer thread's (its CPU time, for the benchmark)

    def wants(self, stream: str) -> bool:
        """This stream is the camera's (the first one seen, unless one was named)."""
        if self.stream is None:
            self.stream = stream
            self.log.info("virtual camera %r (%s%s) shows stream %s", self.name, self.backend,
                          f" {self.device}" if self.device else "", stream)
        return stream == self.stream

    def put(self, img: np.ndarray, fps: float = 30.0) -> None:
        """The newest frame (the one before it, if it has not gone out yet, is replaced: counted)."""
        with self.cond:
            if self.size is None:
                self.size = (img.shape[1], img.shape[0])
                self.period = 1 / min(120.0, max(1.0, fps))
                self.thread = threading.Thread(target=self._write_loop, daemon=True, name="virtual-camera")
                self.thread.start()
            elif (img.shape[1], img.shape[0]) != self.size:
                self.counts["frames_letterboxed"] += 1
                img = letterbox(img, self.size)
            if self.seq != self.sent_seq:
                self.counts["frames_replaced"] += 1
            self.current, self.seq = img, self.seq + 1
            self.cond.notify()

    def end(self, text: str = "dogfilter: the stream has ended") -> None:
        """The stream ended: its last frame stays, dimmed, with ``text``."""
        with self.cond:
            if self.current is not None:
                self.current, self.seq = still(self.current, text), self.seq + 1
                self.cond.notify()

    def _next(self, last_sent: float, repeated: bool) -> tuple[np.ndarray, bool] | None:
        """Wait for a new frame (at most twice the rate) or for the moment to send the last one again."""
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                fresh = self.seq != self.sent_seq
                due = last_sent + self.period * (1.0 if repeated else 1.5)  # the first repeat waits for a late frame
                if fresh and self.current is not None and now - last_sent >= self.period / 2:
                    self.sent_seq = self.seq
                    return self.current, False
                if self.current is not None and now >= due:
                    return self.current, True
                wait = (last_sent + self.period / 2 - now) if fresh else due - now
                self.cond.wait(max(0.001, wait))
            return None

    def _write_loop(self) -> None:
        self.tid = threading.get_native_id()
        last_sent, repeated, backoff = 0.0, False, 1.0
        while True:
            got = self._next(last_sent, repeated)
            if got is None:
                return
            img, repeated = got
            if self.proc is None or self.proc.poll() is not None:
                if self.proc is not None:  # it died: say why, wait a little, start it again
                    self._died()
                    time.sleep(backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
                    if self.closed:
                        return
                self._start()
            assert self.proc is not None  # _start made one
            try:
                self._write(img)
            except OSError:  # the child is gone: started again on the next frame
                try:
                    self.proc.wait(1)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                continue
            backoff = 1.0
            last_sent = time.monotonic()
            self.counts["frames_sent"] += 1
            self.counts["frames_repeated"] += repeated

    def _start(self) -> None:
        assert self.size is not None
        cmd = gst_command(self.backend, self.device, self.size, 1 / self.period, self.name)
        self.err = tempfile.TemporaryFile()  # its last words, read if it dies (a pipe nobody reads could block it)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.err,
                                     bufsize=0, start_new_session=True, env=self.env)
        self.log.info("virtual camera %r: %dx%d at %g frames/s (%s)", self.name, *self.size, round(1 / self.period, 2),
                      self.backend)

    def _died(self) -> None:
        assert self.proc is not None
        self.counts["restarts"] += 1
        err = b""
        if self.err is not None:
            self.err.seek(0)
            err = self.err.read()[-4000:]
            self.err.close()
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        self.log.warning("virtual camera %r: gst-launch-1.0 exited (code %s)%s; starting it again", self.name,
                         self.proc.returncode, f": {lines[-1].strip()}" if lines else "")

    def _write(self, img: np.ndarray) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        view = np.ascontiguousarray(img).data.cast("B")
        fd = self.proc.stdin.fileno()
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def stats(self) -> dict[str, Any]:
        return {"backend": self.backend, "device": self.device, "name": self.name, "stream": self.stream,
                "size": list(self.size) if self.size else [], "fps": round(1 / self.period, 2), **self.counts}

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()
        if self.proc is not None:
            children.stop([self.proc], wait_s=3)  # its stdin may be mid-frame: a signal, not an EOF
        if self.thread is not None:
            self.thread.join(2)
