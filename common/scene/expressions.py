"""The expressions the demo people show, synthesised once from the neutral portrait.

Happy (a broad smile over the upper teeth), sad (mouth corners down, inner brows up, drooping lids), surprise
(dropped jaw, open mouth, raised brows) and neutral (the photo).  Each is a set of smooth local warps (Gaussian
"pushes", inverted by Newton's method) plus, for an open mouth, the lips parted and the gap painted (``mouth.py``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from dogfilter.common.scene.mouth import Mouth, part_lips
from dogfilter.common.scene.portrait import CROP, L_CORNER, L_EYE, R_CORNER, R_EYE, head_cutout

__all__ = ["EXPRESSIONS", "EXPRESSION_SPECS", "Expression", "Push", "expression_maps", "invert_pushes", "push_field",
           "with_expression"]


#: The expressions the demo people show, named as the emotion classifier
#: names its classes.
EXPRESSIONS = ("neutral", "happy", "sad", "surprise")

@dataclass(frozen=True)
class Push:
    """A smooth local move of the face (photo pixels).

    Points near ``at`` shift by ``by``; the shift falls off as a Gaussian of
    radii ``r`` (x, y) around ``at``.
    """

    at: tuple[float, float]
    by: tuple[float, float]
    r: tuple[float, float]


@dataclass(frozen=True)
class Expression:
    """How one expression changes the neutral portrait."""

    pushes: tuple[Push, ...] = ()
    mouth: Mouth | None = None


EXPRESSION_SPECS: dict[str, Expression] = {
    "neutral": Expression(),
    # A broad smile: mouth corners up and out, lips parted over the upper
    # teeth, cheeks raised.
    "happy": Expression(
        pushes=(
            Push(L_CORNER, (-9.0, -12.0), (11.0, 11.0)),
            Push(R_CORNER, (9.0, -12.0), (11.0, 11.0)),
            Push((225.0, 252.0), (0.0, -6.0), (16.0, 12.0)),  # cheeks
            Push((308.0, 250.0), (0.0, -6.0), (16.0, 12.0)),
        ),
        mouth=Mouth(225.0, 307.0, up=4.5, down=15.0, power=0.6, teeth=0.7),
    ),
    # Mouth corners well down (an arched mouth, the lower lip pushed out and
    # the upper lip drawn up), inner brows raised (the glasses ride up with
    # them at the bridge), upper eyelids lowered.
    "sad": Expression(
        pushes=(
            Push(L_CORNER, (-2.0, 20.0), (16.0, 16.0)),
            Push(R_CORNER, (2.0, 20.0), (16.0, 16.0)),
            Push((266.0, 283.0), (0.0, -3.0), (14.0, 6.0)),  # middle of the lips
            Push((266.0, 292.0), (0.0, 4.0), (16.0, 5.0)),  # lower lip
            Push((266.0, 262.0), (0.0, -4.0), (20.0, 8.0)),  # upper lip
            Push((245.0, 168.0), (0.0, -11.0), (10.0, 10.0)),  # inner brows up
            Push((287.0, 166.0), (0.0, -11.0), (10.0, 10.0)),
            Push((200.0, 170.0), (0.0, 3.0), (10.0, 6.0)),  # outer brows down
            Push((330.0, 168.0), (0.0, 3.0), (10.0, 6.0)),
            Push((252.0, 182.0), (0.0, -9.0), (10.0, 9.0)),  # glasses: inner ends up
            Push((281.0, 180.0), (0.0, -9.0), (10.0, 9.0)),
            Push((190.0, 182.0), (0.0, 4.5), (12.0, 9.0)),  # outer ends down
            Push((340.0, 178.0), (0.0, 4.5), (12.0, 9.0)),
            Push((L_EYE[0], L_EYE[1] - 7.0), (0.0, 5.0), (12.0, 4.0)),  # upper eyelids
            Push((R_EYE[0], R_EYE[1] - 7.0), (0.0, 5.0), (12.0, 4.0)),
        ),
    ),
    # Jaw dropped into an open oval mouth, brows raised, eyes wide open.
    "surprise": Expression(
        pushes=(
            Push((266.0, 322.0), (0.0, 14.0), (45.0, 30.0)),  # jaw
            Push(L_CORNER, (8.0, 2.0), (9.0, 9.0)),
            Push(R_CORNER, (-8.0, 2.0), (9.0, 9.0)),
            Push((222.0, 166.0), (0.0, -7.0), (22.0, 9.0)),  # brows
            Push((308.0, 164.0), (0.0, -7.0), (22.0, 9.0)),
            Push((L_EYE[0], L_EYE[1] - 6.0), (0.0, -2.5), (10.0, 3.0)),  # upper eyelids
            Push((R_EYE[0], R_EYE[1] - 6.0), (0.0, -2.5), (10.0, 3.0)),
            Push((L_EYE[0], L_EYE[1] + 7.0), (0.0, 2.0), (10.0, 3.0)),  # lower eyelids
            Push((R_EYE[0], R_EYE[1] + 7.0), (0.0, 2.0), (10.0, 3.0)),
        ),
        mouth=Mouth(237.0, 295.0, up=7.0, down=17.0, power=0.55, teeth=0.08),
    ),
}


def push_field(px: np.ndarray, py: np.ndarray,
                pushes: tuple[Push, ...]) -> tuple[np.ndarray, ...]:
    """Displacement of the pushes at photo points ``(px, py)``, and its derivatives.

    Returns:
        ``(dx, dy, dx/dx, dx/dy, dy/dx, dy/dy)``.
    """
    out = [np.zeros_like(px) for _ in range(6)]
    for p in pushes:
        ux = (px - p.at[0]) / p.r[0]
        uy = (py - p.at[1]) / p.r[1]
        g = np.exp(-0.5 * (ux * ux + uy * uy))
        gx = -g * ux / p.r[0]
        gy = -g * uy / p.r[1]
        for i, term in enumerate((p.by[0] * g, p.by[1] * g, p.by[0] * gx, p.by[0] * gy, p.by[1] * gx,
                                  p.by[1] * gy)):
            out[i] += term
    return tuple(out)


def invert_pushes(qx: np.ndarray, qy: np.ndarray,
                   pushes: tuple[Push, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Where the pushes move points *from*: solve ``p + F(p) = q`` for ``p``.

    Newton's method from ``p = q``, steps capped at 2 pixels.  The map has
    no folds (every push moves by well under its radius, so its Jacobian
    stays positive; the specs keep it above ~0.25), so this converges to a
    small fraction of a pixel.
    """
    px, py = qx.copy(), qy.copy()
    for _ in range(12):
        dx, dy, dxx, dxy, dyx, dyy = push_field(px, py, pushes)
        rx, ry = px + dx - qx, py + dy - qy
        a, b, c, d = 1.0 + dxx, dxy, dyx, 1.0 + dyy
        det = a * d - b * c
        sx = (d * rx - b * ry) / det
        sy = (a * ry - c * rx) / det
        step = np.hypot(sx, sy)
        scale = np.minimum(1.0, 2.0 / np.maximum(step, 1e-9))
        px -= sx * scale
        py -= sy * scale
        if step.max() < 1e-3:
            break
    return px, py


