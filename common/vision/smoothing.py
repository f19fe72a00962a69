"""The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass filter whose cut-off rises with speed, so a
still face does not shake and a moving one does not lag.  MediaPipe smooths its face landmarks with it.

One filter holds a vector of any shape (all of a face's anchor points and pose values at once) and adapts to one
speed for all of it: the mean rate of change of its values, each divided by its ``scale`` (how much of it counts as
one unit of motion: the face's inter-ocular distance for points, a number of degrees for angles), so the whole face
is smoothed alike and stays rigid (the mean, not the largest: one noisy value, a depth, must not open the filter).
Time is in seconds: frames a gap apart are filtered as a gap.
"""

from __future__ import annotations

import math

import numpy as np

from dogfilter.common.transport.wire import ANCHOR_POINTS, Anchors, Face, Pose


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """``min_cutoff`` (Hz): the cut-off at rest (lower: steadier); ``beta``: how fast it rises with speed (higher:
    less lag); ``d_cutoff`` (Hz): the cut-off of the speed estimate."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 1.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def reset(self) -> None:
        self.x = self.dx = self.t = None

    def __call__(self, value: np.ndarray, t: float, scale: np.ndarray | float = 1.0) -> np.ndarray:
        """The filtered value at time ``t`` (seconds); ``scale``: the size of one unit of motion of each value."""
        v = np.asarray(value, np.float64)
        if self.x is None or self.t is None or self.dx is None or self.x.shape != v.shape or t <= self.t:
            self.x, self.dx, self.t = v.copy(), np.zeros_like(v), t
            return v.copy()
        dt = t - self.t
        dx = (v - self.x) / dt
        self.dx = self.dx + _alpha(self.d_cutoff, dt) * (dx - self.dx)
        speed = float(np.mean(np.abs(self.dx) / scale)) if self.dx.size else 0.0
        a = _alpha(self.min_cutoff + self.beta * speed, dt)
        self.x = self.x + a * (v - self.x)
        self.t = t
        return self.x.copy()


#: One-Euro settings for a face's anchors and pose, tuned on rendered faces (``dogfilter-bench --only faces``: a
#: still head's anchors move ≤ 0.5 px RMS, a head turning at 90°/s lags ≤ 1 frame)
FACE_MIN_CUTOFF_HZ, FACE_BETA, FACE_D_CUTOFF_HZ = 0.5, 10.0, 1.0
_ANGLE_UNIT, _CM_UNIT, _RATIO_UNIT = 30.0, 10.0, 0.5  # one "unit of motion" of each kind of value


def _unwrap(deg: float, ref: float) -> float:
    """``deg`` moved by whole turns to lie within 180° of ``ref`` (a roll going past ±180° does not spin back)."""
    return ref + (deg - ref + 180.0) % 360.0 - 180.0


class FaceSmoother:
    """One face's anchors and pose, smoothed together by one :class:`OneEuro`: all its points, angles, position and
    openings move as one (a unit of motion: the inter-ocular distance for points, 30° for angles, 10 cm, 0.5 of a
    ratio).  Call it with each frame's face, in frame order; it rewrites the face's ``anchors`` and ``pose``."""

    def __init__(self, min_cutoff: float = FACE_MIN_CUTOFF_HZ, beta: float = FACE_BETA,
                 d_cutoff: float = FACE_D_CUTOFF_HZ) -> None:
        self.filter = OneEuro(min_cutoff, beta, d_cutoff)
        self.layout: tuple[bool, bool] | None = None  # (has anchors, has pose) of the filtered vector

    def __call__(self, face: Face, t: float) -> None:
        layout = (face.anchors is not None, face.pose is not None)
        if layout == (False, False):
            return
        if layout != self.layout:
            self.filter.reset()
            self.layout = layout
        values: list[float] = []
        scale: list[float] = []
        a, p = face.anchors, face.pose
        if a is not None:
            iod = max(1.0, float(np.hypot(a.left_eye[0] - a.right_eye[0], a.left_eye[1] - a.right_eye[1])))
            for x, y in a.points():
                values += [x, y]
            scale += [iod] * (2 * len(ANCHOR_POINTS))
            values += [a.mouth, a.right_eye_open, a.left_eye_open, a.brows]
            scale += [_RATIO_UNIT] * 4
        if p is not None:
            ref = self.filter.x
            angles = [p.yaw, p.pitch, p.roll]
            if ref is not None:
                base = len(values)
                angles = [_unwrap(v, float(ref[base + i])) for i, v in enumerate(angles)]
            values += [*angles, *p.t]
            scale += [_ANGLE_UNIT] * 3 + [_CM_UNIT] * 3
        out = self.filter(np.array(values), t, np.array(scale)).tolist()
        i = 0
        if a is not None:
            pts = [(out[i + 2 * k], out[i + 2 * k + 1]) for k in range(len(ANCHOR_POINTS))]
            i += 2 * len(ANCHOR_POINTS)
            ratios = [min(10.0, max(0.0, v)) for v in out[i:i + 4]]
            face.anchors = Anchors.make(pts, *ratios)
            i += 4
        if p is not None:
            yaw, pitch, roll = (_unwrap(v, 0.0) for v in out[i:i + 3])
            face.pose = Pose(yaw, pitch, roll, (out[i + 3], out[i + 4], max(1e-3, out[i + 5])))
