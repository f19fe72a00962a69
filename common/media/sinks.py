"""Where composited frames end up: files (a video, an image, a folder of images) and the statistics of each stream.

A video is one size: pictures of other sizes (a folder of mixed photos) are letterboxed into it, aspect kept, never
stretched; an image or a folder of images keeps each picture's own size.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.metrics import Histogram, Rate, Window, hops
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
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.n = 0
        self.letterboxed = 0
        self.folder = path.endswith(("/", os.sep)) or self.path.is_dir()
        ext = self.path.suffix.lower()
        if not self.folder and ext not in VIDEO_CODECS and ext not in IMAGE_EXTS:
            raise DogfilterError(f"--output {path}: unknown kind (use {', '.join(sorted(VIDEO_CODECS))}, "
                                 f"{', '.join(sorted(IMAGE_EXTS))} or a folder/)")
        parent = self.path if self.folder else self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DogfilterError(f"--output {path}: cannot create {parent}: {e.strerror}") from None

    def write(self, img: np.ndarray, fps: float) -> None:
        ext = self.path.suffix.lower()
        if self.folder:
            ok = cv2.imwrite(str(self.path / f"frame_{self.n:06d}.png"), img)
        elif ext in IMAGE_EXTS:
            ok = cv2.imwrite(str(self.path), img)
        else:
            if self.writer is None:
                self.size = (img.shape[1], img.shape[0])
                self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[ext]), fps,
                                              self.size)
                if not self.writer.isOpened():
                    raise DogfilterError(f"cannot open {self.path} for writing")
            if (img.shape[1], img.shape[0]) != self.size:
                assert self.size is not None
                if not self.letterboxed:
                    log.warning("%s: pictures of other sizes than %dx%d are letterboxed into it (a video has one "
                                "size; record to a folder/ to keep each size)", self.path, *self.size)
                self.letterboxed += 1
                img = letterbox(img, self.size)
            self.writer.write(img)
            ok = True
        if not ok:
            raise DogfilterError(f"cannot write {self.path}")
        self.n += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


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

    def add(self, msg: Message) -> None:
        self.frames += 1
        self.rate.tick()
        for hop, ms in hops(msg.ts).items():
            self.latency.setdefault(hop, Window()).add(ms)
            self.histograms.setdefault(hop, Histogram()).add(ms / 1000)
        self.absorb(msg)
        self.faces += len(msg.faces)
        for f in msg.faces:
            label = str(f.get("emotion"))
            self.emotions[label if label in self.emotions or len(self.emotions) < MAX_LABELS else "other"] += 1
        if msg.image is not None:
            self.size = list(msg.image.shape[:2][::-1])
        self.last_frame = msg.frame

    def absorb(self, msg: Message) -> None:
        for key, counts in msg.meta.get("stats", {}).items():
            stage, _, worker = key.partition("@")
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
