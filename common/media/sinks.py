"""Where composited frames end up: files (a video, an image, a folder of images) and the statistics of each stream.

A video is one size: pictures of other sizes (a folder of mixed photos) are letterboxed into it, aspect kept, never
stretched; an image or a folder of images keeps each picture's own size (and so does an .avi: an odd width or
height is kept exactly; .mp4 and .mkv round it down to even, with a warning naming the change).  A video or an image
appears at its path only complete (see :class:`Recorder`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.metrics import Histogram, Rate, Window, hops, known_events
from dogfilter.common.transport.wire import Message

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}
MAX_LABELS = 16  # emotion labels counted per stream; any others count as "other"
log = logging.getLogger("sinks")


def letterbox(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` scaled to fit ``size`` (w, h), aspect kept, centred on black."""
    w, h = size
    k = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, round(img.shape[1] * k)), max(1, round(img.shape[0] * k))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    out[y:y + nh, x:x + nw] = small if small.ndim == 3 else small[:, :, None]
    return out


class Recorder:
    """One ``--output``: a video, an image, or a folder of images.

    Outputs never lie: a video or an image is written to a hidden temporary name beside the target
    (``.NAME.partial-PID.EXT``) and renamed onto the target only by :meth:`commit`, once complete, checked (a video
    is opened again and must hold every frame written) and flushed to disk; :meth:`abort` (a run cut short) removes
    it, so the target holds a whole output or nothing.  Any write failure (disk full, permissions) is a
    DogfilterError (one line).  A folder gets each frame whole (written aside, then renamed) as it comes.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.n = 0
        self.letterboxed = 0
        self.folder = path.endswith(("/", os.sep)) or self.path.is_dir()
        self.ext = ext = self.path.suffix.lower()
        if not self.folder and ext not in VIDEO_CODECS and ext not in IMAGE_EXTS:
            raise DogfilterError(f"--output {path}: unknown kind (use {', '.join(sorted(VIDEO_CODECS))}, "
                                 f"{', '.join(sorted(IMAGE_EXTS))} or a folder/)")
        parent = self.path if self.folder else self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DogfilterError(f"--output {path}: cannot create {parent}: {e.strerror}") from None
        self.tmp: Path | None = None
        if not self.folder:  # made now: a folder we may not write in is said before any frame is worked on
            tmp = parent / f".{self.path.name}.partial-{os.getpid()}{ext}"
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
            except OSError as e:
                raise DogfilterError(f"--output {path}: cannot write in {parent}: {e.strerror}") from None
            self.tmp = tmp

    def _fail(self, why: str) -> DogfilterError:
        self.abort()
        return DogfilterError(f"cannot write {self.path}: {why} (nothing written there)")

    def _write_file(self, target: Path, data: bytes) -> None:
        try:
            with target.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise self._fail(e.strerror or str(e)) from None

    def write(self, img: np.ndarray, fps: float) -> None:
        if self.folder or self.ext in IMAGE_EXTS:
            ext = ".png" if self.folder else self.ext
            ok, buf = cv2.imencode(ext, img)
            if not ok:
                raise self._fail(f"the {ext} encoder refused a {img.shape} frame")
            if self.folder:  # each frame whole: written aside, then renamed
                final = self.path / f"frame_{self.n:06d}.png"
                part = self.path / f".frame_{self.n:06d}.partial-{os.getpid()}.png"
                self._write_file(part, buf.tobytes())
                try:
                    part.replace(final)
                except OSError as e:
                    part.unlink(missing_ok=True)
                    raise self._fail(e.strerror or str(e)) from None
            else:
                assert self.tmp is not None
                self._write_file(self.tmp, buf.tobytes())
        else:
            if self.writer is None:
                self._open_video(img, fps)
            if (img.shape[1], img.shape[0]) != self.size:
                assert self.size is not None
                if not self.letterboxed:
                    log.warning("%s: pictures of other sizes than %dx%d are letterboxed into it (a video has one "
                                "size; record to a folder/ to keep each size)", self.path, *self.size)
                self.letterboxed += 1
                img = letterbox(img, self.size)
            assert self.writer is not None
            with _quiet_opencv():  # a failing writer warns on every frame; commit() says it once
                self.writer.write(img)
        self.n += 1

    def _open_video(self, img: np.ndarray, fps: float) -> None:
        assert self.tmp is not None
        self.size = w, h = img.shape[1], img.shape[0]
        fourcc = cv2.VideoWriter.fourcc(*VIDEO_CODECS[self.ext])
        if (w % 2 or h % 2) and self.ext == ".avi":  # FFmpeg's writer rounds odd sides down; OpenCV's own keeps them
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.CAP_OPENCV_MJPEG, fourcc, fps, self.size)
        else:
            if w % 2 or h % 2:
                log.warning("%s: %dx%d frames are recorded as %dx%d (this codec wants even sides; record to .avi or "
                            "a folder/ to keep the exact size)", self.path, w, h, w - w % 2, h - h % 2)
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, self.size)
        if not self.writer.isOpened():
            raise self._fail("the video writer did not open")

    def commit(self) -> None:
        """The output is complete: checked, flushed and renamed onto its target (DogfilterError if it cannot be)."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            assert self.tmp is not None
            with _quiet_opencv(stderr=True):  # FFmpeg's own complaint of a broken file goes to stderr
                cap = cv2.VideoCapture(str(self.tmp))
                frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
                cap.release()
            if frames != self.n:  # the writer says nothing of a full disk: its file does
                raise self._fail(f"the video holds {frames} of the {self.n} frames written (disk full?)")
        if self.tmp is None:
            return
        if self.n == 0:
            self.abort()
            log.warning("%s: no frame came: nothing written", self.path)
            return
        try:
            with self.tmp.open("rb+") as f:
                os.fsync(f.fileno())
            self.tmp.replace(self.path)
        except OSError as e:
            raise self._fail(e.strerror or str(e)) from None
        self.tmp = None
        try:  # the rename itself on disk
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass

    def abort(self) -> None:
        """A run cut short, or a failure: the temporary file goes, the target is left as it was."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None

    def close(self, complete: bool = True) -> None:
        self.commit() if complete else self.abort()


@contextlib.contextmanager
def _quiet_opencv(stderr: bool = False) -> Iterator[None]:
    """OpenCV's warnings off (and with ``stderr``, FFmpeg's lines too: file descriptor 2 to /dev/null)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    saved = None
    if stderr:
        sys.stderr.flush()
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        cv2.utils.logging.setLogLevel(level)


