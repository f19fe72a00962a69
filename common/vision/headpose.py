"""A face's head pose in 3-D: the rotation and position of MediaPipe's canonical face that best explains its
landmarks, seen through a perspective camera, and the projection of 3-D points of the canonical face's space back
into the frame (what the composite draws parts of the dog with).

The camera: a pinhole with its principal point at the frame's centre and MediaPipe's vertical field of view (63°,
``face_geometry``'s default), so a pose stays right away from the image centre (a head at the frame's edge is seen
from the side by a real camera, and the fit knows it), and a pose does not depend on the frame's pixel size (the
focal length scales with the height).

The canonical face (``common/assets/models/canonical_face.npz``, made by ``tools/make_canonical_face.py`` from
MediaPipe's face-geometry data): 468 vertices in centimetres, x to the face's left (the image's right when it faces
the camera), y up, z towards the viewer.  The fit uses the 33 landmarks MediaPipe's Procrustes fit uses (eyes' corners,
nose, brows, cheeks, no lips: they move with expression): ``cv2.solvePnP`` with SQPnP (a global optimum, ~0.1 ms).

Angles, in degrees, of the head turned from facing the camera (an upright face looking into the lens is 0, 0, 0):
``yaw`` > 0 the nose turns towards the image's right, ``pitch`` > 0 the face looks up, ``roll`` > 0 the head tilts
counter-clockwise in the image.  ``rotation = Ry(yaw) · Rx(-pitch) · Rz(roll)`` in the face's axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from dogfilter.common import ASSETS

CANONICAL = ASSETS / "models" / "canonical_face.npz"
VERTICAL_FOV_DEG = 63.0
#: the face's axes (x left of the face, y up, z towards the viewer) in the camera's (x right, y down, z ahead)
FLIP = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CanonicalFace:
    vertices: np.ndarray  # 468×3 cm
    uv: np.ndarray  # 468×2
    triangles: np.ndarray  # T×3
    weights: np.ndarray  # 468: MediaPipe's Procrustes weights (0: not used)

    @property
    def basis(self) -> np.ndarray:
        """The landmark numbers the fit uses."""
        return np.flatnonzero(self.weights > 0)


@cache
def canonical() -> CanonicalFace:
    with np.load(CANONICAL, allow_pickle=False) as d:
        return CanonicalFace(d["vertices"].astype(np.float64), d["uv"].astype(np.float64),
                             d["triangles"].astype(np.int32), d["weights"].astype(np.float64))


def focal(height: int) -> float:
    """The focal length in pixels for a frame this high."""
    return 0.5 * height / math.tan(math.radians(VERTICAL_FOV_DEG) / 2)


def camera(width: int, height: int) -> np.ndarray:
    """The 3×3 camera matrix for a frame of this size."""
    f = focal(height)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The face's rotation (its own axes) from the three angles, in degrees."""
    a, b, c = math.radians(yaw), math.radians(-pitch), math.radians(roll)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


def angles(r: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation in the face's axes (:func:`rotation`'s inverse)."""
    b = math.asin(max(-1.0, min(1.0, -float(r[1, 2]))))
    a = math.atan2(float(r[0, 2]), float(r[2, 2]))
    c = math.atan2(float(r[1, 0]), float(r[1, 1]))
    return math.degrees(a), -math.degrees(b), math.degrees(c)


@dataclass(frozen=True)
class Pose:
    """Where the canonical face is: ``r`` (3×3, the face's axes) and ``t`` (centimetres, camera axes: x right,
    y down, z ahead).  A point p of the canonical face is at ``FLIP @ r @ p + t`` in the camera's axes."""

    r: np.ndarray
    t: np.ndarray

    @classmethod
    def turned(cls, yaw: float, pitch: float, roll: float, t: Sequence[float]) -> Pose:
        """The pose of these angles (degrees, :func:`rotation`) at ``t`` (cm): what ``Face.pose`` on the wire says."""
        return cls(rotation(yaw, pitch, roll), np.array(t, np.float64))

    @property
    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        return angles(self.r)

    def matrix(self) -> np.ndarray:
        """4×4 transform from the canonical face's space to the camera's (OpenCV axes)."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = FLIP @ self.r, self.t
        return m

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) @ (FLIP @ self.r).T + self.t

    def project(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """Points of the canonical face's space (K×3, cm) → frame pixels (K×2)."""
        cam = self.to_camera(points)
        k = camera(width, height)
        z = np.maximum(cam[:, 2], 1e-3)
        return np.stack([k[0, 0] * cam[:, 0] / z + k[0, 2], k[1, 1] * cam[:, 1] / z + k[1, 2]], 1)

    def facing(self, normals: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Of each point with its outward normal (canonical space): does it face the camera?"""
        cam = self.to_camera(points)
        n = np.asarray(normals, np.float64) @ (FLIP @ self.r).T
        return (n * cam).sum(1) < 0


def pose_from(r_cv: np.ndarray, t: np.ndarray) -> Pose:
    return Pose(FLIP @ r_cv, np.asarray(t, np.float64).reshape(3))


def fit(landmarks: np.ndarray, width: int, height: int) -> Pose | None:
    """The head pose of one face's landmarks (468×2 or ×3, frame pixels) in a frame of this size, or None where no
    pose explains them (degenerate points)."""
    face = canonical()
    idx = face.basis
    obj = face.vertices[idx]
    img = np.ascontiguousarray(landmarks[idx, :2], np.float64)
    if not np.isfinite(img).all():
        return None
    k = camera(width, height)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)  # no refinement: as accurate
    if not ok:  # on noisy points (measured: within 1° either way) at a third of the time
        return None
    r_cv, _ = cv2.Rodrigues(rvec)
    if not np.isfinite(tvec).all() or float(tvec[2, 0]) <= 0:
        return None
    return pose_from(r_cv, tvec)


def rendered_landmarks(pose: Pose, width: int, height: int) -> np.ndarray:
    """The canonical face's 468 vertices seen with this pose (frame pixels): what a face of exactly the canonical
    shape would give; tests and the bench check fits against it."""
    return pose.project(canonical().vertices, width, height)
