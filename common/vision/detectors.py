"""Face detectors behind one small interface: ``detect(bgr, stream=None, frame=None) -> list[Face]``.

A new detector is a class with a ``name`` and a ``detect`` method, registered in ``DETECTORS``; nothing else in
the pipeline changes.  ``stream`` (any hashable key) and ``frame`` (its frame number) say that the picture is a
frame of a video: a detector may then use what it saw in earlier frames of that stream (BlazeFace follows the
faces it found); without them, each picture is a still photo.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol

import cv2
import cv2.data  # the cascades' folder: a submodule that OpenCV's stubs (cv2/__init__.pyi) do not declare
import numpy as np

from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.wire import ANCHOR_POINTS, Anchors, Face, Pose  # the wire's records: what a
from dogfilter.common.vision import facemesh, headpose

# detector finds is what detect sends

__all__ = ["DETECTORS", "Detector", "Face", "HaarDetector", "BlazeFaceDetector", "create_detector", "detect_at_most"]


class Detector(Protocol):
    name: str

    def detect(self, bgr: np.ndarray, stream: Hashable = None, frame: int | None = None) -> list[Face]: ...


class HaarDetector:
    """The tutorial's detector (Step 2), with its exact parameters."""

    name = "haar"

    def __init__(self, cascade: str | None = None, scale_factor: float = 1.3, min_neighbors: int = 4,
                 min_size: int = 30) -> None:
        path = cascade or cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DogfilterError(f"cannot load Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, bgr: np.ndarray, stream: Hashable = None, frame: int | None = None) -> list[Face]:
        """Every frame on its own, as the tutorial does (``stream`` and ``frame`` are not used)."""
        gray = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        blackwhite = cv2.equalizeHist(gray)
        rects = self.cascade.detectMultiScale(
            blackwhite, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), flags=cv2.CASCADE_SCALE_IMAGE)
        return [Face(box=(int(x), int(y), int(w), int(h)), score=1.0) for x, y, w, h in rects]


class BlazeFaceDetector:
    """MediaPipe's BlazeFace (``common/vision/blazeface.py``; run by onnxruntime, or PyTorch with ``engine="torch"``):
    finds turned, rolled and small faces (from ``min_face`` pixels, like Haar's ``min_size``), and gives six
    keypoints: right eye, left eye, nose tip, mouth, right ear, left ear (the subject's sides: keypoint 0 is the eye
    on the image's left in a frontal face).  A still photo gets a full scan; frames of a stream are tracked
    (``common/vision/facetrack.py``: known faces followed in small regions, the full scan spread over ``rescan``
    frames, a pass over ``scan_pixels`` network input pixels cut into parts), which costs a fraction of a scan per
    frame (``python -m dogfilter.commands.bench_detect`` prints both).

    With ``landmarks`` (the default) each face also gets MediaPipe's face mesh (``common/vision/facemesh.py``), its
    head pose and named points (``pose_and_anchors``), a followed face is followed by its mesh, and the mesh
    confirms each box: so the detector keeps MediaPipe's own threshold, 0.5 (turned faces score 0.5-0.6; without
    the mesh the threshold is 0.6, which the mesh-less detector's false boxes needed).

    The masks are placed for Haar's boxes (square, about mid-forehead to chin), so BlazeFace's boxes are mapped onto
    them: a square of ``box_scale`` × the network's box width, its centre moved by ``box_shift`` × that width.  The
    defaults are the medians measured against Haar's boxes of the same faces (tests/test_detectors.py checks the
    IoU stays high).
    """

    name = "blazeface"
    #: (box_scale, (shift x, shift y)) per model, measured against Haar boxes (204 faces, 30-300 px, frontal)
    CALIBRATION = {"short": (1.20, (0.0, -0.115)), "full": (1.22, (0.0, -0.045))}

    def __init__(self, model: str = "short", min_face: float = 30.0, input_size: int | None = None,
                 min_score: float | None = None, box_scale: float | None = None,
                 box_shift: tuple[float, float] | None = None, threads: int = 1, engine: str = "auto",
                 rescan: int = 8, scan_pixels: int | None = 200_000, landmarks: bool = True,
                 mesh_every: int = 1) -> None:
        from dogfilter.common.vision.blazeface import BlazeFace
        from dogfilter.common.vision.facetrack import FaceTracker

        scale, shift = self.CALIBRATION.get(model, (1.0, (0.0, 0.0)))
        self.box_scale = scale if box_scale is None else box_scale
        self.box_shift = shift if box_shift is None else box_shift
        # min_face is in the boxes this detector reports (Haar's units); the network's own boxes are box_scale smaller.
        # One thread: one core per detect process; run several processes to scale.
        if min_score is None:  # with the mesh to confirm each box, MediaPipe's own threshold (turned faces score low)
            min_score = 0.5 if landmarks else 0.6
        self.impl = BlazeFace(model, min_face=min_face / self.box_scale, input_size=input_size, min_score=min_score,
                              engine=engine, threads=threads)
        self.mesh = facemesh.FaceMesh(threads=threads) if landmarks else None
        self.tracker = FaceTracker(self.impl, rescan=rescan, max_scan_pixels=scan_pixels, mesh=self.mesh,
                                   mesh_every=mesh_every)

    def detect(self, bgr: np.ndarray, stream: Hashable = None, frame: int | None = None) -> list[Face]:
        dets = self.tracker.still(bgr) if stream is None else self.tracker.step(bgr, stream, frame)
        faces = []
        height, width = bgr.shape[:2]
        for d in dets:
            x0, y0, x1, y1 = (float(v) for v in d.box)
            w = x1 - x0
            side = self.box_scale * w
            cx = (x0 + x1) / 2 + self.box_shift[0] * w
            cy = (y0 + y1) / 2 + self.box_shift[1] * w
            box = (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))
            face = Face(box=box, score=min(1.0, max(0.0, float(d.score))),
                        keypoints=[(float(x), float(y)) for x, y in d.keypoints])
            if d.landmarks is not None:
                face.pose, face.anchors = pose_and_anchors(d.landmarks, width, height)
            faces.append(face)
        return faces


