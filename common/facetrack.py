"""Face detection for video: follow the faces already found, and spread the search for new ones over frames.

A full BlazeFace scan of a 640×480 frame for faces from 30 px costs a 384×288 pass of the network (most of it) and a
128×96 one.  In a video most of that work finds the same faces again.  :class:`FaceTracker` does what MediaPipe's
face pipelines do (detect, then follow each face in a small region around where it was), per stream:

follow   every known face is looked for again in a square region around where it should be now (its last box
         moved by its velocity), ``roi_scale`` × its width, resized to ``roi_input`` (48) pixels: all regions go
         through the network as one batch.  A face the network no longer sees there (score under
         ``follow_score``) is dropped; a scan finds it again if it comes back.
scan     the pyramid passes of a full scan (:meth:`BlazeFace.passes`) are spread over ``rescan`` frames, one pass
         at a time (for 640×480: the 384×288 pass, ``rescan``/2 frames later the 128×96 pass), so the cost per
         frame stays flat; a face that appears is found within ``rescan`` frames.  A scanned face that matches a
         followed one replaces it; any other becomes a new followed face.
fresh    the first frame of a stream, or one after a gap of more than ``rescan`` frames (a restarted capture, a
         seek), gets a full scan at once.

Faces are matched by IoU of their boxes; duplicates (two followed faces converging on one) are merged by score.
Everything is in frame pixels; the boxes and keypoints are the network's (:class:`common.blazeface.Detection`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from common.blazeface import BlazeFace, Detection, suppress_inner


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(eq=False)  # tracks compare by identity
class Track:
    det: Detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # box centre, pixels per frame
    frame: int = 0  # frame number it was last seen in

    def predicted(self, frame: int) -> np.ndarray:
        """The box moved by the velocity to ``frame``."""
        d = self.velocity * float(frame - self.frame)
        return self.det.box + np.array([d[0], d[1], d[0], d[1]], np.float32)

    def update(self, det: Detection, frame: int) -> None:
        gap = max(1, frame - self.frame)
        c_old = (self.det.box[:2] + self.det.box[2:]) / 2
        c_new = (det.box[:2] + det.box[2:]) / 2
        self.velocity = 0.5 * self.velocity + 0.5 * (c_new - c_old) / gap
        self.det, self.frame = det, frame


@dataclass
class StreamState:
    tracks: list[Track] = field(default_factory=list)
    frame: int | None = None  # last frame number seen
    step: int = 0  # frames since the last full scan: the scan schedule's clock
    used: float = 0.0


class FaceTracker:
    """Per-stream face detection by following + a spread-out scan (module docstring).  ``step(frame, key, n)``
    gives the faces of frame number ``n`` of stream ``key``; streams are independent; ``rescan=1`` is a full
    scan of every frame (what :meth:`BlazeFace.detect` does)."""

    def __init__(self, detector: BlazeFace, rescan: int = 8, roi_scale: float = 1.8, roi_input: int = 48,
                 follow_score: float = 0.5, match_iou: float = 0.3, max_tracks: int = 32,
                 max_streams: int = 64) -> None:
        self.bf = detector
        self.rescan = max(1, int(rescan))
        self.roi_scale, self.roi_input = roi_scale, roi_input
        self.follow_score, self.match_iou = follow_score, match_iou
        self.max_tracks, self.max_streams = max_tracks, max_streams
        self.streams: OrderedDict[Hashable, StreamState] = OrderedDict()
        self.counts = {"full_scans": 0, "scan_passes": 0, "followed": 0, "lost": 0, "new": 0}

    def _state(self, key: Hashable) -> StreamState:
        st = self.streams.pop(key, None) or StreamState()
        self.streams[key] = st  # most recently used last
        while len(self.streams) > self.max_streams:
            self.streams.popitem(last=False)
        st.used = time.monotonic()
        return st

    def _scheduled(self, passes: list, step: int) -> list:
        """The passes due at this step of the schedule: pass j at step j·rescan/len(passes) (mod rescan)."""
        n = len(passes)
        return [p for j, p in enumerate(passes) if step % self.rescan == (j * self.rescan) // n]

    def step(self, bgr: np.ndarray, key: Hashable = None, frame: int | None = None) -> list[Detection]:
        st = self._state(key)
        n = (st.frame + 1 if st.frame is not None else 0) if frame is None else int(frame)
        gap = None if st.frame is None else n - st.frame
        H, W = bgr.shape[:2]
        passes = self.bf.passes(H, W)
        if gap is None or gap <= 0 or gap > self.rescan or self.rescan == 1:
            dets = self.bf.scan(bgr, passes)
            self.counts["full_scans"] += 1
            st.tracks = [Track(d, frame=n) for d in dets[:self.max_tracks]]
            st.frame, st.step = n, 1
            return dets

        due = self._scheduled(passes, st.step)
        scanned = self.bf.scan(bgr, due) if due else []
        self.counts["scan_passes"] += len(due)
        followed = []
        unmatched = list(st.tracks)
        for d in scanned:  # a scanned face takes the followed face it overlaps most
            best, best_iou = None, self.match_iou
            for t in unmatched:
                o = iou(d.box, t.predicted(n))
                if o >= best_iou:
                    best, best_iou = t, o
            if best is None:
                followed.append(Track(d, frame=n))
                self.counts["new"] += 1
            else:
                unmatched.remove(best)
                best.update(d, n)
                followed.append(best)

        if unmatched:  # follow the rest in their regions, one batch
            rois, expect = [], []
            for t in unmatched:
                b = t.predicted(n)
                rois.append(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, self.roi_scale * (b[2] - b[0])))
                expect.append(b)
            found = self.bf.detect_rois(bgr, rois, self.roi_input, self.follow_score, expect)
            for t, best in zip(unmatched, found, strict=True):
                if best is None:
                    self.counts["lost"] += 1
                    continue
                t.update(best, n)
                followed.append(t)
                self.counts["followed"] += 1

        st.tracks = self._dedupe(followed)[:self.max_tracks]
        st.frame, st.step = n, st.step + 1
        kept = suppress_inner([t.det for t in st.tracks])
        st.tracks = [t for t in st.tracks if any(t.det is d for d in kept)]
        return kept

    def _dedupe(self, tracks: list[Track]) -> list[Track]:
        out: list[Track] = []
        for t in sorted(tracks, key=lambda t: -t.det.score):
            if all(iou(t.det.box, o.det.box) < 0.5 for o in out):
                out.append(t)
        return out
