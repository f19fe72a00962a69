"""MediaPipe's face mesh: 468 landmarks of a face (x, y in frame pixels, z depth at the same scale), in one batch
for all the faces of a frame, and the face's region for the next frame from its own landmarks.

The network is ``face_landmark.tflite`` of the PyPI wheel ``mediapipe==0.10.21``, converted to ONNX by
``tools/convert_facemesh.py`` and checked there against the reference TFLite interpreter (provenance, licence and
the check: ``common/assets/models/FACEMESH_PROVENANCE.md``).  It reads a 192×192 RGB picture in [0, 1] of the face
turned upright and framed as MediaPipe frames it (:func:`roi_from_keypoints`, :func:`roi_from_landmarks`), and gives
the landmarks in that picture's pixels and a face-presence logit.  MediaPipe's face pipeline works the same way: a
detector finds a face once, then the landmarks of each frame give the region of the next, which follows a face
turned further than the detector sees (three-quarter to near profile) at the cost of one network run a face.

Landmark numbers are MediaPipe's (``canonical_face_model_uv_visualization.png`` in its repository draws them):
:data:`ANCHORS` names the few the rest of the pipeline uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dogfilter.common import ASSETS
from dogfilter.common.vision.onnxrun import open_session

ONNX = ASSETS / "models" / "face_landmark.onnx"
SIZE = 192  # the network's input side
N_LANDMARKS = 468
ROI_SCALE = 1.5  # MediaPipe: the region is 1.5× the face's box (detection or landmarks), square on its longer side
MIN_PRESENCE = 0.5  # MediaPipe's min_tracking_confidence: below it the face is lost

#: named points (a landmark, or the mean of several): what the wire carries of the 468
ANCHORS: dict[str, tuple[int, ...]] = {
    "right_eye": (33, 133, 159, 145, 160, 144, 158, 153),  # the subject's right eye: its ring (the image's left)
    "left_eye": (263, 362, 386, 374, 387, 373, 385, 380),
    "nose_tip": (4,),  # the tip (pronasale): hand-placed nose tips lie 8 % IOD from it, 12 % from landmark 1
    "mouth_right": (61,),
    "mouth_left": (291,),
    "upper_lip": (13,),  # inner lip midpoints: their distance is the mouth's opening
    "lower_lip": (14,),
    "brow": (9,),  # between the brows
    "chin": (152,),
    "forehead": (10,),
}
#: the eyelids (upper, lower) and eye corners (outer, inner) of each eye, for how open it is
EYELIDS = {"right": (159, 145, 33, 133), "left": (386, 374, 263, 362)}
BROWS = {"right": 105, "left": 334}  # a brow's middle, above each eye


@dataclass(frozen=True)
class Roi:
    """A square region of the frame, turned: centre (frame pixels), side (frame pixels), angle (radians, the
    region's x axis from the frame's x axis, clockwise in the image as y points down)."""

    cx: float
    cy: float
    side: float
    angle: float

    def to_frame(self) -> np.ndarray:
        """2×3 affine map from network input pixels (0…SIZE) to frame pixels."""
        k = self.side / SIZE
        c, s = math.cos(self.angle) * k, math.sin(self.angle) * k
        h = SIZE / 2
        return np.array([[c, -s, self.cx - c * h + s * h], [s, c, self.cy - s * h - c * h]], np.float64)


def _angle(x0: float, y0: float, x1: float, y1: float) -> float:
    """MediaPipe's rotation: the angle that turns the line from (x0, y0) to (x1, y1) level."""
    return -math.atan2(-(y1 - y0), x1 - x0)


def roi_from_keypoints(box: np.ndarray, keypoints: np.ndarray) -> Roi:
    """The region of a BlazeFace detection (box x0, y0, x1, y1 and its 6 keypoints, frame pixels), as MediaPipe's
    ``face_detection_front_detection_to_roi``: the box, turned by the eyes' line, 1.5× its longer side."""
    (rx, ry), (lx, ly) = keypoints[0], keypoints[1]
    x0, y0, x1, y1 = (float(v) for v in box)
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), _angle(rx, ry, lx, ly))


def roi_from_landmarks(lm: np.ndarray) -> Roi:
    """The region for the next frame from this frame's landmarks (MediaPipe's
    ``face_landmark_landmarks_to_roi``): their box in the frame turned level by the outer eye corners (33 → 263),
    1.5× its longer side."""
    a = _angle(float(lm[33, 0]), float(lm[33, 1]), float(lm[263, 0]), float(lm[263, 1]))
    c, s = math.cos(a), math.sin(a)
    xy = lm[:, :2].astype(np.float64)
    mid = (xy.min(0) + xy.max(0)) / 2
    # the points in the turned frame (rotate by -a about the middle): their extent there
    d = xy - mid
    u, v = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    uc, vc = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    cx, cy = mid[0] + uc * c - vc * s, mid[1] + uc * s + vc * c
    return Roi(float(cx), float(cy), ROI_SCALE * float(max(u.max() - u.min(), v.max() - v.min())), a)


