"""Frame sources for capture: a webcam index, a PipeWire camera, a video file, an image, a folder of images, or the
built-in demo.

Each kind of source is one class, registered in :data:`SOURCES`: the class says which ``--source`` specs it reads
(``claims``), opens one (``open``), and what capture needs to know of it (``own_size``, ``paces_itself``,
``on_demand``, ``frames_in``).  A new kind is one class and one entry; capture, the launcher and the one-shot path
ask the registry (:func:`source_class`, :func:`open_source`), never the spec's spelling.

``read()`` returns the next BGR frame, or None at the end.  Every source refuses frames bigger than
``max_pixels`` (one clear line for a single file; a skipped and counted file in a folder), says when an image file
is truncated (counted; what decoded is still used), and counts the files of a folder it could not use.
"""

from __future__ import annotations

import functools
import json
import logging
import select
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from dogfilter.common import children
from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport import imagehead

if TYPE_CHECKING:
    from dogfilter.common.scene.cache import CachedScene

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
log = logging.getLogger("sources")


@dataclass(frozen=True)
class Opening:
    """What capture's options say about opening a source, whatever its kind."""

    size: tuple[int, int] | None = None  # --size: what the demo renders at (others are resized by capture)
    fps: float = 30.0  # the rate of a source that has none of its own (the demo)
    loop: bool = False  # start a file again at its end
    max_pixels: int = 50_000_000  # refuse bigger frames


class Source:
    """``read()`` returns the next BGR frame, or None at the end; ``counts`` holds what it skipped and why."""

    fps: float | None = None  # the source's own rate, when it has one
    kind: ClassVar[str] = "source"  # its name in logs and the registry
    still = False  # unrelated pictures (photos), not frames of one video
    own_size: ClassVar[bool] = False  # made at its own size (--size, a tab's camera): capture does not resize it
    paces_itself: ClassVar[bool] = False  # a camera: frames come when they come (a file is read at --fps)
    on_demand: ClassVar[bool] = False  # live: any frame rendered when due (render_at), no reader thread

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @classmethod
    def claims(cls, spec: str) -> bool:
        """Whether a ``--source`` spec names a source of this kind (the registry asks each kind in turn)."""
        return False

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        """The source a spec this kind claims names; DogfilterError saying why not."""
        raise NotImplementedError

    @classmethod
    def frames_in(cls, spec: str) -> int | None:
        """How many frames the spec's source has, known without opening it (None: unknown, or endless)."""
        return None

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def render_at(self, i: int) -> np.ndarray:
        """Frame ``i``, made directly (only an ``on_demand`` source can)."""
        raise NotImplementedError(f"a {self.kind} source cannot make frame {i} on demand")

    def close(self) -> None:
        pass


def too_big(shape: tuple[int, ...], max_pixels: int) -> str | None:
    h, w = shape[:2]
    if h * w <= max_pixels:
        return None
    return (f"{w}x{h} ({h * w / 1e6:.1f} megapixels) is over the {max_pixels / 1e6:g} megapixel cap "
            "(--max-pixels; raise it for huge pictures)")


class DemoSource(Source):
    """The built-in demo scene (``common/scene``) as a source: frame i is the scene at i / fps seconds.

    The scene loops, so where a loop holds a whole number of frames, frame i is taken at (i mod frames per loop) /
    fps and the frames are kept once made (``common/scene/cache.py``: bounded, shared by every demo stream of this
    size in the process); live, the first ``render_at`` makes the rest of the loop in the background.
    """

    kind = "demo"
    fps: float  # always has one
    own_size = True
    on_demand = True

    def __init__(self, size: tuple[int, int] | None, fps: float) -> None:
        super().__init__()
        w, h = size or (640, 480)
        self.scene = _cached_scene(w, h)
        self.fps = fps
        self.i = 0
        per_loop = self.scene.scene.loop_seconds * fps
        self.per_loop = round(per_loop) if abs(per_loop - round(per_loop)) < 1e-6 else 0  # 0: frames never repeat

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec == "demo"

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        return cls(how.size, how.fps)

    def read(self) -> np.ndarray:
        frame = self._frame(self.i)
        self.i += 1
        return frame

    def render_at(self, i: int) -> np.ndarray:
        """Frame i of the scene at this source's rate, rendered directly (live mode skips what it drops)."""
        if self.per_loop:
            # from the frame after this one, around the loop: ahead of the stream, not painting what it paints
            self.scene.warm((k % self.per_loop) / self.fps for k in range(i + 1, i + self.per_loop))
        return self._frame(i)

    def _frame(self, i: int) -> np.ndarray:
        if not self.per_loop:
            return self.scene.scene.render(i / self.fps)
        return self.scene.render((i % self.per_loop) / self.fps)


