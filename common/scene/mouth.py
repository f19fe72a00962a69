"""An open mouth: the lips parted column by column, the gap painted (throat, tongue, upper teeth)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dogfilter.common.scene.curves import smoothstep
from dogfilter.common.scene.portrait import CROP, L_CORNER, R_CORNER

__all__ = ["Mouth", "lip_line", "mouth_paint", "part_lips"]


@dataclass(frozen=True)
class Mouth:
    """Parted lips (photo pixels), the gap painted as an open mouth.

    Between the columns ``x0`` and ``x1`` the upper lip rises by up to ``up``
    and the lower lip drops by up to ``down`` (at the middle; the opening's
    profile across the mouth is ``(1 - u**2) ** power``, ``u`` = -1 .. 1).
    The upper ``teeth`` fraction of the gap shows the upper teeth, the rest
    is the dark inside of the mouth.
    """

    x0: float
    x1: float
    up: float
    down: float
    power: float = 0.5
    teeth: float = 0.0
    upper_reach: float = 24.0  # rows above the lips that move with the upper lip
    lower_reach: tuple[float, float] = (6.0, 40.0)  # rigid part, then fall-off


def lip_line(px: np.ndarray) -> np.ndarray:
    """Photo row of the line between the lips at photo columns ``px``."""
    (xa, ya), (xb, yb) = L_CORNER, R_CORNER
    return ya + (yb - ya) * (px - xa) / (xb - xa)


# Where the teeth meet, in photo pixels from the middle of the mouth: the
# teeth narrow towards the corners as the dental arch turns away.  Each


_TOOTH_EDGES = (0.0, 8.5, 15.5, 21.5, 26.5, 31.0, 35.0, 38.5, 42.0)
_TOOTH_LENGTH = (1.0, 0.9, 0.96, 0.86, 0.84, 0.8, 0.8, 0.8)
_TOOTH_SHADE = (1.0, 0.95, 0.9, 0.9, 0.86, 0.84, 0.82, 0.8)


def mouth_paint(u: np.ndarray, v: np.ndarray, dist: np.ndarray,
                 mouth: Mouth) -> np.ndarray:
    """Colour of the inside of an open mouth (BGR float, 0..255).

    Args:
        u: position across the mouth, -1 .. 1 (corner to corner).
        v: position down the gap, 0 (upper lip) .. 1 (lower lip).
        dist: distance from the middle of the mouth in photo pixels.
        mouth: the opening (how much of it the upper teeth fill).
    """
    uu = (u * u)[..., None]
    # Dark throat, lighter and redder towards the lips and the tongue.
    edge = np.exp(-((v / 0.18) ** 2)) + np.exp(-(((1.0 - v) / 0.25) ** 2))
    col = np.array([22.0, 22.0, 48.0]) + np.array([20.0, 24.0, 62.0]) * edge[..., None]
    tongue = np.exp(-((u / 0.55) ** 2 + ((1.0 - v) / 0.35) ** 2))[..., None]
    col = col * (1.0 - 0.7 * tongue) + np.array([70.0, 80.0, 160.0]) * 0.7 * tongue
    col *= 1.0 - 0.45 * uu  # the corners of the mouth are in shadow
    if mouth.teeth <= 0.0:
        return col
    # Upper teeth: ivory, in the upper lip's shadow at the top, greyer and
    # darker towards the corners; soft dark seams between them; each tooth's
    # biting edge curves down a little at its middle.
    edges = np.asarray(_TOOTH_EDGES)
    k = np.clip(np.searchsorted(edges, dist) - 1, 0, len(edges) - 2)
    lo, hi = edges[k], edges[k + 1]
    pos = (dist - lo) / (hi - lo)  # 0 .. 1 across one tooth
    seam = np.exp(-(((np.minimum(pos, 1.0 - pos) * (hi - lo)) / 0.9) ** 2))
    tip = (mouth.teeth * np.asarray(_TOOTH_LENGTH)[k] * (1.0 - 0.3 * u * u)
           * (0.9 + 0.1 * np.sin(np.pi * pos)))
    shade = np.asarray(_TOOTH_SHADE)[k] * (0.78 + 0.22 * smoothstep(v, 0.0, 0.3))
    shade *= (1.0 - 0.4 * u * u) * (1.0 - 0.22 * seam)
    tooth = np.array([196.0, 222.0, 242.0]) * shade[..., None]
    # The biting edge is translucent: greyer, bluish.
    clear = smoothstep(v, tip - 0.12 * mouth.teeth, tip)[..., None]
    tooth = tooth * (1.0 - 0.35 * clear) + np.array([120.0, 116.0, 112.0]) * 0.35 * clear
    cover = smoothstep(tip - v, -0.04, 0.04)[..., None]
    return col * (1.0 - cover) + tooth * cover


def part_lips(h: int, w: int, mouth: Mouth) -> tuple[np.ndarray, np.ndarray]:
    """Part the lips (crop coordinates).

    Each column of the mouth is stretched vertically: rows above the line
    between the lips move up (the upper lip by ``up``, the shift fading out
    towards the nose), rows below move down (the lower lip by ``down``,
    fading out over ``lower_reach``).  The gap that opens is painted.

    Returns:
        ``(rows, paint)``: the source row of every pixel (float32, ``(h,
        w)``; columns do not move) and the painted inside of the mouth as
        premultiplied BGRA (float32, ``(h, w, 4)``, alpha in 0..1).
    """
    ox, oy = CROP[0], CROP[1]
    rows = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    paint = np.zeros((h, w, 4), np.float32)
    mid = 0.5 * (mouth.x0 + mouth.x1)
    half = 0.5 * (mouth.x1 - mouth.x0)
    c0 = max(0, math.ceil(mouth.x0 - ox))
    c1 = min(w, math.floor(mouth.x1 - ox) + 1)
    px = np.arange(c0, c1, dtype=np.float64) + ox
    u = np.clip((px - mid) / half, -1.0, 1.0)
    prof = (1.0 - u * u) ** mouth.power
    line = lip_line(px) - oy
    top, bottom = line - mouth.up * prof, line + mouth.down * prof

    fine = np.arange(0.0, h - 1.0 + 1e-6, 0.25)
    yq = np.arange(h, dtype=np.float64)
    for i, x in enumerate(range(c0, c1)):
        d = fine - line[i]
        fwd = np.where(
            d < 0,
            fine - (line[i] - top[i]) * (1.0 - smoothstep(-d, 0.0, mouth.upper_reach)),
            fine + (bottom[i] - line[i]) * (1.0 - smoothstep(d, *mouth.lower_reach)))
        rows[:, x] = np.interp(yq, fwd, fine)

    # The gap, with anti-aliased edges (rows x mouth columns).
    y = yq[:, None]
    inside = np.clip(y - top + 0.5, 0.0, 1.0) * np.clip(bottom - y + 0.5, 0.0, 1.0)
    v = np.clip((y - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)
    uu = np.broadcast_to(u, v.shape)
    dist = np.broadcast_to(np.abs(px - mid), v.shape)
    col = mouth_paint(uu, v, dist, mouth)
    # A little fixed grain, like the photo's.
    col += np.random.default_rng(7).normal(0.0, 2.5, col.shape[:2])[..., None]
    paint[:, c0:c1, :3] = col * inside[..., None]
    paint[:, c0:c1, 3] = inside
    # As soft as the photo around it.
    return rows, cv2.GaussianBlur(paint, (0, 0), 0.6)
