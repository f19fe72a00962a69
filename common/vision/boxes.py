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


def iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """IoU of two (x0, y0, x1, y1) boxes: plain floats (one pair is called for per face per frame: numpy's cost
    per call on four numbers is twenty times the arithmetic)."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a[:4])
    bx0, by0, bx1, by1 = (float(v) for v in b[:4])
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    return inter / max((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter, 1e-9)


def iou_xywh(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes (the wire's convention): :func:`iou`'s arithmetic, inline (the composite's
    identities call it for each pair of face and known face, several times a frame)."""
    ax0, ay0, aw, ah = float(a[0]), float(a[1]), float(a[2]), float(a[3])
    bx0, by0, bw, bh = float(b[0]), float(b[1]), float(b[2]), float(b[3])
    ax1, ay1, bx1, by1 = ax0 + aw, ay0 + ah, bx0 + bw, by0 + bh
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    return inter / max((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter, 1e-9)


def match(found: Sequence[Sequence[float]], truth: Sequence[Sequence[float]],
          min_iou: float = 0.5) -> tuple[int, int, list[int]]:
    """Detections against ground truth, (x, y, w, h) boxes, greedy by IoU, one detection per true face.

    Returns:
        ``(faces found, false boxes, index of the detection matched to each true face or -1)``.
    """
    pairs = sorted(((iou_xywh(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used: set[int] = set()
    which = [-1] * len(truth)
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i in used or which[j] >= 0:
            continue
        used.add(i)
        which[j] = i
    hits = sum(w >= 0 for w in which)
    return hits, len(found) - hits, which
