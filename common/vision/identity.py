"""Which face is which across the frames of one stream, and each face's emotion smoothed over time.

The composite asks the classifier about every face of every frame, but a reply may come late (the frame is painted
before it) or not at all (a worker died).  :class:`FaceIdentities` keeps, per stream, the faces seen lately
(matched frame to frame by the IoU of their boxes) and each one's emotion probabilities, smoothed exponentially,
so a face keeps its last known emotion while the classifier catches up, and masks do not flicker.

Probabilities are kept by label (``{"happy": 0.8, ...}``), not by position: two classify workers running
different models (other classes, another order) still teach the same face the same thing.  State is bounded: at
most ``max_tracks`` faces per stream, each forgotten ``max_gap`` frames after it was last seen, each with at most
``MAX_LABELS`` labels (the composite takes only workers whose classes are emotions it knows).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from dogfilter.common.vision.boxes import iou_xywh
from dogfilter.common.vision.dog3d import Reactions
from dogfilter.common.vision.smoothing import FaceSmoother

MATCH_IOU = 0.3
MAX_LABELS = 16  # labels kept per face (the wire allows 16 classes a worker)


@dataclass
class Track:
    id: int
    box: Sequence[float]
    last_frame: int
    probs: dict[str, float] | None = None
    asked: float = float("-inf")  # when (monotonic s) the composite last sent this face to the classifier
    motion: FaceSmoother = field(default_factory=FaceSmoother)  # its anchors and pose, smoothed in frame order
    reactions: Reactions = field(default_factory=Reactions)  # what its dog does (tongue, ears, eyelids), over time

    @property
    def emotion(self) -> tuple[str, float] | None:
        """The most likely label and its probability, once the face has been classified."""
        if not self.probs:
            return None
        label = max(self.probs, key=self.probs.__getitem__)
        return label, self.probs[label]


class FaceIdentities:
    """The faces of one stream."""

    _ids = itertools.count(1)  # unique across streams, so a track id names one face

    def __init__(self, smooth: float = 0.5, max_gap: int = 15, max_tracks: int = 64) -> None:
        self.smooth = min(max(float(smooth), 0.0), 0.95)
        self.max_gap, self.max_tracks = max_gap, max_tracks
        self.tracks: list[Track] = []

    def known(self, box: Sequence[float]) -> bool:
        """A face whose emotion is known already is where this box is."""
        return any(t.probs and iou_xywh(t.box, box) >= MATCH_IOU for t in self.tracks)

    def match(self, box: Sequence[float]) -> Track | None:
        """The known face this box is most likely (IoU at least ``MATCH_IOU``), without changing anything."""
        best, best_iou = None, MATCH_IOU
        for t in self.tracks:
            o = iou_xywh(t.box, box)
            if o >= best_iou:
                best, best_iou = t, o
        return best

    def assign(self, frame: int, boxes: Sequence[Sequence[float]]) -> list[Track]:
        """The track of each box of frame ``frame`` (new tracks for new faces); forgets faces not seen lately."""
        pairs = sorted(((iou_xywh(t.box, b), ti, bi) for ti, t in enumerate(self.tracks)
                        for bi, b in enumerate(boxes)), reverse=True)
        taken: set[int] = set()
        out: dict[int, Track] = {}
        for score, ti, bi in pairs:
            if score < MATCH_IOU:
                break
            if ti not in taken and bi not in out:
                taken.add(ti)
                out[bi] = self.tracks[ti]
        for bi, b in enumerate(boxes):
            if bi not in out:
                out[bi] = Track(next(self._ids), b, frame)
                self.tracks.append(out[bi])
            out[bi].box, out[bi].last_frame = b, frame
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_gap]
        if len(self.tracks) > self.max_tracks:  # keep the faces seen last
            self.tracks = sorted(self.tracks, key=lambda t: t.last_frame)[-self.max_tracks:]
        return [out[i] for i in range(len(boxes))]

    def learn(self, track_id: int, classes: Sequence[str], probs: Sequence[float]) -> None:
        """Fold one classification (``probs`` in the order of ``classes``) into a face's smoothed probabilities."""
        track = next((t for t in self.tracks if t.id == track_id), None)
        if track is not None:
            self.teach(track, classes, probs)

    def teach(self, track: Track, classes: Sequence[str], probs: Sequence[float]) -> None:
        new = dict(zip(classes, (float(p) for p in probs), strict=True))
        if track.probs is None:
            track.probs = new
            return
        a = self.smooth
        labels = (set(track.probs) | set(new))
        mixed = {k: a * track.probs.get(k, 0.0) + (1 - a) * new.get(k, 0.0) for k in labels}
        if len(mixed) > MAX_LABELS:  # bounded whatever labels workers announce: the least likely go
            mixed = dict(sorted(mixed.items(), key=lambda kv: -kv[1])[:MAX_LABELS])
        track.probs = mixed
