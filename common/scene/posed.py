"""Faces of known pose: a real face's texture on MediaPipe's canonical face mesh, turned by given angles and drawn
through the pipeline's camera (``common/vision/headpose.py``), with its ground truth (where each of the 468
vertices lands, so the anchor points too).  The bench and the tests measure detection by yaw, landmark error and
pose error on them.

The texture is the Grace Hopper portrait that matplotlib ships (public domain), its 468 texture points found once by
the face mesh on that frontal photo; the geometry is the canonical face's, so the truth does not depend on the mesh
that is measured (only which pixel of the photo colours which triangle does).  The face is the mesh alone (no hair,
ears or neck), drawn back to front with back-facing triangles left out, over a background picture.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from dogfilter.common.vision import headpose


@dataclass
class PosedFace:
    image: np.ndarray  # BGR uint8
    landmarks: np.ndarray  # 468×2, frame pixels: the canonical vertices as drawn (true positions)
    pose: headpose.Pose
    visible: np.ndarray  # 468 bool: the vertex lies on a triangle that faces the camera


@functools.cache
def texture() -> tuple[np.ndarray, np.ndarray]:
    """The portrait and its 468 texture points (frame pixels of the portrait)."""
    from dogfilter.common.scene.portrait import load_portrait
    from dogfilter.common.vision.blazeface import BlazeFace
    from dogfilter.common.vision.facemesh import FaceMesh, roi_from_keypoints, roi_from_landmarks

    img = load_portrait()
    det = BlazeFace("short").detect(img)[0]
    mesh = FaceMesh()
    lm, _ = mesh(img, [roi_from_keypoints(det.box, det.keypoints)])
    lm, _ = mesh(img, [roi_from_landmarks(lm[0])])
    return img, lm[0, :, :2].astype(np.float32)


#: the inner contour of the lips (MediaPipe's numbers), upper and lower, corner to corner
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
#: each eye's upper lid (its inner contour) and the lower lid it closes onto, point for point
LIDS = (((246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155)),
        ((466, 388, 387, 386, 385, 384, 398), (249, 390, 373, 374, 380, 381, 382)))
MOUTH_INSIDE = (40, 24, 60)  # BGR: a mouth's dark inside


def expression(mouth_cm: float = 0.0, blink: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The canonical face's vertices with the jaw dropped ``mouth_cm`` at the chin's middle (the lower lip and
    everything below it, less towards the sides) and the upper lids lowered ``blink`` of the way onto the lower ones
    (1: closed); and which triangles are the mouth's inside (drawn dark where the lips part)."""
    face = headpose.canonical()
    v = face.vertices.copy()
    if mouth_cm:
        lower = face.vertices[list(LOWER_INNER_LIP)]
        below = face.vertices[:, 1] <= lower[:, 1].max() + 1e-6
        w = np.clip((7.5 - np.abs(face.vertices[:, 0])) / 4.0, 0.0, 1.0) * below
        w[list(UPPER_INNER_LIP)] = 0.0
        w[[78, 308]] = 0.0  # the corners stay
        v[:, 1] -= mouth_cm * w
    if blink:
        for upper, low in LIDS:
            v[list(upper)] += blink * (face.vertices[list(low)] - face.vertices[list(upper)])
    lips = set(UPPER_INNER_LIP) | set(LOWER_INNER_LIP)
    inside = np.array([all(int(i) in lips for i in t) and any(int(i) in UPPER_INNER_LIP[1:-1] for i in t)
                       and any(int(i) in LOWER_INNER_LIP[1:-1] for i in t) for t in face.triangles])
    return v, inside


def render(pose: headpose.Pose, background: np.ndarray, mouth_cm: float = 0.0, blink: float = 0.0) -> PosedFace:
    """The textured canonical face with ``pose`` over a copy of ``background`` (its size is the frame's); with the
    jaw dropped ``mouth_cm`` and the eyes ``blink`` closed (:func:`expression`)."""
    tex, uv = texture()
    face = headpose.canonical()
    vertices, inside = expression(mouth_cm, blink) if (mouth_cm or blink) else (face.vertices, None)
    h, w = background.shape[:2]
    img = background.copy()
    pts = pose.project(vertices, w, h).astype(np.float32)
    cam = pose.to_camera(vertices)
    tri = face.triangles
    # a triangle faces the camera where its corners run counter-clockwise as seen (the mesh's winding, y up), which
    # on the image (y down) is a negative signed area
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    front = area < 0
    visible = np.zeros(len(pts), bool)
    visible[tri[front].ravel()] = True
    depth = cam[tri, 2].mean(1)
    for i in np.argsort(-depth):  # far first
        if not front[i]:
            continue
        dst = pts[tri[i]]
        x0, y0 = np.floor(dst.min(0)).astype(int)
        x1, y1 = np.ceil(dst.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        if inside is not None and inside[i]:
            patch = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
            patch[:] = MOUTH_INSIDE
        else:
            m = cv2.getAffineTransform(uv[tri[i]], (dst - [x0, y0]).astype(np.float32))
            patch = cv2.warpAffine(tex, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((dst - [x0, y0]) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
        region = img[y0:y1, x0:x1]
        k = (mask.astype(np.float32) / 255)[..., None]
        region[:] = (patch * k + region * (1 - k) + 0.5).astype(np.uint8)
    return PosedFace(img, pts, pose, visible)


def pose_at(yaw: float, pitch: float, roll: float, distance_cm: float, x_cm: float = 0.0,
            y_cm: float = 0.0) -> headpose.Pose:
    """A pose from its angles (degrees) and where the face is (centimetres: ``distance_cm`` ahead of the camera,
    ``x_cm`` right and ``y_cm`` down)."""
    return headpose.Pose.turned(yaw, pitch, roll, (x_cm, y_cm, distance_cm))


def distance_for(width_px: float, height: int) -> float:
    """How far (cm) the canonical face must be for its face box (the detector's, ~1.65 × the distance between the
    eyes' outer corners, 8.9 cm on the canonical face) to be about ``width_px`` wide in a frame ``height`` high."""
    f = float(headpose.camera(1, height)[1, 1])
    return f * 8.9 * 1.65 / max(width_px, 1.0) + 3.2