@functools.cache
def _cached_scene(width: int, height: int) -> CachedScene:
    """One demo scene per frame size in a process, with what it kept (every demo stream of that size shares it)."""
    from dogfilter.common.scene import DemoScene
    from dogfilter.common.scene.cache import CachedScene

    return CachedScene(DemoScene(width, height))


class VideoSource(Source):
    """A video file (anything no other kind claims), or with an index, a camera OpenCV opens (:class:`CameraSource`)."""

    kind = "video"

    def __init__(self, spec: str | int, loop: bool = False, max_pixels: int = 50_000_000) -> None:
        super().__init__()
        self.spec, self.loop = spec, loop
        if isinstance(spec, int):
            self.cap = cv2.VideoCapture(spec)
            if not self.cap.isOpened():
                raise DogfilterError(f"cannot open camera {spec}: no such camera, or it is busy")
            self._first: np.ndarray | None = None
        else:
            p = Path(spec)
            if not p.is_file():
                raise DogfilterError(f"video not found: {p}")
            w, h = self._probe(p)
            if w * h > max_pixels:  # refuse before decoding a frame of it
                raise DogfilterError(f"video {p}: frames of {too_big((h, w), max_pixels)}")
            self.cap = cv2.VideoCapture(str(p))
            ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
            if not ok or first is None:
                raise DogfilterError(f"cannot read video {p}: not a video OpenCV can decode")
            self._first = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1 <= fps <= 1000 else None

    @classmethod
    def claims(cls, spec: str) -> bool:
        return True  # the last kind asked: a path that is nothing else is a video (or says why not)

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        return cls(spec, how.loop, how.max_pixels)

    @classmethod
    def frames_in(cls, spec: str) -> int | None:
        p = Path(spec)
        if not p.is_file():
            return None
        cap = cv2.VideoCapture(str(p))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        return n or None

    @staticmethod
    def _probe(p: Path) -> tuple[int, int]:
        cap = cv2.VideoCapture(str(p))
        try:
            return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        finally:
            cap.release()

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            f, self._first = self._first, None
            return f
        ok, frame = self.cap.read()
        if not ok and self.loop and isinstance(self.spec, str):
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        return frame if ok else None

    def close(self) -> None:
        self.cap.release()


class CameraSource(VideoSource):
    """A camera by its index (``--source 0``), opened by OpenCV."""

    kind = "camera"
    paces_itself = True

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.isdigit()

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        return cls(int(spec), how.loop, how.max_pixels)


def pipewire_cameras() -> list[dict] | None:
    """PipeWire's video sources (``pw-dump``): each node's properties, cameras first; None when it cannot tell."""
    if not shutil.which("pw-dump"):
        return None
    try:
        r = subprocess.run(["pw-dump"], capture_output=True, timeout=10, text=True)
        objects = json.loads(r.stdout) if r.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(objects, list):
        return None
    nodes = [o.get("info", {}).get("props", {}) for o in objects if isinstance(o, dict) and o.get("type", "")
             .endswith(":Node")]
    sources = [p for p in nodes if isinstance(p, dict) and p.get("media.class") == "Video/Source"]
    return sorted(sources, key=lambda p: p.get("media.role") != "Camera")


