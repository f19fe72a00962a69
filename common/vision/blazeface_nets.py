"""BlazeFace's two networks in PyTorch, layer for layer as MediaPipe's TFLite graphs (converted by
``tools/convert_blazeface.py``), and the engine that runs them.  Only the ``--engine torch`` path and the converter
import this module: the default path (onnxruntime, :mod:`.blazeface`) never loads PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.blazeface import SPECS, WEIGHTS

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

    spec = SPECS["short"]
    align, anchors_per_cell, strides = spec.align, spec.anchors_per_cell, spec.strides
    default_input = spec.default_input

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

    spec = SPECS["full"]
    align, anchors_per_cell, strides = spec.align, spec.anchors_per_cell, spec.strides
    default_input = spec.default_input

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
    except Exception as e:  # any failure is "this file is not our weights"
        raise DogfilterError(f"cannot load BlazeFace weights {p}: {type(e).__name__}: {str(e)[:160]}") from None
    return net.eval()


class TorchEngine:
    """The PyTorch network (``.pth``), channels-last, in inference mode."""

    name = "torch"

    def __init__(self, kind: str, weights: str | Path | None = None) -> None:
        # Module.to takes memory_format at run time (documented), but torch's stubs list no overload with it
        self.net = load_network(kind, weights).to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N×3×H×W float32 → regressors N×A×16, logits N×A."""
        with torch.inference_mode():
            reg, cls = self.net(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        return reg.numpy(), cls[..., 0].numpy()


