"""How the demo faces move: each on its own smooth Lissajous-like path, changing size, rolling a little and turning
its head, and changing expression on a fixed schedule.  Everything is a pure function of the time and loops every
:data:`LOOP_SECONDS`.

The expression schedule: each face holds one expression for 2.5 s, then cross-fades to the next; no two faces show
the same one, and any 10 s shows all of :data:`~dogfilter.common.scene.expressions.EXPRESSIONS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dogfilter.common.scene.expressions import EXPRESSIONS

__all__ = ["LOOP_SECONDS", "MAX_PERSPECTIVE", "MIN_SQUASH", "PATHS", "FacePath", "Pose", "expression_at", "poses",
           "wave"]


#: Period of the animation in seconds (``render(t)`` repeats with it).
LOOP_SECONDS = 20.0


# Range of the face width at 640x480 (scaled with the frame size).
MIN_FACE = 70.0
MAX_FACE = 200.0
MAX_ROLL_DEG = 12.0
MIN_SQUASH = 0.8
MAX_PERSPECTIVE = 0.07


@dataclass(frozen=True)
class FacePath:
    """Motion of one face: Lissajous-like, all frequencies integer per loop."""

    person: int
    x: tuple[float, float, int, float]  # centre, amplitude, frequency, phase
    y: tuple[float, float, int, float]
    x2: tuple[float, int, float]  # second harmonic: amplitude, freq, phase
    size: tuple[int, float]  # frequency, phase of the size oscillation
    size_range: tuple[float, float]  # fraction of [min, max] face width used
    roll: tuple[int, float]
    yaw: tuple[int, float]


# Positions are fractions of the frame size; sizes fractions of the range.
PATHS = (
    FacePath(0, (0.22, 0.12, 1, 1.8), (0.48, 0.13, 2, 4.4), (0.04, 3, 1.0), (1, 2.8), (0.0, 1.0), (2, 0.3), (3, 0.0)),
    FacePath(1, (0.78, 0.12, 1, 4.8), (0.47, 0.13, 2, 4.9), (0.04, 2, 0.4), (1, 0.9), (0.0, 1.0), (3, 1.7), (2, 1.2)),
    FacePath(2, (0.50, 0.13, 1, 3.2), (0.50, 0.15, 1, 2.4), (0.03, 3, 2.5), (1, 5.05), (0.0, 0.85), (2, 4.0),
             (3, 2.6)),
)


def wave(t: float, freq: int, phase: float) -> float:
    """``sin`` with ``freq`` whole periods per loop."""
    return math.sin(2.0 * math.pi * freq * t / LOOP_SECONDS + phase)


# Expression schedule: every face runs through _CYCLE, holding each
# expression for _HOLD_SECONDS (the loop holds a whole number of cycles), so
# any 10 s shows all four.  Face i starts i places back in the cycle and
# switches _SWITCH_LAG[i] later than face 0 (lags under one hold): then no
# two faces ever show the same expression, and they do not all switch at
# once.  A new expression cross-fades in over _FADE_SECONDS.
_CYCLE = ("happy", "surprise", "sad", "neutral")
_HOLD_SECONDS = 2.5
_FADE_SECONDS = 0.3
_SWITCH_LAG = (0.0, 0.8, 1.6)


def expression_at(face: int, t: float) -> tuple[int, int, float]:
    """Expression of face ``face`` (its index in ``PATHS``) at time ``t``.

    Returns:
        ``(current, previous, mix)``: indices into :data:`EXPRESSIONS` of
        the expression being shown and of the one before it, and the weight
        of the current one (0 .. 1; below 1 while it fades in).
    """
    s = (t % LOOP_SECONDS - _SWITCH_LAG[face]) / _HOLD_SECONDS
    k = math.floor(s)
    current = EXPRESSIONS.index(_CYCLE[(k - face) % len(_CYCLE)])
    previous = EXPRESSIONS.index(_CYCLE[(k - 1 - face) % len(_CYCLE)])
    mix = (s - k) * _HOLD_SECONDS / _FADE_SECONDS
    mix = 1.0 if mix >= 1.0 else mix * mix * (3.0 - 2.0 * mix)
    return current, previous, mix


@dataclass(frozen=True)
class Pose:
    """Pose and expression of one face at one instant (frame pixel units)."""

    person: int
    cx: float
    cy: float
    face_width: float
    roll_deg: float
    yaw: float  # -1 .. 1: turning left .. right
    expression: int = 0  # index into EXPRESSIONS
    previous: int = 0  # the expression before (fading out while mix < 1)
    mix: float = 1.0  # weight of ``expression``



def poses(t: float, width: int, height: int, faces: int) -> list[Pose]:
    """Poses of the first ``faces`` faces at ``t`` in a ``width`` x ``height`` frame, back to front (small first)."""
    t = float(t) % LOOP_SECONDS
    w, h = width, height
    unit = min(width / 640.0, height / 480.0)
    lo, hi = MIN_FACE * unit, MAX_FACE * unit
    out = []
    for face, path in enumerate(PATHS[:faces]):
        xc, xa, xf, xp = path.x
        yc, ya, yf, yp = path.y
        a2, f2, p2 = path.x2
        if faces == 1:
            xc = 0.5
        s0, s1 = path.size_range
        k = 0.5 + 0.5 * wave(t, *path.size)
        fw = lo + (hi - lo) * (s0 + (s1 - s0) * k)
        cx = w * (xc + xa * wave(t, xf, xp) + a2 * wave(t, f2, p2))
        cy = h * (yc + ya * wave(t, yf, yp))
        roll = MAX_ROLL_DEG * wave(t, *path.roll)
        yaw = wave(t, *path.yaw)
        current, previous, mix = expression_at(face, t)
        out.append(Pose(path.person, cx, cy, fw, roll, yaw, current, previous, mix))
    out.sort(key=lambda p: p.face_width)
    return out
