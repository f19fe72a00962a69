"""Face detection for video: follow the faces already found, and spread the search for new ones over frames.

A full BlazeFace scan of a 640×480 frame for faces from 30 px costs a 384×288 pass of the network (most of it) and a
128×96 one.  In a video most of that work finds the same faces again.  :class:`FaceTracker` does what MediaPipe's
face pipelines do (detect, then follow each face in a small region around where it was), per stream:

follow   every known face is looked for again in a square region around where it should be now (its last box
         moved by its velocity), ``roi_scale`` × its width, resized to ``roi_input`` (48) pixels: all regions go
         through the network as one batch.  A face the network no longer sees there (score under
         ``follow_score``) is dropped; a scan finds it again if it comes back.
scan     the pyramid passes of a full scan (:meth:`BlazeFace.passes`) are spread over ``rescan`` frames, one unit
         at a time (for 640×480: the 461×346 pass, ``rescan``/2 frames later the 128×96 pass), so the cost per
         frame stays flat; a face that appears is found within ``rescan`` frames.  A pass of more than
         ``max_scan_pixels`` network input pixels is cut into overlapping parts (:meth:`BlazeFace.tiles`), each a
         unit of its own (for 1280×720: the 922×519 pass as four 528×336 parts, then the 307×173 and 128×72
         passes: six units, ~20 ms at most on a frame instead of ~55 ms for the whole pass).  A scanned face that
         matches a followed one replaces it; any other becomes a new followed face.
gate     a unit that is due is skipped when nothing changed in the part of the picture it reads, outside the
         faces being followed, since that unit last ran (a grey 1/8-size thumbnail, differences over
         ``change_level`` grey levels on more than ``change_share`` of that part): a new face cannot have appeared
         in a still background.  It runs anyway once ``idle_scans`` of its turns have been skipped (a face missed
         once gets another look; slow lighting drift), and at its next turn after a followed face was lost (it may
         be there still, seen less well).  ``change_level=None`` turns the gate off.
fresh    the first frame of a stream, or one after a gap of more than ``max_gap`` frames (a restarted capture, a
         seek, a stream that went quiet), gets a full scan at once, every pass whole (the one frame that pays for
         a whole scan).  Shorter gaps are followed: where several detect workers share a stream, each sees every
         other frame or so, and a busy source skips some, so gaps of a dozen frames are routine there, and a full
         scan costs several frames' worth of following.

mesh     with a face mesh (``common/vision/facemesh.py``), every face kept gets its 468 landmarks each frame, in a
         region taken from its landmarks of the frame before (moved by its velocity) or, for a face just found,
         from its detection, as MediaPipe's face pipeline does.  A face with landmarks is followed by them alone (no
         detector pass): the mesh keeps a face that turns further than the detector sees.  A face whose mesh
         says it is no face (presence under ``mesh_presence``) is dropped: a followed one is lost, a detected one
         a false box (the detector's low-score boxes on hair, flags and glasses), unless the detector scored it
         ``sure_score`` or more (a face too small for the mesh to read: it is kept, without landmarks).  Its box
         and keypoints are then the landmarks' (:func:`common.vision.facemesh.box_from_landmarks`, the detector's box
         calibrated).
         ``mesh_every`` > 1 runs a followed face's mesh on one frame in that many (faces take turns, so the cost
         per frame stays even); in between, its landmarks move with the face's velocity.

Faces are matched by IoU of their boxes; duplicates (two followed faces converging on one) are merged by score.
Everything is in frame pixels; the boxes and keypoints are the network's (:class:`common.vision.blazeface.Detection`).
Each track has an ``id``, unique within the tracker, that stays with the face while it is followed.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

import cv2
import numpy as np

from dogfilter.common.vision.blazeface import BlazeFace, Detection, Tile, suppress_inner
from dogfilter.common.vision.boxes import iou
from dogfilter.common.vision.facemesh import (
    FaceMesh,
    box_from_landmarks,
    keypoints,
    roi_from_keypoints,
    roi_from_landmarks,
)

_ids = itertools.count(1)


@dataclass(eq=False)  # tracks compare by identity
class Track:
    det: Detection
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # box centre, pixels per frame
    frame: int = 0  # frame number it was last seen in
    id: int = field(default_factory=lambda: next(_ids))
    landmarks: np.ndarray | None = None  # its face mesh (468×3, frame pixels) of frame ``frame``, if it has one
    meshed_at: int = -(10**9)  # the frame its mesh last ran on (``mesh_every``)
    meshes: int = 0  # how many times its mesh ran: from 2 on, its velocity is known

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
    seen: dict[int, tuple[np.ndarray, list[np.ndarray]]] = field(default_factory=dict)  # pass → (thumbnail,
    #   boxes followed then) when it last ran
    skipped: dict[int, int] = field(default_factory=dict)  # pass index → turns skipped since it last ran
    unsure: set[int] = field(default_factory=set)  # passes that must run at their next turn (a face was lost)


class FaceTracker:
    """Per-stream face detection by following + a spread-out scan (module docstring).  ``step(frame, key, n)``
    gives the faces of frame number ``n`` of stream ``key``; streams are independent; ``rescan=1`` is a full
    scan of every frame (what :meth:`BlazeFace.detect` does)."""

    def __init__(self, detector: BlazeFace, rescan: int = 8, roi_scale: float = 1.8, roi_input: int = 48,
                 follow_score: float = 0.5, match_iou: float = 0.3, max_tracks: int = 32,
                 max_streams: int = 64, change_level: float | None = 12.0, change_share: float = 0.002,
                 idle_scans: int = 4, max_gap: int = 30, max_scan_pixels: int | None = 200_000,
                 mesh: FaceMesh | None = None, mesh_presence: float = 0.5, mesh_every: int = 1,
                 sure_score: float = 0.8) -> None:
        self.bf = detector
        self.sure_score = sure_score
        self.mesh, self.mesh_presence, self.mesh_every = mesh, mesh_presence, max(1, int(mesh_every))
        self.max_scan_pixels = max_scan_pixels
        self._units: dict[tuple[int, int], list[Tile]] = {}  # frame shape → the units of its spread-out scan
        self.rescan = max(1, int(rescan))
        self.max_gap = max(1, int(max_gap))
        self.roi_scale, self.roi_input = roi_scale, roi_input
        self.follow_score, self.match_iou = follow_score, match_iou
        self.max_tracks, self.max_streams = max_tracks, max_streams
        self.change_level, self.change_share, self.idle_scans = change_level, change_share, max(1, idle_scans)
        self.streams: OrderedDict[Hashable, StreamState] = OrderedDict()
        self.counts = {"full_scans": 0, "scan_passes": 0, "scans_skipped": 0, "followed": 0, "lost": 0, "new": 0,
                       "meshed": 0, "mesh_rejected": 0, "mesh_carried": 0}

    def _state(self, key: Hashable) -> StreamState:
        st = self.streams.pop(key, None) or StreamState()
        self.streams[key] = st  # most recently used last
        while len(self.streams) > self.max_streams:
            self.streams.popitem(last=False)
        return st

    def _scheduled(self, units: list, step: int) -> list[int]:
        """The units due at this step of the schedule: unit j at step j·rescan/len(units) (mod rescan)."""
        n = len(units)
        return [j for j in range(n) if step % self.rescan == (j * self.rescan) // n]

    def units(self, height: int, width: int) -> list[Tile]:
        """The units of the spread-out scan of a frame of this size: each pass, or the parts of a pass bigger than
        ``max_scan_pixels`` (:meth:`BlazeFace.tiles`)."""
        units = self._units.get((height, width))
        if units is None:
            if len(self._units) >= 16:  # a few frame sizes at a time; any number over time
                self._units.clear()
            units = self._units[(height, width)] = self.bf.tiles(height, width, self.max_scan_pixels)
        return units

    @staticmethod
    def thumbnail(bgr: np.ndarray) -> np.ndarray:
        code = cv2.COLOR_BGRA2GRAY if bgr.ndim == 3 and bgr.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        grey = cv2.cvtColor(bgr, code) if bgr.ndim == 3 else bgr
        return cv2.resize(grey, (max(1, grey.shape[1] // 8), max(1, grey.shape[0] // 8)),
                          interpolation=cv2.INTER_AREA)

    def _changed(self, st: StreamState, j: int, thumb: np.ndarray, region: tuple[int, int, int, int]) -> bool:
        """Has the picture changed, in ``region`` (frame pixels: what unit j reads) and outside the followed faces,
        since unit j last ran?"""
        ref, then = st.seen.get(j, (None, []))
        assert self.change_level is not None  # the gate is on: the caller checked
        if ref is None or ref.shape != thumb.shape:
            return True
        moved = cv2.absdiff(thumb, ref) > self.change_level
        # the followed faces move: that is no news, where they were then nor where they are now (their heads:
        # a bit more than the box)
        for box in then + [t.det.box for t in st.tracks]:
            x0, y0, x1, y1 = box / 8
            w = x1 - x0
            moved[max(0, int(y0 - 0.8 * w)):max(0, int(y1 + 0.5 * w) + 1),
                  max(0, int(x0 - 0.4 * w)):max(0, int(x1 + 0.4 * w) + 1)] = False
        x0, y0, x1, y1 = (v // 8 for v in region)
        part = moved[y0:max(y0 + 1, y1), x0:max(x0 + 1, x1)]
        return bool(part.size and part.mean() > self.change_share)

    def step(self, bgr: np.ndarray, key: Hashable = None, frame: int | None = None) -> list[Detection]:
        """The faces of frame ``frame`` of stream ``key``: the passes due (when the picture changed), then the
        known faces followed in their regions."""
        st = self._state(key)
        n = (st.frame + 1 if st.frame is not None else 0) if frame is None else int(frame)
        gap = None if st.frame is None else n - st.frame
        units = self.units(*bgr.shape[:2])
        if gap is None or gap <= 0 or gap > self.max_gap or self.rescan == 1:
            return self._fresh(st, bgr, n, len(units))
        due = self._gate(st, self._scheduled(units, st.step), bgr, units)
        scanned = self.bf.scan_tiles(bgr, [units[j] for j in due]) if due else []
        self.counts["scan_passes"] += len(due)
        followed, unmatched = self._match(st, scanned, n)
        by_mesh = [t for t in unmatched if t.landmarks is not None] if self.mesh is not None else []
        followed += self._follow(st, [t for t in unmatched if t.landmarks is None], bgr, n, len(units))
        if self.mesh is not None:
            followed = self._landmark(st, bgr, n, followed, by_mesh, len(units))
        st.tracks = self._dedupe(followed)[:self.max_tracks]
        st.frame, st.step = n, st.step + 1
        kept = suppress_inner([t.det for t in st.tracks])
        st.tracks = [t for t in st.tracks if any(t.det is d for d in kept)]
        return kept

    def _fresh(self, st: StreamState, bgr: np.ndarray, n: int, n_units: int) -> list[Detection]:
        """A full scan, every pass whole: the first frame of a stream, or one after a jump."""
        dets = self.bf.scan(bgr)
        self.counts["full_scans"] += 1
        st.tracks = [Track(d, frame=n) for d in dets[:self.max_tracks]]
        if self.mesh is not None:
            st.tracks = self._landmark(st, bgr, n, st.tracks, [], n_units)
            dets = [t.det for t in st.tracks]
        st.frame, st.step = n, 1
        if self.change_level is not None:
            thumb = self.thumbnail(bgr)
            st.seen = dict.fromkeys(range(n_units), (thumb, [t.det.box for t in st.tracks]))
            st.skipped = {}
        return dets

    def _gate(self, st: StreamState, due: list[int], bgr: np.ndarray, units: list[Tile]) -> list[int]:
        """The due units worth running: those where the picture they read changed outside the followed faces (or
        that were skipped too often, or must look again after a face was lost)."""
        if not due or self.change_level is None:
            return due
        thumb = self.thumbnail(bgr)
        run = []
        for j in due:
            if (j in st.unsure or st.skipped.get(j, 0) + 1 >= self.idle_scans
                    or self._changed(st, j, thumb, self.bf.region(units[j], *bgr.shape[:2]))):
                run.append(j)
                st.unsure.discard(j)
                st.seen[j], st.skipped[j] = (thumb, [t.det.box for t in st.tracks]), 0
            else:
                st.skipped[j] = st.skipped.get(j, 0) + 1
                self.counts["scans_skipped"] += 1
        return run

    def _match(self, st: StreamState, scanned: list[Detection], n: int) -> tuple[list[Track], list[Track]]:
        """Scanned faces take the followed face each overlaps most, or start a new one; (tracks, unmatched)."""
        followed, unmatched = [], list(st.tracks)
        for d in scanned:
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
                if best.landmarks is None:  # one with landmarks is placed by them (the next step), not by the scan
                    best.update(d, n)
                followed.append(best)
        return followed, unmatched

    def _follow(self, st: StreamState, tracks: list[Track], bgr: np.ndarray, n: int, n_units: int) -> list[Track]:
        """Each face not found by a scan, looked for in its region (one batch); the ones still there."""
        if not tracks:
            return []
        rois, expect = [], []
        for t in tracks:
            b = t.predicted(n)
            rois.append(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, self.roi_scale * (b[2] - b[0])))
            expect.append(b)
        kept = []
        for t, best in zip(tracks, self.bf.detect_rois(bgr, rois, self.roi_input, self.follow_score, expect),
                           strict=True):
            if best is None:  # gone, or no longer seen well here: the next scans must look, changed or not
                self.counts["lost"] += 1
                st.unsure.update(range(n_units))
                continue
            t.update(best, n)
            kept.append(t)
            self.counts["followed"] += 1
        return kept

    def still(self, bgr: np.ndarray) -> list[Detection]:
        """The faces of a photo (no stream): a full scan, then each face's mesh from its detection and once more
        from its own landmarks (the region a video's next frame would get: the landmarks settle in it)."""
        st = StreamState()
        st.tracks = [Track(d) for d in self.bf.scan(bgr)[:self.max_tracks]]
        if self.mesh is None:
            return [t.det for t in st.tracks]
        for _ in range(2):
            st.tracks = self._landmark(st, bgr, 0, st.tracks, [], 0)
        return suppress_inner([t.det for t in self._dedupe(st.tracks)])

    def _landmark(self, st: StreamState, bgr: np.ndarray, n: int, detected: list[Track], by_mesh: list[Track],
                  n_units: int) -> list[Track]:
        """The face mesh of every track, in one batch: ``detected`` (found by a scan or the detector's region pass
        this frame) and ``by_mesh`` (followed by their landmarks alone).  The tracks that keep a face."""
        assert self.mesh is not None
        carried = []
        if self.mesh_every > 1:  # a face followed by its mesh runs it on one frame in mesh_every (faces take turns)
            carried = [t for t in by_mesh
                       if t.meshes >= 2 and n - t.meshed_at < self.mesh_every and (n + t.id) % self.mesh_every]
            by_mesh = [t for t in by_mesh if t not in carried]  # tracks compare by identity
            for t in carried:  # in between, its landmarks move as the face moves
                assert t.landmarks is not None  # followed by its mesh: it has one
                shift = t.velocity * float(n - t.frame)
                lm = t.landmarks.copy()
                lm[:, :2] += shift
                t.det = Detection(t.det.box + np.array([*shift, *shift], np.float32), t.det.score,
                                  t.det.keypoints + shift, lm)
                t.landmarks, t.frame = lm, n
                self.counts["mesh_carried"] += 1
        tracks = detected + by_mesh
        if not tracks:
            return carried
        rois = []
        for t in tracks:
            if t.landmarks is not None:  # where its landmarks were (frame t.frame), moved as the face moves
                rois.append(roi_from_landmarks(t.landmarks[:, :2] + t.velocity * float(n - t.frame)))
            else:
                rois.append(roi_from_keypoints(t.det.box, t.det.keypoints))
        lms, presence = self.mesh(bgr, rois)
        kept = []
        for i, t in enumerate(tracks):
            if presence[i] < self.mesh_presence:  # no face there (any more)
                t.landmarks = None
                if i >= len(detected):
                    self.counts["lost"] += 1
                    st.unsure.update(range(n_units))
                elif t.det.score >= self.sure_score:  # the detector is sure (a small face the mesh cannot read)
                    kept.append(t)
                else:
                    self.counts["mesh_rejected"] += 1
                continue
            lm = lms[i]
            det = Detection(box_from_landmarks(lm), float(presence[i]), keypoints(lm), lm)
            if i >= len(detected):
                self.counts["followed"] += 1
            if t.landmarks is not None:
                t.update(det, n)
            else:  # just found: its detection was this frame's
                t.det, t.frame = det, n
            t.landmarks, t.meshed_at, t.meshes = lm, n, t.meshes + 1
            self.counts["meshed"] += 1
            kept.append(t)
        return kept + carried

    def _dedupe(self, tracks: list[Track]) -> list[Track]:
        out: list[Track] = []
        for t in sorted(tracks, key=lambda t: -t.det.score):
            if all(iou(t.det.box, o.det.box) < 0.5 for o in out):
                out.append(t)
        return out
