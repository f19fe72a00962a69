"""BlazeFace (MediaPipe's face detector): both networks in PyTorch, their ONNX exports run by onnxruntime (the
default engine: 2-4× faster on one core), anchors, decoding, weighted NMS, and the region pass tracking needs.

Two networks, with weights converted from the ``.tflite`` files of the PyPI wheel ``mediapipe==0.10.21`` by
``tools/convert_blazeface.py`` (provenance, licence and how the conversion was checked:
``common/assets/models/BLAZEFACE_PROVENANCE.md``):

``short``  ``face_detection_short_range``: 128×128 input, 896 anchors (16×16×2 at stride 8, 8×8×6 at stride 16).
           Made for selfie distance: faces that fill a good part of the picture.
``full``   ``face_detection_full_range_sparse``: 192×192 input, a small feature pyramid, 2304 anchors (48×48×1 at
           stride 4).  Made for group shots: finds faces down to a few percent of the picture.

Both networks are fully convolutional (no global pooling, no dense layer), so they run on any input whose sides
are multiples of the network's ``align`` (16 short, 32 full); the anchors simply follow the feature-map size
(the converter checks this against the reference interpreter at 4:3 sizes too).  MediaPipe letterboxes each frame
into the square input; :class:`BlazeFace` instead resizes the frame, keeping its aspect ratio (a 4:3 frame costs
no padding), and runs a small image pyramid so that faces from ``min_face`` pixels to the whole frame are found.

Decoding is MediaPipe's (``TensorsToDetectionsCalculator`` with ``reverse_output_order``, fixed-size anchors):
the regressor gives, per anchor, in input pixels, the box centre offset from the anchor centre, the box size
and the offsets of six keypoints — the subject's right eye, left eye, nose tip, mouth centre, right ear tragion,
left ear tragion (so in a photo of a frontal face, keypoint 0 is the eye on the image's left).  Scores are the
sigmoid of the clipped classifier logit.  Overlapping detections are merged by MediaPipe's *weighted* NMS:
each cluster of boxes with IoU above ``nms_iou`` becomes the score-weighted mean of its boxes and keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common import ASSETS, optional
from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.boxes import box_iou
from dogfilter.common.vision.onnxrun import open_session

MODEL_DIR = ASSETS / "models"
WEIGHTS = {"short": MODEL_DIR / "blazeface_short_range.pth", "full": MODEL_DIR / "blazeface_full_range.pth"}
#: the same networks exported to ONNX by tools/convert_blazeface (dynamic batch, height, width), run by onnxruntime
ONNX = {kind: path.with_suffix(".onnx") for kind, path in WEIGHTS.items()}
ENGINES = ("auto", "onnxruntime", "torch")
SCORE_CLIP = 100.0  # MediaPipe clips logits to ±100 before the sigmoid
TILE_MARGIN = 8  # input pixels: a part of a pass keeps boxes this far inside its edges within the frame
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear_tragion", "left_ear_tragion")

@dataclass(frozen=True)
class Arch:
    """What the rest of the code needs to know of a network: its anchors, alignment, and the face sizes it sees."""

    align: int
    anchors_per_cell: tuple[int, ...]
    strides: tuple[int, ...]
    default_input: int
    min_score: float  # MediaPipe's threshold
    min_face: float  # input pixels: smallest face width found reliably (measured, commands/bench_detect)
    window: tuple[float, float]  # box widths (input pixels) a pass of a pyramid is trusted with


SPECS = {
    "short": Arch(16, (2, 6), (8, 16), 128, 0.5, 18.0, (24.0, 112.0)),  # anchors at stride 8, at stride 16
    "full": Arch(32, (1,), (4,), 192, 0.6, 20.0, (24.0, 160.0)),
}


# ----------------------------------------------------------------------------------------------- anchors, decoding


def anchors(net: Arch | Any, height: int, width: int) -> np.ndarray:
    """A×2 anchor centres in input pixels, in the networks' output order (MediaPipe's SsdAnchorsCalculator with
    fixed-size anchors: every anchor of a cell has the cell's centre; layers sharing a stride are stacked)."""
    out = []
    for stride, per_cell in zip(net.strides, net.anchors_per_cell, strict=True):
        gy, gx = np.mgrid[0:height // stride, 0:width // stride].astype(np.float32)
        c = np.stack([(gx + 0.5) * stride, (gy + 0.5) * stride], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out)


@dataclass(frozen=True)
class Tile:
    """One unit of a spread-out scan: a pyramid pass (``side``: its longer input side; ``lo``, ``hi``: the box
    widths it keeps, input pixels), whole or one part of it: ``x0, y0, x1, y1``, the part of the pass's resized
    frame it reads (input pixels; the whole of it for a pass run whole).  Parts of a pass overlap by more than the
    widest face the pass keeps plus ``margin`` on each side, and a part keeps only the boxes lying ``margin`` or more
    inside each of its edges that is not an edge of the frame: so every face a whole pass would keep lies well inside
    one part, and a face cut by a part's edge is not taken for a smaller one (:meth:`BlazeFace.tiles`)."""

    side: int
    lo: float
    hi: float
    x0: int
    y0: int
    x1: int
    y1: int
    margin: float = 0.0


@dataclass
class Detection:
    """One face in frame pixels: box (x0, y0, x1, y1) as the network draws it, score, 6 keypoints (x, y), and its
    face mesh's 468 landmarks where the tracker ran it (``common/vision/facemesh.py``)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray
    landmarks: np.ndarray | None = None


def decode(reg: np.ndarray, logits: np.ndarray, anchor_xy: np.ndarray, min_score: float) -> tuple[np.ndarray, ...]:
    """Raw outputs (A×16, A) → (boxes K×4 x0,y0,x1,y1, scores K, keypoints K×6×2), input pixels, score ≥ min_score."""
    threshold = -np.inf if min_score <= 0 else np.inf if min_score >= 1 else np.log(min_score / (1 - min_score))
    keep = np.flatnonzero(logits >= threshold)  # sigmoid(l) ≥ p  ⇔  l ≥ logit(p): no exp() over every anchor
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    r, a = reg[keep], anchor_xy[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    return boxes, scores, kps


def _merge(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, members: np.ndarray, score: float) -> Detection:
    """One cluster as weighted NMS merges it: the score-weighted mean of its boxes and keypoints, with ``score``."""
    w = scores[members] / scores[members].sum()
    return Detection((boxes[members] * w[:, None]).sum(0), float(score), (kps[members] * w[:, None, None]).sum(0))


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou: float = 0.3) -> list[Detection]:
    """MediaPipe's WEIGHTED non-maximum suppression: the best remaining box takes every box overlapping it by more
    than ``iou`` and becomes their score-weighted average (box and keypoints); its score stays the best score."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        idx = np.flatnonzero(alive)
        members = idx[box_iou(boxes[i], boxes[idx]) > iou]
        members = members if len(members) else np.array([i])
        out.append(_merge(boxes, scores, kps, members, scores[i]))
        alive[members] = False
        alive[i] = False
    return out


def suppress_inner(dets: list[Detection], cover: float = 0.75, ratio: float = 1.8,
                   head: tuple[float, float, float] = (0.15, 0.7, 0.15)) -> list[Detection]:
    """Of a detection lying mostly (``cover`` of its area) inside the head of one at least ``ratio`` times wider,
    keep only the more confident: they cannot both be faces.  A pyramid's fine pass sometimes takes an eye behind
    glasses, or a cap badge, of a large face for a small face; a coarse pass sometimes takes a distant face and what
    surrounds it for one large face.  The head is the face box widened by ``head[0]`` × its width on both sides,
    ``head[1]`` above (hair, hat) and ``head[2]`` below."""

    def nested(a: Detection, b: Detection) -> bool:
        small, big = (a, b) if a.box[2] - a.box[0] <= b.box[2] - b.box[0] else (b, a)
        w, bw = small.box[2] - small.box[0], big.box[2] - big.box[0]
        if bw < ratio * w:
            return False
        hx0, hy0 = big.box[0] - head[0] * bw, big.box[1] - head[1] * bw
        hx1, hy1 = big.box[2] + head[0] * bw, big.box[3] + head[2] * bw
        ix = max(0.0, min(small.box[2], hx1) - max(small.box[0], hx0))
        iy = max(0.0, min(small.box[3], hy1) - max(small.box[1], hy0))
        return ix * iy >= cover * max(w * (small.box[3] - small.box[1]), 1e-9)

    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if not any(nested(d, k) for k in kept):
            kept.append(d)
    return [d for d in dets if any(d is k for k in kept)]  # in the order given


# ----------------------------------------------------------------------------------------------- loading, running


def input_shape(height: int, width: int, input_size: int, align: int) -> tuple[int, int, int, int]:
    """(resized h, w, padded h, w): the frame resized so that its longer side is ``input_size``, aspect kept, then
    padded right/bottom to multiples of ``align``."""
    s = input_size / max(height, width)
    rh, rw = max(1, round(height * s)), max(1, round(width * s))
    return rh, rw, -(-rh // align) * align, -(-rw // align) * align


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if img.shape[2] == 4 else img


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-averaging when shrinking (no aliasing: small faces stay faces; bilinear, as MediaPipe does, loses a few
    of the smallest), bilinear when enlarging."""
    if (w, h) == (img.shape[1], img.shape[0]):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR)


def _blob(small: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """BGR uint8 h×w → 1×3×ph×pw float32 RGB in [-1, 1], padded right/bottom with black (−1)."""
    if small.shape[:2] != (ph, pw):
        small = cv2.copyMakeBorder(small, 0, ph - small.shape[0], 0, pw - small.shape[1], cv2.BORDER_CONSTANT)
    return cv2.dnn.blobFromImage(small, 1 / 127.5, (pw, ph), (127.5, 127.5, 127.5), swapRB=True)


def to_input(bgr: np.ndarray, input_size: int, align: int) -> tuple[np.ndarray, float, float]:
    """BGR uint8 frame → 1×3×H×W float32 RGB in [-1, 1] (padding black, as MediaPipe's letterbox), and the x, y
    scales from frame to input pixels."""
    bgr = _bgr(bgr)
    H, W = bgr.shape[:2]
    rh, rw, ph, pw = input_shape(H, W, input_size, align)
    return _blob(_resize(bgr, rw, rh), ph, pw), rw / W, rh / H


class OnnxEngine:
    """The same network exported to ONNX, run by onnxruntime on ``threads`` threads: 2-4× faster than eager
    PyTorch on one core for these small inputs (fused convolutions, no per-operator Python)."""

    name = "onnxruntime"

    def __init__(self, kind: str, path: str | Path | None = None, threads: int = 1) -> None:
        p = Path(path) if path else ONNX[kind]
        self.session, self.input = open_session(p, "BlazeFace ONNX model", threads=threads,
                                                outputs=["regressors", "logits"], export="BlazeFace export",
                                                missing=", or use the torch engine",
                                                make="python -m tools.convert_blazeface")
        net, size = SPECS[kind], SPECS[kind].default_input
        reg, cls = self(np.zeros((1, 3, size, size), np.float32))  # the anchors must be this network's
        if reg.shape != (1, len(anchors(net, size, size)), 16) or cls.shape != reg.shape[:2]:
            raise DogfilterError(f"{p} is not the {kind}-range BlazeFace network (outputs {reg.shape}, {cls.shape} "
                                 f"for a {size}×{size} input)")

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reg, cls = self.session.run(None, {self.input: x})
        return reg, cls[..., 0]


def load_engine(kind: str, engine: str = "auto", weights: str | Path | None = None,
                threads: int = 1) -> Any:
    """``auto``: onnxruntime when it is installed and the ONNX file is there, else PyTorch.  ``weights``: a
    ``.pth`` (torch) or ``.onnx`` (onnxruntime) file instead of the committed one."""
    if kind not in SPECS:
        raise DogfilterError(f"unknown BlazeFace model {kind!r} (known: {', '.join(sorted(SPECS))})")
    if engine not in ENGINES:
        raise DogfilterError(f"unknown BlazeFace engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "auto":
        if weights is not None:
            engine = "onnxruntime" if str(weights).endswith(".onnx") else "torch"
        else:
            try:
                import onnxruntime  # noqa: F401 - only whether it imports
                engine = "onnxruntime" if ONNX[kind].is_file() else "torch"
            except ImportError:
                engine = "torch"
    if engine == "onnxruntime":
        return OnnxEngine(kind, weights, threads)
    torch = optional.torch("the PyTorch BlazeFace engine (--detect-engine torch, or .pth weights)")

    from dogfilter.common.vision.blazeface_nets import TorchEngine  # PyTorch only on this path

    torch.set_num_threads(max(1, threads))
    return TorchEngine(kind, weights)


class BlazeFace:
    """Frame in, :class:`Detection` list out (frame pixels), over a small image pyramid.

    A BlazeFace network finds faces from about ``net.min_face`` to ``net.window[1]`` input pixels wide.  To find
    every face of at least ``min_face`` frame pixels (the network's box width), the first pass scales the frame by
    ``net.min_face / min_face`` (at most 1); each further pass is 3× smaller, down to the network's own input size
    (longer side 128 for the short-range model), which sees the faces that fill the frame.  A pass keeps the
    faces inside ``net.window`` (the first pass: no lower bound; the last: no upper bound; each pass starts at
    three quarters of where the pass before stops), so each face size is taken from a pass that sees it well;
    weighted NMS merges them all, then :func:`suppress_inner` settles a small "face" found inside a much larger
    one.  For 640×480 and ``min_face=25`` (the detector's default 30 px in Haar's box units) with the short-range
    model: 461×346 and 128×96; for 1280×720, 922×519, 307×173 and 128×72.

    ``input_size`` instead runs one pass, the frame resized so that its longer side is that many pixels.
    :meth:`detect_rois` looks for one face in each of a few square regions at once (what tracking needs);
    :meth:`tiles` and :meth:`scan_tiles` cut a pass too big for one frame of a spread-out scan into parts.
    """

    def __init__(self, kind: str = "short", min_face: float = 30.0, input_size: int | None = None,
                 min_score: float | None = None, nms_iou: float = 0.3, weights: str | Path | None = None,
                 engine: str = "auto", threads: int = 1) -> None:
        self.kind = kind
        self.engine = load_engine(kind, engine, weights, threads)
        self.net = SPECS[kind]  # the architecture's constants: align, strides, windows, thresholds
        self.min_face, self.input_size = float(min_face), input_size
        # MediaPipe's thresholds: 0.5 short range, 0.6 full range
        self.min_score = float(min_score if min_score is not None else self.net.min_score)
        self.nms_iou = nms_iou
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def passes(self, height: int, width: int) -> list[tuple[int, float, float]]:
        """(longer input side, smallest, largest box width kept in input pixels) of each pass for a frame."""
        longer, native = max(height, width), self.net.default_input
        if self.input_size:
            return [(int(self.input_size), 0.0, np.inf)]
        sides = [max(1, round(longer * min(1.0, self.net.min_face / self.min_face)))]
        while sides[-1] > native:
            nxt = round(sides[-1] / 3)
            sides.append(nxt if nxt >= 1.5 * native else native)  # no pass barely finer than the last one
        lo, hi = self.net.window
        out = [(sides[0], 0.0, hi if len(sides) > 1 else np.inf)]
        for i, side in enumerate(sides[1:], 1):
            # from the face size the pass before stops at (less a quarter, for overlap): a coarse pass is not
            # asked about faces a finer one saw well, which it would mistake a small face and its surroundings for
            handover = 0.75 * hi * side / sides[i - 1]
            out.append((side, max(lo, handover), hi if i < len(sides) - 1 else np.inf))
        return out

    def tiles(self, height: int, width: int, max_pixels: int | None = None) -> list[Tile]:
        """The passes of a full scan as units of at most ``max_pixels`` network input pixels each (None: each pass
        whole): a pass bigger than that is cut into a grid of overlapping parts (:class:`Tile`), the fewest that fit.
        For 1280×720 and 200 000: the 922×519 pass as 2×2 parts of 528×336, then the 307×173 and 128×72 passes whole
        (a 640×480 frame's passes all fit whole).  The coarsest pass (no upper bound on the faces it keeps) is never
        cut: it is the network's own input size."""
        out = []
        for side, lo, hi in self.passes(height, width):
            rh, rw, ph, pw = input_shape(height, width, side, self.net.align)
            if max_pixels is None or ph * pw <= max_pixels or not np.isfinite(hi):
                out.append(Tile(side, lo, hi, 0, 0, rw, rh))
                continue
            margin = float(TILE_MARGIN)
            overlap = int(np.ceil(hi)) + 2 * TILE_MARGIN + 2  # +2: the parts' starts are rounded to whole pixels
            cols, rows, tw, th = self._grid(rw, rh, overlap, max_pixels)
            xs = [round(i * (rw - tw) / (cols - 1)) if cols > 1 else 0 for i in range(cols)]
            ys = [round(j * (rh - th) / (rows - 1)) if rows > 1 else 0 for j in range(rows)]
            out += [Tile(side, lo, hi, x, y, min(rw, x + tw), min(rh, y + th), margin) for y in ys for x in xs]
        return out

    def _grid(self, rw: int, rh: int, overlap: int, max_pixels: int) -> tuple[int, int, int, int]:
        """(columns, rows, part width, part height) of the fewest parts of an rw×rh input, overlapping by
        ``overlap``, each at most ``max_pixels`` once padded to the network's alignment (the finest tried when none
        fits: a part cannot be narrower than the overlap)."""
        a = self.net.align

        def part(n: int, length: int) -> int:  # ceil((length + (n - 1) · overlap) / n), padded to the alignment
            side = -(-(length + (n - 1) * overlap) // n)
            return -(-side // a) * a

        grids = [(c, r, part(c, rw), part(r, rh)) for c in range(1, 9) for r in range(1, 9)]
        grids = [g for g in grids if (g[0] == 1 or overlap < g[2] < rw) and (g[1] == 1 or overlap < g[3] < rh)]
        fit = [g for g in grids if g[2] * g[3] <= max_pixels]
        if fit:
            return min(fit, key=lambda g: (g[0] * g[1], g[0] * g[1] * g[2] * g[3]))
        return min(grids, key=lambda g: g[2] * g[3])

    def anchors_for(self, h: int, w: int) -> np.ndarray:
        anc = self._anchors.get((h, w))
        if anc is None:
            anc = self._anchors[(h, w)] = anchors(self.net, h, w)
        return anc

    def candidates(self, x: np.ndarray, sx: float, sy: float, lo: float = 0.0,
                   hi: float = np.inf) -> tuple[np.ndarray, ...]:
        """One pass on its input ``x`` (1×3×H×W, the frame scaled by sx, sy): boxes (x0, y0, x1, y1), scores and
        keypoints in frame pixels, of width ``lo``…``hi`` input pixels, before NMS."""
        reg, logits = self.engine(x)
        boxes, scores, kps = decode(reg[0], logits[0], self.anchors_for(*x.shape[2:]), self.min_score)
        bw = boxes[:, 2] - boxes[:, 0]
        keep = (bw > 0) & (bw >= lo) & (bw <= hi)
        scale = np.array([sx, sy, sx, sy], np.float32)
        return boxes[keep] / scale, scores[keep], kps[keep] / scale[:2]

    def scan(self, bgr: np.ndarray, passes: list[tuple[int, float, float]] | None = None) -> list[Detection]:
        """Run ``passes`` (default: all of :meth:`passes`) over the frame; merged detections, frame pixels."""
        bgr = _bgr(bgr)
        H, W = bgr.shape[:2]
        parts, level = [], bgr
        for side, lo, hi in self.passes(H, W) if passes is None else passes:
            rh, rw, ph, pw = input_shape(H, W, side, self.net.align)
            if rw > level.shape[1]:
                level = bgr  # passes given out of order: start again from the frame
            level = _resize(level, rw, rh)  # each level from the one before: a cheap pyramid
            parts.append(self.candidates(_blob(level, ph, pw), rw / W, rh / H, lo, hi))
        return self._merge(parts)

    def scan_tiles(self, bgr: np.ndarray, tiles: list[Tile]) -> list[Detection]:
        """Run some units of a spread-out scan (:meth:`tiles`) over the frame; merged detections, frame pixels.
        Each reads only its part of the frame, resized from the frame itself."""
        return self._merge([self._tile_candidates(bgr, t) for t in tiles])

    def _merge(self, parts: list[tuple[np.ndarray, ...]]) -> list[Detection]:
        """The candidates of several passes or parts (boxes, scores, keypoints each) as one set of detections."""
        if not parts:
            return []
        boxes, scores, kps = (np.concatenate(v) for v in zip(*parts, strict=True))
        return suppress_inner(weighted_nms(boxes, scores, kps, self.nms_iou))

    def region(self, t: Tile, height: int, width: int) -> tuple[int, int, int, int]:
        """The frame pixels a unit reads, x0, y0, x1, y1 (whole pixels: a little more than its part of the pass)."""
        rh, rw, _, _ = input_shape(height, width, t.side, self.net.align)
        sx, sy = rw / width, rh / height
        return (int(t.x0 / sx), int(t.y0 / sy), min(width, int(np.ceil(t.x1 / sx))),
                min(height, int(np.ceil(t.y1 / sy))))

    def _tile_candidates(self, bgr: np.ndarray, t: Tile) -> tuple[np.ndarray, ...]:
        H, W = bgr.shape[:2]
        rh, rw, _, _ = input_shape(H, W, t.side, self.net.align)
        sx, sy = rw / W, rh / H
        fx0, fy0, fx1, fy1 = self.region(t, H, W)  # resized from the frame as the whole pass would be
        ow, oh = max(1, round((fx1 - fx0) * sx)), max(1, round((fy1 - fy0) * sy))
        a = self.net.align
        small = _resize(_bgr(bgr[fy0:fy1, fx0:fx1]), ow, oh)
        boxes, scores, kps = self.candidates(_blob(small, -(-oh // a) * a, -(-ow // a) * a), ow / (fx1 - fx0),
                                             oh / (fy1 - fy0), t.lo, t.hi)
        boxes = boxes + np.array([fx0, fy0, fx0, fy0], np.float32)
        kps = kps + np.array([fx0, fy0], np.float32)
        if t.margin > 0:  # a part's edge inside the frame: only the boxes well inside it (the next part has the rest)
            mx, my = t.margin / sx, t.margin / sy
            inside = ((boxes[:, 0] >= (fx0 + mx if fx0 > 0 else -np.inf))
                      & (boxes[:, 1] >= (fy0 + my if fy0 > 0 else -np.inf))
                      & (boxes[:, 2] <= (fx1 - mx if fx1 < W else np.inf))
                      & (boxes[:, 3] <= (fy1 - my if fy1 < H else np.inf)))
            boxes, scores, kps = boxes[inside], scores[inside], kps[inside]
        return boxes, scores, kps

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        """Every face of the frame (a full scan: no memory of earlier frames)."""
        return self.scan(bgr)

    def detect_rois(self, bgr: np.ndarray, rois: list[tuple[float, float, float]], size: int = 64,
                    min_score: float | None = None,
                    expect: list[np.ndarray] | None = None) -> list[Detection | None]:
        """The face in each square region (centre x, centre y, side; frame pixels; may reach past the frame, which
        reads as black), each region resized to ``size``×``size``, all regions in one batch.  Per region: the best
        face overlapping ``expect[i]`` (a box where the face should be; default the middle half of the region), as
        weighted NMS would merge it, in frame pixels, or None when no anchor there reaches ``min_score``."""
        if not rois:
            return []
        bgr = _bgr(bgr)
        H, W = bgr.shape[:2]
        size = -(-size // self.net.align) * self.net.align
        crops, origins = [], []
        for cx, cy, side in rois:
            side = max(8, int(round(side)))
            x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
            cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side)
            crop: np.ndarray
            if cx1 <= cx0 or cy1 <= cy0:
                crop = np.zeros((side, side, 3), np.uint8)
            elif (cx0, cy0, cx1, cy1) == (x0, y0, x0 + side, y0 + side):
                crop = bgr[cy0:cy1, cx0:cx1]  # inside the frame: read in place (a bordered copy costs as much as the
            else:  # pyramid step that follows)
                crop = cv2.copyMakeBorder(bgr[cy0:cy1, cx0:cx1], cy0 - y0, y0 + side - cy1, cx0 - x0,
                                          x0 + side - cx1, cv2.BORDER_CONSTANT)
            while crop.shape[0] > 2 * size:  # halve (Gaussian pyramid: no aliasing), then a short bilinear step:
                crop = cv2.pyrDown(crop)  # several times cheaper than area-averaging at an arbitrary ratio
            crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR))
            origins.append((x0, y0, size / side))
        x = cv2.dnn.blobFromImages(crops, 1 / 127.5, (size, size), (127.5, 127.5, 127.5), swapRB=True)
        reg, logits = self.engine(x)
        anc = self.anchors_for(size, size)
        threshold = self.min_score if min_score is None else min_score
        out: list[Detection | None] = []
        for i, (x0, y0, s) in enumerate(origins):
            boxes, scores, kps = decode(reg[i], logits[i], anc, threshold)
            if expect is None:
                q = size / 4
                want = np.array([q, q, 3 * q, 3 * q], np.float32)
            else:
                want = (np.asarray(expect[i], np.float32) - np.array([x0, y0, x0, y0], np.float32)) * s
            overlap = box_iou(want, boxes) if len(boxes) else np.zeros(0)
            ok = np.flatnonzero((overlap > 0) & (boxes[:, 2] > boxes[:, 0]))
            if not len(ok):
                out.append(None)
                continue
            seed = ok[np.argmax(scores[ok])]  # the best face where this one should be: its NMS cluster only
            d = _merge(boxes, scores, kps, np.flatnonzero(box_iou(boxes[seed], boxes) > self.nms_iou), scores[seed])
            out.append(Detection(d.box / s + np.array([x0, y0, x0, y0], np.float32), d.score,
                                 d.keypoints / s + np.array([x0, y0], np.float32)))
        return out
