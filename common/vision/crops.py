"""The classifier's input: a face's box cut out of the frame, grey, 48×48 (no PyTorch here: detect uses it)."""

from __future__ import annotations

import cv2
import numpy as np

CROP = 48


def face_crop(image: np.ndarray, box: list[int] | tuple[int, ...], size: int = CROP) -> np.ndarray:
    """The tutorial's classifier input: the face box of the frame, grey, resized to size×size (uint8).

    The box is clipped to the frame, so a face at the edge still gets a crop.
    """
    x, y, w, h = (int(round(v)) for v in box)
    H, W = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((size, size), np.uint8)
    roi = image[y0:y1, x0:x1]
    if roi.ndim == 3 and roi.shape[2] > 1:
        roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY if roi.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return cv2.resize(roi, (size, size)).reshape(size, size)


def face_crops(image: np.ndarray, boxes: list) -> np.ndarray:
    """N×48×48 crops of the boxes (0×48×48 for no face)."""
    if not boxes:
        return np.zeros((0, CROP, CROP), np.uint8)
    return np.stack([face_crop(image, b) for b in boxes])