def finish(recorders: Any, complete: bool) -> None:
    """Commit (``complete``) or abort every recorder; the first failure is raised once all were handled."""
    error: DogfilterError | None = None
    for r in recorders:
        try:
            r.close(complete and error is None)
        except DogfilterError as e:
            error = error or e
    if error is not None:
        raise error


MAX_STAGES = 16  # stage names kept per stream (the wire allows 16 a message; more over time are ignored)
MAX_WORKERS = 16  # processes of one stage (``detect@worker``) kept per stream: the least recently heard goes


class StreamStats:
    """What the display knows of one stream: frames, rate, latency per hop, faces and emotions, the counters of
    every stage as they were attached to its last frame.  A stage run as several processes reports each as
    ``stage@worker``; its counters are the sum over them."""

    def __init__(self) -> None:
        self.frames = 0
        self.rate = Rate()
        self.latency: dict[str, Window] = {}
        self.histograms: dict[str, Histogram] = {}
        self._stages: dict[str, dict[str, int]] = {}
        self._workers: dict[str, OrderedDict[str, dict[str, int]]] = {}
        self.emotions: Counter[str] = Counter()
        self.faces = 0
        self.size: list[int] = []
        self.last_frame = -1
        self.ended: int | None = None  # the last frame number, once the stream has ended
        self.started = time.monotonic()
        self.last_heard = self.started  # when its last message came

    def add(self, msg: Message) -> None:
        self.frames += 1
        self.rate.tick()
        for hop, ms in hops(msg.ts).items():
            self.latency.setdefault(hop, Window()).add(ms)
            self.histograms.setdefault(hop, Histogram()).add(ms / 1000)
        self.absorb(msg)
        self.faces += len(msg.faces)
        for f in msg.faces:
            label = str(f.emotion)
            self.emotions[label if label in self.emotions or len(self.emotions) < MAX_LABELS else "other"] += 1
        if msg.image is not None:
            self.size = list(msg.image.shape[:2][::-1])
        self.last_frame = msg.frame

    def absorb(self, msg: Message) -> None:
        """Every stage's counters the message carries: the stages and counter names of the pipeline only (a
        fixed vocabulary: ``metrics.EVENTS``), so a peer's invented names are never kept."""
        for key, raw in msg.meta.get("stats", {}).items():
            stage, _, worker = key.partition("@")
            counts = known_events(stage, raw)
            if counts is None:
                continue
            if stage not in self._stages and stage not in self._workers and \
                    len(self._stages) + len(self._workers) >= MAX_STAGES:
                continue
            if not worker:
                self._stages[stage] = counts
                continue
            per = self._workers.setdefault(stage, OrderedDict())
            per[worker] = counts
            per.move_to_end(worker)
            while len(per) > MAX_WORKERS:
                per.popitem(last=False)

    @property
    def stages(self) -> dict[str, dict[str, int]]:
        """Each stage's counters (summed over its processes)."""
        out = dict(self._stages)
        for stage, per in self._workers.items():
            total: Counter[str] = Counter()
            for counts in per.values():
                total.update(counts)
            out[stage] = {**out.get(stage, {}), **total}
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "fps": round(self.rate.per_second(), 2), "size": self.size,
                "latency_ms": {k: w.summary() for k, w in self.latency.items()}, "faces": self.faces,
                "emotions": dict(self.emotions), "counters": self.stages, "ended": self.ended is not None,
                "workers": {stage: dict(per) for stage, per in self._workers.items()}}
