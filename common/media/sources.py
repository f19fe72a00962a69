"""Frame sources for capture: a webcam index, a video file, an image, a folder of images, or the built-in demo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from dogfilter.common.errors import DogfilterError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class Source:
    """``read()`` returns the next BGR frame, or None at the end."""

    fps: float | None = None  # the source's own rate, when it has one
    kind = "source"

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DemoSource(Source):
    kind = "demo"

    def __init__(self, size: tuple[int, int] | None, fps: float) -> None:
        from dogfilter.common.media.demo import DemoSource as Scene

        w, h = size or (640, 480)
        self.scene = Scene(w, h)
        self.fps = fps
        self.i = 0

    def read(self) -> np.ndarray:
        frame = self.scene.render(self.i / self.fps)
        self.i += 1
        return frame

    def render_at(self, i: int) -> np.ndarray:
        """Frame i of the scene at this source's rate, rendered directly (live mode skips what it drops)."""
        return self.scene.render(i / self.fps)


class VideoSource(Source):
    def __init__(self, spec: str | int, loop: bool = False) -> None:
        self.spec, self.loop = spec, loop
        if isinstance(spec, int):
            self.kind = "camera"
            self.cap = cv2.VideoCapture(spec)
            if not self.cap.isOpened():
                raise DogfilterError(f"cannot open camera {spec}: no such camera, or it is busy")
        else:
            self.kind = "video"
            p = Path(spec)
            if not p.is_file():
                raise DogfilterError(f"video not found: {p}")
            self.cap = cv2.VideoCapture(str(p))
            ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
            if not ok or first is None:
                raise DogfilterError(f"cannot read video {p}: not a video OpenCV can decode")
            self._first: np.ndarray | None = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1 <= fps <= 1000 else None

    def read(self) -> np.ndarray | None:
        if getattr(self, "_first", None) is not None:
            f, self._first = self._first, None
            return f
        ok, frame = self.cap.read()
        if not ok and self.loop and self.kind == "video":
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        return frame if ok else None

    def close(self) -> None:
        self.cap.release()


class ImagesSource(Source):
    kind = "images"

    def __init__(self, paths: list[Path], loop: bool = False) -> None:
        self.paths, self.loop, self.i = paths, loop, 0

    def read(self) -> np.ndarray | None:
        while True:
            if self.i >= len(self.paths):
                if not self.loop:
                    return None
                self.i = 0
            p = self.paths[self.i]
            self.i += 1
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                return img
            if len(self.paths) == 1:
                raise DogfilterError(f"cannot read image {p}")
            # one unreadable file in a folder: skip it (the caller counts it), keep going
            self.skipped = getattr(self, "skipped", 0) + 1


def open_source(spec: str, size: tuple[int, int] | None = None, fps: float = 30.0, loop: bool = False) -> Source:
    if spec == "demo":
        return DemoSource(size, fps)
    if spec.isdigit():
        return VideoSource(int(spec), loop)
    p = Path(spec)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise DogfilterError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in folder {p}")
        return ImagesSource(files, loop)
    if p.suffix.lower() in IMAGE_EXTS:
        if not p.is_file():
            raise DogfilterError(f"image not found: {p}")
        if cv2.imread(str(p)) is None:
            raise DogfilterError(f"cannot read image {p}: not an image OpenCV can decode")
        return ImagesSource([p], loop)
    return VideoSource(spec, loop)


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
