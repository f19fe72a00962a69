"""Face detectors behind one small interface: ``detect(bgr) -> list[Face]``.

A new detector is a class with a ``name`` and a ``detect`` method, registered in ``DETECTORS``; nothing else in
the pipeline changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from common.config import DogfilterError


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    score: float = 1.0
    keypoints: list[tuple[float, float]] | None = None  # eyes, nose, mouth, ears, when the detector gives them

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"box": [int(v) for v in self.box], "score": round(float(self.score), 4)}
        if self.keypoints:
            d["kp"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.keypoints]
        return d


class Detector(Protocol):
    name: str

    def detect(self, bgr: np.ndarray) -> list[Face]: ...


class HaarDetector:
    """The tutorial's detector (Step 2), with its exact parameters."""

    name = "haar"

    def __init__(self, cascade: str | None = None, scale_factor: float = 1.3, min_neighbors: int = 4,
                 min_size: int = 30) -> None:
        path = cascade or cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DogfilterError(f"cannot load Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, bgr: np.ndarray) -> list[Face]:
        gray = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        blackwhite = cv2.equalizeHist(gray)
        rects = self.cascade.detectMultiScale(
            blackwhite, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), flags=cv2.CASCADE_SCALE_IMAGE)
        return [Face((int(x), int(y), int(w), int(h))) for x, y, w, h in rects]


DETECTORS: dict[str, type] = {"haar": HaarDetector}


def create_detector(name: str, **options: Any) -> Detector:
    cls = DETECTORS.get(name)
    if cls is None:
        raise DogfilterError(f"unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return cls(**options)
