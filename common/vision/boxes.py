"""Face boxes: one IoU for everything that matches faces (detection's NMS, tracking, the composite's identities)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of K boxes (K×4)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    return float(box_iou(np.asarray(a, np.float64), np.asarray(b, np.float64)[None])[0])


def xyxy(box: Sequence[float]) -> np.ndarray:
    """(x, y, w, h) → (x0, y0, x1, y1)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x, y, x + w, y + h])


def iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes (the wire's convention)."""
    return iou(xyxy(a), xyxy(b))