class PipeWireSource(Source):
    """A PipeWire camera (``pipewire:NAME``; ``pipewire:`` the first camera that is not dogfilter's own): a
    ``gst-launch-1.0 pipewiresrc`` child writes YUV4MPEG (a header with the size and rate, then one frame after
    another) on a pipe this source reads.  The camera paces itself; the newest frame wins in capture's reader."""

    kind = "camera"
    paces_itself = True
    OWN = "dogfilter"  # our own virtual camera: never read back as "the first camera" (a loop of ourselves)

    def __init__(self, target: str, max_pixels: int = 50_000_000, timeout_s: float = 15.0) -> None:
        from dogfilter.common.media.vcam import gst_has, pipewire_running

        super().__init__()
        spec = f"--source pipewire:{target}"
        if not pipewire_running():
            raise DogfilterError(f"{spec}: PipeWire is not running for this user (no pipewire-0 "
                                 "socket in $XDG_RUNTIME_DIR)")
        if not gst_has("pipewiresrc") or not gst_has("y4menc"):
            raise DogfilterError(f"{spec}: needs GStreamer's PipeWire plugin (Debian/Ubuntu: apt "
                                 "install gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-good)")
        cams = pipewire_cameras()
        names = [str(c.get("node.name", "")) for c in cams or []]
        if not target:
            mine = [n for n in names if n and n != self.OWN]
            target = mine[0] if mine else ""
            if cams is not None and not target:
                raise DogfilterError(f"{spec}: no PipeWire camera (other than dogfilter's own)")
        elif cams is not None and target not in names and not target.isdigit():  # a name (or a serial number)
            raise DogfilterError(f"{spec}: no such PipeWire camera (there are: {', '.join(names) or 'none'})")
        self.name = target or "default"
        cmd = ["gst-launch-1.0", "-q", "pipewiresrc", *([f"target-object={target}"] if target else []), "!",
               "videoconvert", "!", "video/x-raw,format=I420", "!", "y4menc", "!", "fdsink", "fd=1", "sync=false"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        assert self.proc.stdout is not None
        self.out = self.proc.stdout
        ready, _, _ = select.select([self.out], [], [], timeout_s)
        header = self.out.readline() if ready else b""
        if not header.startswith(b"YUV4MPEG2 "):
            self.close()
            raise DogfilterError(f"{spec}: no frames from PipeWire camera {self.name} within "
                                 f"{timeout_s:g} s")
        fields = {f[:1]: f[1:] for f in header.decode(errors="replace").split()[1:]}
        try:
            self.w, self.h = int(fields["W"]), int(fields["H"])
            num, _, den = fields.get("F", "30:1").partition(":")
            fps = int(num) / max(1, int(den or 1))
        except (KeyError, ValueError):
            self.close()
            raise DogfilterError(f"{spec}: unexpected stream header {header[:80]!r}") from None
        if self.w % 2 or self.h % 2:
            self.close()
            raise DogfilterError(f"{spec}: {self.w}x{self.h}: odd sizes are not supported")
        why = too_big((self.h, self.w), max_pixels)
        if why:
            self.close()
            raise DogfilterError(f"{spec}: frames of {why}")
        self.fps = fps if 1 <= fps <= 1000 else None
        self.frame_bytes = self.w * self.h * 3 // 2
        log.info("PipeWire camera %s: %dx%d at %g frames/s", self.name, self.w, self.h, round(fps, 2))

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.startswith("pipewire:")

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        return cls(spec.split(":", 1)[1], how.max_pixels)

    def read(self) -> np.ndarray | None:
        line = self.out.readline()  # FRAME[ params]
        if not line.startswith(b"FRAME"):
            return None  # the camera went away (or the child died): the stream ends
        data = self.out.read(self.frame_bytes)
        if len(data) < self.frame_bytes:
            return None
        yuv = np.frombuffer(data, np.uint8).reshape(self.h * 3 // 2, self.w)
        return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)

    def close(self) -> None:
        children.stop([self.proc], wait_s=3)


def truncated(path: Path) -> bool:
    """A JPEG without its end marker, or a PNG without its last chunk: cut short (a partial download, a full disk)."""
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError:
        return False
    if suffix in (".jpg", ".jpeg"):
        return b"\xff\xd9" not in tail
    if suffix == ".png":
        return b"IEND" not in tail
    return False


def read_image(p: Path, max_pixels: int) -> np.ndarray:
    """One picture, or DogfilterError saying why not (not found, not an image, too big)."""
    if not p.is_file():
        raise DogfilterError(f"image not found: {p}")
    # the size first: a JPEG's or PNG's own header, else a 1/8-scale decode; a huge picture is refused undecoded
    try:
        with p.open("rb") as f:
            head = imagehead.declared_size(f.read(imagehead.MAX_SCAN_BYTES))
    except OSError as e:
        raise DogfilterError(f"cannot read image {p}: {e.strerror}") from None
    try:
        if head is not None:
            approx = (head[1], head[0])
        else:
            small = cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8)
            if small is None:
                raise DogfilterError(f"cannot read image {p}: not an image OpenCV can decode")
            approx = (small.shape[0] * 8, small.shape[1] * 8)
        if approx[0] * approx[1] > max_pixels * 1.1:
            raise DogfilterError(f"image {p}: about {too_big(approx, max_pixels)}")
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None:
        raise DogfilterError(f"cannot read image {p}: not an image OpenCV can decode")
    why = too_big(img.shape, max_pixels)
    if why:
        raise DogfilterError(f"image {p}: {why}")
    return img


