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
import torch
from dogfilter.common import ASSETS
from dogfilter.common.errors import DogfilterError
from torch import nn
from torch.nn import functional as F  # noqa: N812

MODEL_DIR = ASSETS / "models"
WEIGHTS = {"short": MODEL_DIR / "blazeface_short_range.pth", "full": MODEL_DIR / "blazeface_full_range.pth"}
#: the same networks exported to ONNX by tools/convert_blazeface (dynamic batch, height, width), run by onnxruntime
ONNX = {kind: path.with_suffix(".onnx") for kind, path in WEIGHTS.items()}
ENGINES = ("auto", "onnxruntime", "torch")
SCORE_CLIP = 100.0  # MediaPipe clips logits to ±100 before the sigmoid
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear_tragion", "left_ear_tragion")


# ----------------------------------------------------------------------------------------------- short range


def _exporting() -> bool:
    """True while ``torch.onnx.export`` traces a network: the CPU shortcuts below (matrix products for 1×1
    convolutions, padded kernels, in-place adds) become the plain operators an ONNX runtime optimises itself."""
    return torch.onnx.is_in_onnx_export()


def _pw(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1×1 convolution as one matrix product over the channels-last pixels (no copy in, none out): on CPU, much
    faster than PyTorch's 1×1 convolution of channels-last tensors."""
    if _exporting():
        return conv(x)
    w = conv.weight.view(conv.weight.shape[0], conv.weight.shape[1])
    return F.linear(x.permute(0, 2, 3, 1), w, conv.bias).permute(0, 3, 1, 2)


def _same_s2(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """TensorFlow's "SAME" 3×3 stride-2 convolution of an even-sized input (no padding before, one row/column
    after) without copying the input into a padded one: the kernel becomes 4×4 with a zero first row and column,
    and PyTorch's symmetric padding of 1 then reads exactly TensorFlow's pixels."""
    if _exporting():
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, 2, 0, 1, conv.groups)
    k = conv.weight.shape[-1]
    return F.conv2d(x, F.pad(conv.weight, (1, 0, 1, 0)), conv.bias, 2, k // 2, 1, conv.groups)


class _BlazeBlock(nn.Module):
    """Depthwise 3×3 + pointwise 1×1, plus the input (max-pooled when striding, zero-padded in channels), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.stride, self.cin = stride, cin
        self.dw = nn.Conv2d(cin, cin, 3, stride, padding=1 if stride == 1 else 0, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            h = _pw(self.pw, _same_s2(x, self.dw))
            x = F.max_pool2d(x, 2)
        else:
            h = _pw(self.pw, self.dw(x))
        if h.shape[1] != self.cin and _exporting():
            return F.relu(h + F.pad(x, (0, 0, 0, 0, 0, h.shape[1] - self.cin)))
        if h.shape[1] != self.cin:  # the shortcut is zero-padded in channels: add it to the first ones only
            h[:, :self.cin] += x
            return F.relu_(h)
        return F.relu_(h.add_(x))


class ShortRangeNet(nn.Module):
    """``face_detection_short_range.tflite``, layer for layer (the BlazeFace paper's front-camera network)."""

    align = 16
    anchors_per_cell = (2, 6)  # at stride 8, at stride 16
    strides = (8, 16)
    default_input = 128
    min_score = 0.5  # MediaPipe's
    min_face = 18.0  # input pixels: smallest face width found reliably (measured, tools/bench_detect)
    window = (24.0, 112.0)  # box widths (input pixels) a pass of a pyramid is trusted with

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 24, 5, 2)
        chans = [(24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1),
                 (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1)]
        self.stage16 = nn.Sequential(*(_BlazeBlock(*c) for c in chans))
        self.stage8 = nn.Sequential(_BlazeBlock(88, 96, 2), *(_BlazeBlock(96, 96) for _ in range(4)))
        self.cls8, self.cls16 = nn.Conv2d(88, 2, 1), nn.Conv2d(96, 6, 1)
        self.reg8, self.reg16 = nn.Conv2d(88, 32, 1), nn.Conv2d(96, 96, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: N×3×H×W in [-1, 1] → (regressors N×A×16, classifier logits N×A×1)."""
        x = F.relu_(self.conv(F.pad(x, (1, 2, 1, 2))))  # TensorFlow "SAME", 5×5, stride 2
        a = self.stage16(x)
        b = self.stage8(a)
        n = x.shape[0]
        cls = torch.cat([_flat(_pw(self.cls8, a), n, 1), _flat(_pw(self.cls16, b), n, 1)], 1)
        reg = torch.cat([_flat(_pw(self.reg8, a), n, 16), _flat(_pw(self.reg16, b), n, 16)], 1)
        return reg, cls


def _flat(t: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """N×(A·k)×H×W → N×(H·W·A)×k in TensorFlow's order (row, column, anchor)."""
    return t.permute(0, 2, 3, 1).reshape(n, -1, k)


# ----------------------------------------------------------------------------------------------- full range


class _Residual(nn.Module):
    """dw3×3 → pw (c→m) ReLU → dw3×3 → pw (m→c), plus the input, ReLU."""

    def __init__(self, c: int, m: int) -> None:
        super().__init__()
        self.dw1, self.pw1 = nn.Conv2d(c, c, 3, 1, 1, groups=c), nn.Conv2d(c, m, 1)
        self.dw2, self.pw2 = nn.Conv2d(m, m, 3, 1, 1, groups=m), nn.Conv2d(m, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(_pw(self.pw2, self.dw2(F.relu_(_pw(self.pw1, self.dw1(x))))).add_(x))


class _Down(nn.Module):
    """dw3×3 stride 2 → pw (c→m) ReLU → dw3×3 → pw (m→out) ReLU; no shortcut."""

    def __init__(self, c: int, m: int, out: int) -> None:
        super().__init__()
        self.dw1, self.pw1 = nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.Conv2d(c, m, 1)
        self.dw2, self.pw2 = nn.Conv2d(m, m, 3, 1, 1, groups=m), nn.Conv2d(m, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(_pw(self.pw2, self.dw2(F.relu_(_pw(self.pw1, self.dw1(x))))))


class _Head(nn.Module):
    """pw (48→4k) → dw3×3 stride 2 → depth-to-space ×2 (TensorFlow's DCR order): k values per stride-4 cell."""

    def __init__(self, c: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.pw, self.dw = nn.Conv2d(c, 4 * k, 1), nn.Conv2d(4 * k, 4 * k, 3, 2, 1, groups=4 * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.dw(_pw(self.pw, x))
        n, _, h, w = t.shape
        t = t.view(n, 2, 2, self.k, h, w).permute(0, 4, 1, 5, 2, 3)  # n, h, dy, w, dx, k
        return t.reshape(n, -1, self.k)


class FullRangeNet(nn.Module):
    """``face_detection_full_range_sparse.tflite``: BlazeFace backbone with a 3-level top-down pyramid to stride 4.

    Modules are registered in the order the TFLite graph runs its convolutions, which the converter relies on.
    """

    align = 32
    anchors_per_cell = (1,)
    strides = (4,)
    default_input = 192
    min_score = 0.6  # MediaPipe's
    min_face = 20.0
    window = (24.0, 160.0)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, 1)
        self.s2 = nn.Sequential(_Residual(32, 8), _Residual(32, 8))  # stride 2, 32 ch
        self.s4 = nn.Sequential(_Down(32, 16, 64), _Residual(64, 16), _Residual(64, 16))
        self.lat4 = nn.Conv2d(64, 48, 1)
        self.s8 = nn.Sequential(_Down(64, 32, 128), _Residual(128, 32), _Residual(128, 32))
        self.lat8 = nn.Conv2d(128, 64, 1)
        self.s16 = nn.Sequential(_Down(128, 48, 192), _Residual(192, 48), _Residual(192, 48))
        self.lat16 = nn.Conv2d(192, 96, 1)
        self.s32 = nn.Sequential(_Down(192, 96, 384), *(_Residual(384, 96) for _ in range(3)))
        self.top32 = nn.Conv2d(384, 96, 1)
        self.up16 = nn.Sequential(_Residual(96, 48), _Residual(96, 48))
        self.top16 = nn.Conv2d(96, 64, 1)
        self.up8 = nn.Sequential(_Residual(64, 32), _Residual(64, 32))
        self.top8 = nn.Conv2d(64, 48, 1)
        self.up4 = _Residual(48, 24)
        self.cls = _Head(48, 1)
        self.reg = _Head(48, 16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: N×3×H×W in [-1, 1] → (regressors N×A×16, classifier logits N×A×1)."""
        x = self.s2(F.relu_(self.stem(x)))
        x = self.s4(x)
        l4 = F.relu_(_pw(self.lat4, x))
        x = self.s8(x)
        l8 = F.relu_(_pw(self.lat8, x))
        x = self.s16(x)
        l16 = F.relu_(_pw(self.lat16, x))
        x = self.s32(x)
        x = self.up16(l16 + _up2(F.relu_(_pw(self.top32, x))))
        x = self.up8(l8 + _up2(F.relu_(_pw(self.top16, x))))
        x = self.up4(l4 + _up2(F.relu_(_pw(self.top8, x))))
        return self.reg(x), self.cls(x)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # TFLite half-pixel centres


NETWORKS: dict[str, type[nn.Module]] = {"short": ShortRangeNet, "full": FullRangeNet}


# ----------------------------------------------------------------------------------------------- anchors, decoding


def anchors(net: type[nn.Module] | nn.Module, height: int, width: int) -> np.ndarray:
    """A×2 anchor centres in input pixels, in the networks' output order (MediaPipe's SsdAnchorsCalculator with
    fixed-size anchors: every anchor of a cell has the cell's centre; layers sharing a stride are stacked)."""
    out = []
    for stride, per_cell in zip(net.strides, net.anchors_per_cell, strict=True):
        gy, gx = np.mgrid[0:height // stride, 0:width // stride].astype(np.float32)
        c = np.stack([(gx + 0.5) * stride, (gy + 0.5) * stride], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out)


@dataclass
class Detection:
    """One face in frame pixels: box (x0, y0, x1, y1) as the network draws it, score, 6 keypoints (x, y)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray


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


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of K boxes (K×4)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


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


def load_network(kind: str, path: str | Path | None = None) -> nn.Module:
    """Build the ``kind`` network and load its converted weights (``torch.load(weights_only=True)``)."""
    if kind not in NETWORKS:
        raise DogfilterError(f"unknown BlazeFace model {kind!r} (known: {', '.join(sorted(NETWORKS))})")
    p = Path(path) if path else WEIGHTS[kind]
    if not p.is_file():
        raise DogfilterError(f"BlazeFace weights not found: {p} (make them with `python -m tools.convert_blazeface`)")
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
        net = NETWORKS[kind]()
        net.load_state_dict({k: v.float() for k, v in obj["state_dict"].items()})
    except Exception as e:  # noqa: BLE001 - any failure is "this file is not our weights"
        raise DogfilterError(f"cannot load BlazeFace weights {p}: {type(e).__name__}: {str(e)[:160]}") from None
    return net.eval()


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


class TorchEngine:
    """The PyTorch network (``.pth``), channels-last, in inference mode."""

    name = "torch"

    def __init__(self, kind: str, weights: str | Path | None = None) -> None:
        self.net = load_network(kind, weights).to(memory_format=torch.channels_last)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N×3×H×W float32 → regressors N×A×16, logits N×A."""
        with torch.inference_mode():
            reg, cls = self.net(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        return reg.numpy(), cls[..., 0].numpy()


class OnnxEngine:
    """The same network exported to ONNX, run by onnxruntime on ``threads`` threads: 2-4× faster than eager
    PyTorch on one core for these small inputs (fused convolutions, no per-operator Python)."""

    name = "onnxruntime"

    def __init__(self, kind: str, path: str | Path | None = None, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DogfilterError("onnxruntime is not installed (pip install onnxruntime), or use the torch "
                                 "engine") from None
        p = Path(path) if path else ONNX[kind]
        if not p.is_file():
            raise DogfilterError(f"BlazeFace ONNX model not found: {p} (make it with `python -m "
                                 f"tools.convert_blazeface`)")
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = max(1, threads), 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
            (inp,), outs = self.session.get_inputs(), self.session.get_outputs()
        except Exception as e:  # noqa: BLE001 - any failure is "this file is not our model"
            raise DogfilterError(f"cannot load BlazeFace ONNX model {p}: {type(e).__name__}: {str(e)[:160]}") from None
        if [o.name for o in outs] != ["regressors", "logits"]:
            raise DogfilterError(f"{p} is not a BlazeFace export (outputs {[o.name for o in outs]})")
        self.input = inp.name
        net, size = NETWORKS[kind], NETWORKS[kind].default_input
        reg, cls = self(np.zeros((1, 3, size, size), np.float32))  # the anchors must be this network's
        if reg.shape != (1, len(anchors(net, size, size)), 16) or cls.shape != reg.shape[:2]:
            raise DogfilterError(f"{p} is not the {kind}-range BlazeFace network (outputs {reg.shape}, {cls.shape} "
                                 f"for a {size}×{size} input)")

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reg, cls = self.session.run(None, {self.input: x})
        return reg, cls[..., 0]


def load_engine(kind: str, engine: str = "auto", weights: str | Path | None = None,
                threads: int = 1) -> TorchEngine | OnnxEngine:
    """``auto``: onnxruntime when it is installed and the ONNX file is there, else PyTorch.  ``weights``: a
    ``.pth`` (torch) or ``.onnx`` (onnxruntime) file instead of the committed one."""
    if kind not in NETWORKS:
        raise DogfilterError(f"unknown BlazeFace model {kind!r} (known: {', '.join(sorted(NETWORKS))})")
    if engine not in ENGINES:
        raise DogfilterError(f"unknown BlazeFace engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "auto":
        if weights is not None:
            engine = "onnxruntime" if str(weights).endswith(".onnx") else "torch"
        else:
            try:
                import onnxruntime  # noqa: F401
                engine = "onnxruntime" if ONNX[kind].is_file() else "torch"
            except ImportError:
                engine = "torch"
    if engine == "onnxruntime":
        return OnnxEngine(kind, weights, threads)
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
    :meth:`detect_rois` looks for one face in each of a few square regions at once (what tracking needs).
    """

    def __init__(self, kind: str = "short", min_face: float = 30.0, input_size: int | None = None,
                 min_score: float | None = None, nms_iou: float = 0.3, weights: str | Path | None = None,
                 engine: str = "auto", threads: int = 1) -> None:
        self.kind = kind
        self.engine = load_engine(kind, engine, weights, threads)
        self.net = NETWORKS[kind]  # the architecture's constants: align, strides, windows, thresholds
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
        if not parts:
            return []
        boxes, scores, kps = (np.concatenate(v) for v in zip(*parts, strict=True))
        return suppress_inner(weighted_nms(boxes, scores, kps, self.nms_iou))

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
            if cx1 <= cx0 or cy1 <= cy0:
                crop = np.zeros((side, side, 3), np.uint8)
            else:
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