def crop(bgr: np.ndarray, roi: Roi) -> np.ndarray:
    """The region as the network's input picture: SIZE×SIZE RGB float32 in [0, 1] (outside the frame: black)."""
    small = cv2.warpAffine(bgr, roi.to_frame(), (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB).astype(np.float32) * (1 / 255)


class FaceMesh:
    """The face mesh network under onnxruntime: regions in, (landmarks N×468×3 in frame pixels, presence N) out."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.session, self.input = open_session(Path(path) if path else ONNX, "face mesh model", threads=threads,
                                                outputs=["landmarks", "presence"], export="face mesh export",
                                                missing=": the face mesh needs it",
                                                make="python -m tools.convert_facemesh")

    def __call__(self, bgr: np.ndarray, rois: list[Roi]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks (N×468×3: x, y in frame pixels, z at the same scale, larger away from the camera) and the
        face-presence probability (N) of each region of the frame."""
        if not rois:
            return np.zeros((0, N_LANDMARKS, 3), np.float32), np.zeros(0, np.float32)
        x = np.stack([crop(bgr, r) for r in rois])
        raw, logit = self.session.run(None, {self.input: x})
        lm = raw.reshape(len(rois), N_LANDMARKS, 3).astype(np.float64)
        out = np.empty_like(lm)
        for i, r in enumerate(rois):
            m = r.to_frame()
            out[i, :, :2] = lm[i, :, :2] @ m[:, :2].T + m[:, 2]
            out[i, :, 2] = lm[i, :, 2] * (r.side / SIZE)
        presence = 1.0 / (1.0 + np.exp(-np.clip(logit.reshape(-1).astype(np.float64), -50, 50)))
        return out.astype(np.float32), presence.astype(np.float32)


#: the detector's box from the landmarks' box: (scale of its longer side, centre shift × that side), measured on
#: frontal faces (``python -m tools.calibrate_mesh_box``), so that a face followed by its mesh keeps the box a
#: detection of it would have (the tracker matches scans to it by IoU; the masks were placed for that box)
BOX_SCALE, BOX_SHIFT = 0.980, (0.010, 0.047)  # 159 faces: IoU median 0.93, 5th percentile 0.85


def box_from_landmarks(lm: np.ndarray) -> np.ndarray:
    """A BlazeFace-like box (x0, y0, x1, y1, frame pixels) of one face's landmarks."""
    xy = lm[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    side = BOX_SCALE * float(max(hi[0] - lo[0], hi[1] - lo[1]))
    cx = float(lo[0] + hi[0]) / 2 + BOX_SHIFT[0] * side
    cy = float(lo[1] + hi[1]) / 2 + BOX_SHIFT[1] * side
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def _averaging(rows: list[tuple[int, ...]]) -> np.ndarray:
    """A matrix whose product with the 468×2 landmarks is the mean of each row's landmarks (one product, not a
    dozen small numpy means: this runs for every face of every frame)."""
    m = np.zeros((len(rows), N_LANDMARKS), np.float32)
    for i, ix in enumerate(rows):
        m[i, list(ix)] = 1.0 / len(ix)
    return m


_ANCHOR_MATRIX = _averaging(list(ANCHORS.values()))
#: BlazeFace's keypoints: right eye, left eye, nose tip, mouth centre, right and left ear tragion
_KEYPOINT_MATRIX = _averaging([ANCHORS["right_eye"], ANCHORS["left_eye"], ANCHORS["nose_tip"],
                               ANCHORS["upper_lip"] + ANCHORS["lower_lip"], (234,), (454,)])


def anchors(lm: np.ndarray) -> dict[str, tuple[float, float]]:
    """The named points of one face's landmarks (frame pixels)."""
    pts = (_ANCHOR_MATRIX @ lm[:, :2].astype(np.float32)).tolist()
    return {name: (p[0], p[1]) for name, p in zip(ANCHORS, pts, strict=True)}


def keypoints(lm: np.ndarray) -> np.ndarray:
    """BlazeFace's six keypoints from the landmarks (6×2, frame pixels), so a face followed by its mesh reads like
    a detected one."""
    return _KEYPOINT_MATRIX @ lm[:, :2].astype(np.float32)


def signals(lm: np.ndarray) -> dict[str, float]:
    """How open the mouth and each eye are and how raised the brows, each a ratio to a length of the face that
    does not change with expression, so the same at any size: ``mouth`` (inner lips' gap / mouth width: ~0 closed,
    ~0.5 wide open), ``right_eye``/``left_eye`` (lids' gap / eye width: ~0.3 open, < 0.1 closed), ``brows`` (brows'
    height above the eyes / the eyes' distance: ~0.35 at rest, more raised)."""
    xy = lm[:, :2].astype(np.float64)

    def dist(i: int, j: int) -> float:
        return float(np.hypot(*(xy[i] - xy[j])))

    eyes = max(dist(33, 263), 1e-6)
    out = {"mouth": dist(13, 14) / max(dist(61, 291), 1e-6)}
    for side, (up, lo, outer, inner) in EYELIDS.items():
        out[f"{side}_eye"] = dist(up, lo) / max(dist(outer, inner), 1e-6)
    out["brows"] = (dist(BROWS["right"], 159) + dist(BROWS["left"], 386)) / (2 * eyes)
    return out
