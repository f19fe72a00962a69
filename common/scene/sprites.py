"""The demo people as sprites: each person, each expression, pre-scaled to a pyramid of face widths (built once)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from dogfilter.common.scene.expressions import EXPRESSIONS, with_expression
from dogfilter.common.scene.portrait import CROP, PHOTO_FACE, head_cutout, restyle

__all__ = ["LEVEL_WIDTHS", "Sprite", "people", "pyramid"]


# Face widths (pixels) of the pre-scaled sprite pyramid; the largest entry is
# the unscaled photo.  Neighbouring levels differ by about sqrt(2), so warping
# never down-samples by more than that (no aliasing from bilinear sampling).
LEVEL_WIDTHS = (48.0, 68.0, 96.0, 136.0, 192.0, 249.0)


@dataclass(frozen=True)
class Sprite:
    """One pre-scaled, premultiplied BGRA head sprite."""

    bgra: np.ndarray  # uint8 (h, w, 4), colour premultiplied by alpha
    face_width: float  # width of the Haar face box in sprite pixels
    center: tuple[float, float]  # face-box centre in sprite pixel coordinates
    head: tuple[float, float, float, float]  # x0, y0, x1, y1 where alpha > 0.5


def pyramid(col: np.ndarray, a: np.ndarray, center: tuple[float, float]) -> tuple[Sprite, ...]:
    """Pre-scaled sprites of one head (crop-sized colour and alpha).

    Args:
        col: the head's colours (uint8, BGR).
        a: its alpha matte (float32, 0..1).
        center: the face-box centre in pixel coordinates of ``col``.
    """
    h, w = a.shape
    fw = PHOTO_FACE[2]
    ys, xs = np.nonzero(a > 0.5)
    head = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    premul = col.astype(np.float32) * a[..., None]
    full = np.dstack([premul, a * 255.0])
    full = np.clip(full + 0.5, 0, 255).astype(np.uint8)
    levels = []
    for lw in LEVEL_WIDTHS:
        s = lw / fw
        if s >= 1.0:
            img = full
        else:
            size = (max(2, round(w * s)), max(2, round(h * s)))
            img = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        sx = img.shape[1] / w
        sy = img.shape[0] / h
        # Trim fully transparent margins (keep a 1-pixel empty border):
        # smaller sprites mean smaller regions to warp and blend.
        rows = np.flatnonzero(img[..., 3].any(axis=1))
        cols = np.flatnonzero(img[..., 3].any(axis=0))
        top = max(0, int(rows[0]) - 1)
        left = max(0, int(cols[0]) - 1)
        bottom = min(img.shape[0], int(rows[-1]) + 2)
        right = min(img.shape[1], int(cols[-1]) + 2)
        img = img[top:bottom, left:right]
        levels.append(Sprite(
            bgra=np.ascontiguousarray(img),
            face_width=fw * sx,
            center=((center[0] + 0.5) * sx - 0.5 - left, (center[1] + 0.5) * sy - 0.5 - top),
            head=(head[0] * sx - left, head[1] * sy - top, head[2] * sx - left, head[3] * sy - top),
        ))
    return tuple(levels)


@functools.lru_cache(maxsize=1)
def people() -> tuple[tuple[tuple[Sprite, ...], ...], ...]:
    """Build the sprite pyramids of the three demo people (cached).

    Returns:
        ``people[person][expression][level]``: expressions in the order of
        :data:`EXPRESSIONS`, levels in the order of ``LEVEL_WIDTHS``.
    """
    bgr, alpha = head_cutout()
    w = alpha.shape[1]
    fx, fy, fw, fh = PHOTO_FACE
    cx = fx + fw / 2.0 - 0.5 - CROP[0]  # pixel-centre convention
    cy = fy + fh / 2.0 - 0.5 - CROP[1]

    people = []
    for style, mirror in ((0, False), (1, True), (2, False)):
        styled = restyle(bgr, alpha, style)
        pyramids = []
        for name in EXPRESSIONS:
            col, a = with_expression(styled, alpha, name)
            center = (cx, cy)
            if mirror:
                col = col[:, ::-1]
                a = a[:, ::-1]
                center = ((w - 1) - cx, cy)
            pyramids.append(pyramid(col, a, center))
        people.append(tuple(pyramids))
    return tuple(people)