def pose_and_anchors(landmarks: np.ndarray, width: int, height: int) -> tuple[Pose | None, Anchors | None]:
    """What the wire carries of a face mesh: the head's pose (``common/vision/headpose.py``) and the named points
    and openings (``common/vision/facemesh.py``); None for a pose no fit explains."""
    fit = headpose.fit(landmarks, width, height)
    pose = None
    if fit is not None:
        yaw, pitch, roll = fit.yaw_pitch_roll
        tx, ty, tz = (float(v) for v in fit.t)
        if tz < 1e6 and abs(tx) < 1e17 and abs(ty) < 1e17:
            pose = Pose(yaw, pitch, roll, (tx, ty, tz))
    pts = facemesh.anchors(landmarks)
    sig = facemesh.signals(landmarks)
    ratio = {k: min(10.0, max(0.0, v)) for k, v in sig.items()}  # as the wire bounds them
    anchors = Anchors.make([pts[name] for name in ANCHOR_POINTS], ratio["mouth"], ratio["right_eye"],
                           ratio["left_eye"], ratio["brows"])
    return pose, anchors


DETECTORS: dict[str, type] = {"haar": HaarDetector, "blazeface": BlazeFaceDetector}


def detect_at_most(detector: Detector, bgr: np.ndarray, longest: int, stream: Hashable = None,
                   frame: int | None = None) -> list[Face]:
    """Detection on a bounded working size: a frame whose longer side is over ``longest`` pixels is scaled down
    (area-averaged) for the detector, and the faces scaled back to the frame.  A 48-megapixel photo costs what a
    ``longest``-pixel one does; masks are still painted on the full frame."""
    h, w = bgr.shape[:2]
    k = longest / max(h, w)
    if k >= 1:
        return detector.detect(bgr, stream, frame)
    small = cv2.resize(bgr, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    return [f.scaled(1 / k) for f in detector.detect(small, stream, frame)]


def create_detector(name: str, **options: Any) -> Detector:
    cls = DETECTORS.get(name)
    if cls is None:
        raise DogfilterError(f"unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")
    return cls(**options)