class ImagesSource(Source):
    """One image, or the images of a folder in name order; each a still photo at its own size."""

    kind = "images"
    still = True

    def __init__(self, paths: list[Path], loop: bool = False, max_pixels: int = 50_000_000,
                 first: np.ndarray | None = None) -> None:
        super().__init__()
        self.paths, self.loop, self.max_pixels, self.i = paths, loop, max_pixels, 0
        self._first = first  # the first picture, decoded already (open checked it)

    @classmethod
    def claims(cls, spec: str) -> bool:
        p = Path(spec)
        return p.is_dir() or p.suffix.lower() in IMAGE_EXTS

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        p = Path(spec)
        if not p.is_dir():
            first = read_image(p, how.max_pixels)  # fail now, with the reason, not at the first frame
            return cls([p], how.loop, how.max_pixels, first)
        entries = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        files = [f for f in entries if f.suffix.lower() in IMAGE_EXTS]
        if not files:
            raise DogfilterError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in folder {p}")
        src = cls(files, how.loop, how.max_pixels)
        if len(entries) > len(files):
            src.counts["files_skipped"] += len(entries) - len(files)
            log.warning("folder %s: %d files are not images (%s), skipped", p, len(entries) - len(files),
                        ", ".join(sorted(IMAGE_EXTS)))
        return src

    @classmethod
    def frames_in(cls, spec: str) -> int | None:
        p = Path(spec)
        return sum(1 for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS) if p.is_dir() else 1

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            img, self._first = self._first, None
            self.i = 1
            self._check_truncated(self.paths[0])
            return img
        while True:
            if self.i >= len(self.paths):
                if not self.loop or not self.paths:
                    return None
                self.i = 0
            p = self.paths[self.i]
            self.i += 1
            try:
                img = read_image(p, self.max_pixels)
            except DogfilterError as e:
                if len(self.paths) == 1:
                    raise
                self.counts["files_skipped"] += 1  # one bad file in a folder: skip it, keep going
                log.warning("skipping %s (%d skipped so far)", e, self.counts["files_skipped"])
                continue
            self._check_truncated(p)
            return img

    def _check_truncated(self, p: Path) -> None:
        if truncated(p):
            self.counts["files_truncated"] += 1
            log.warning("image %s is truncated: using what could be decoded (%d truncated so far)", p,
                        self.counts["files_truncated"])


#: Every kind of source, in the order a ``--source`` spec is tried against them (the first that claims it wins;
#: a video file last, as anything else).  A new kind: a Source subclass with ``claims`` and ``open``, one entry here.
SOURCES: dict[str, type[Source]] = {
    "demo": DemoSource,
    "pipewire": PipeWireSource,
    "camera": CameraSource,
    "images": ImagesSource,
    "video": VideoSource,
}


def source_class(spec: str) -> type[Source]:
    """The kind of source a ``--source`` spec names."""
    return next(cls for cls in SOURCES.values() if cls.claims(spec))


def open_source(spec: str, size: tuple[int, int] | None = None, fps: float = 30.0, loop: bool = False,
                max_pixels: int = 50_000_000) -> Source:
    """Open the source a ``--source`` spec names (DogfilterError saying why not)."""
    return source_class(spec).open(spec, Opening(size, fps, loop, max_pixels))


def parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DogfilterError(f"bad --size {text!r}: want WIDTHxHEIGHT, e.g. 640x480") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise DogfilterError(f"bad --size {text!r}: each side must be 16..8192")
    return w, h