@functools.cache
def expression_maps(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Remap tables (crop coordinates) and mouth paint of one expression.

    Returns:
        ``(map_x, map_y, paint)``: float32 maps for :func:`cv2.remap` from
        the neutral head to the expression, and the premultiplied BGRA
        float32 paint to lay over the result (``None`` without one).
    """
    spec = EXPRESSION_SPECS[name]
    h, w = head_cutout()[1].shape
    ox, oy = CROP[0], CROP[1]
    map_y, map_x = np.mgrid[0:h, 0:w].astype(np.float32)
    if spec.pushes:
        # The pushes move nothing measurable beyond 4 radii: invert inside.
        x0 = max(0, math.floor(min(p.at[0] - 4.0 * p.r[0] for p in spec.pushes) - ox))
        x1 = min(w, math.ceil(max(p.at[0] + 4.0 * p.r[0] for p in spec.pushes) - ox))
        y0 = max(0, math.floor(min(p.at[1] - 4.0 * p.r[1] for p in spec.pushes) - oy))
        y1 = min(h, math.ceil(max(p.at[1] + 4.0 * p.r[1] for p in spec.pushes) - oy))
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        px, py = invert_pushes(xs + ox, ys + oy, spec.pushes)
        map_x[y0:y1, x0:x1] = px - ox
        map_y[y0:y1, x0:x1] = py - oy
    if spec.mouth is None:
        return map_x, map_y, None
    rows, paint = part_lips(h, w, spec.mouth)
    src_y = cv2.remap(rows, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    paint = cv2.remap(paint, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return map_x, src_y, paint


def with_expression(bgr: np.ndarray, alpha: np.ndarray,
                     name: str) -> tuple[np.ndarray, np.ndarray]:
    """The head (crop coordinates) showing expression ``name``."""
    if name == "neutral":
        return bgr, alpha
    map_x, map_y, paint = expression_maps(name)
    col = cv2.remap(bgr, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if paint is not None:
        out = col.astype(np.float32) * (1.0 - paint[..., 3:]) + paint[..., :3]
        col = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return col, a
