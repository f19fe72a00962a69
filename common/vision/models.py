"""Emotion models: the tutorial's CNN, the project's FerNet, checkpoint loading (weights only, validated) and
batched inference.

Checkpoints are the tutorial's format, ``{'state_dict': ...}`` (its ``model_best.pth`` also holds ``optimizer``
and ``epoch``), plus an optional ``meta`` map written by this project: ``arch`` (a key of ARCHITECTURES) and
``arch_args``, ``classes`` (the outputs, in order), input size, ``norm`` (``{'mean', 'std'}`` for the whole data
set, or ``{'kind': 'per_image'}``), optional ``tta: 'hflip'``, accuracy, data fingerprints and the command that
made it.  They are read with ``torch.load(weights_only=True)``: never unpickled.  A checkpoint without meta is
read as the tutorial's: its network, happy/sad/surprise, raw 0..255 pixels.  The models and their provenance:
assets/models/MODELS.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.classifier import DEFAULT_MODEL, TUTORIAL_CLASSES  # the default lives with the loader
from dogfilter.common.vision.crops import CROP


class TutorialNet(nn.Module):
    """The tutorial's network (Step 7), layer for layer, so its checkpoints load as they are."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 6, 3)
        self.conv3 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 48)
        self.fc3 = nn.Linear(48, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = x.view(-1, 16 * 4 * 4)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3×3 conv-BN layers and a shortcut (1×1 conv-BN where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(c_out)  # nn.Identity once fused
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2: nn.Module = nn.BatchNorm2d(c_out)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.short(x), inplace=True)

    def fuse(self) -> None:
        self.conv1, self.bn1 = _fuse(self.conv1, self.bn1), nn.Identity()
        self.conv2, self.bn2 = _fuse(self.conv2, self.bn2), nn.Identity()
        if isinstance(self.short, nn.Sequential):
            self.short = _fuse(self.short[0], self.short[1])


def _fuse(conv: nn.Module, bn: nn.Module) -> nn.Conv2d:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d), "fused twice?"
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


class FerNet(nn.Module):
    """A compact ResNet for 48×48 grey faces (the project's default; see assets/models/MODELS.md).

    A 3×3 conv-BN-ReLU stem at 48×48, then one basic block per width, each halving the resolution
    (48 → 24 → 12 → 6), global average pooling, dropout and a linear classifier.  With the default widths
    (12, 24, 48, 128) and 4 classes: 0.25 M parameters, 17 M multiply-adds per face.  ``fuse()`` folds every
    BatchNorm into its convolution for inference (EmotionClassifier does it on load); channels-last is faster
    on CPU for inference (not for training).
    """

    def __init__(self, n_classes: int = 3, widths: tuple[int, ...] | list[int] = (12, 24, 48, 128),
                 dropout: float = 0.2) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[BasicBlock(a, b, 2) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))

    def fuse(self) -> FerNet:
        """Inference only: fold BatchNorm into the convolutions (same outputs, fewer passes over memory)."""
        self.eval()
        self.stem = nn.Sequential(_fuse(self.stem[0], self.stem[1]), nn.ReLU(inplace=True))
        for b in self.blocks:
            assert isinstance(b, BasicBlock)
            b.fuse()
        # Module.to takes memory_format at run time (documented), but torch's stubs list no overload with it
        return self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


ARCHITECTURES: dict[str, type[nn.Module]] = {"tutorial": TutorialNet, "fernet": FerNet}


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return str(self.meta.get("arch", "tutorial"))

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", TUTORIAL_CLASSES))


def load_checkpoint(path: str | Path) -> Checkpoint:
    p = Path(path)
    if not p.is_file():
        raise DogfilterError(f"model file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, a pickle that is not weights-only, not a torch file at all...
        raise DogfilterError(f"cannot load model {p}: not a weights-only PyTorch checkpoint "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise DogfilterError(f"cannot load model {p}: no 'state_dict' in it (the tutorial's format is "
                             "{'state_dict': ...})")
    meta = obj.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    return Checkpoint(obj["state_dict"], meta)


def build_model(ckpt: Checkpoint, source: str = "checkpoint") -> nn.Module:
    cls = ARCHITECTURES.get(ckpt.arch)
    if cls is None:
        raise DogfilterError(f"model {source}: unknown architecture {ckpt.arch!r} (known: {sorted(ARCHITECTURES)})")
    args = ckpt.meta.get("arch_args") or {}
    try:
        net = cls(n_classes=len(ckpt.classes), **args)
    except (TypeError, ValueError) as e:
        raise DogfilterError(f"model {source}: bad arch_args {args!r} for {ckpt.arch} ({e})") from None
    try:
        net.load_state_dict(ckpt.state_dict)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        raise DogfilterError(f"model {source} does not fit the {ckpt.arch} architecture: "
                             f"{first[1].strip() if len(first) > 1 else first[0]}"[:300]) from None
    return net.eval()


NORM_KINDS = ("dataset", "per_image")


def check_norm(norm: dict[str, Any] | None, source: str = "checkpoint") -> dict[str, Any]:
    """``meta['norm']``: ``{'mean': m, 'std': s}`` (one mean/std for the whole data set; the tutorial's raw
    pixels are mean 0, std 1) or ``{'kind': 'per_image'}`` (each crop to zero mean, unit variance)."""
    norm = dict(norm or {})
    kind = norm.get("kind", "dataset")
    if kind not in NORM_KINDS:
        raise DogfilterError(f"model {source}: unknown normalisation {kind!r} (known: {', '.join(NORM_KINDS)})")
    norm["kind"] = kind
    if kind == "dataset":
        norm["mean"], norm["std"] = float(norm.get("mean", 0.0)), float(norm.get("std", 1.0))
        if not norm["std"] > 0:
            raise DogfilterError(f"model {source}: normalisation std must be > 0, got {norm['std']}")
    return norm


def normalise(x: torch.Tensor, norm: dict[str, Any]) -> torch.Tensor:
    """N×1×H×W float pixels (0..255) → the network's input; the same function serves training and inference."""
    if norm.get("kind") == "per_image":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)  # a flat crop stays flat instead of exploding
        return (x - mean) / std
    m, s = float(norm.get("mean", 0.0)), float(norm.get("std", 1.0))
    return (x - m) / s if m or s != 1.0 else x


class EmotionClassifier:
    """Batched inference: N×48×48 uint8 crops in, N×C probabilities out."""

    engine = "torch"

    def __init__(self, path: str | Path | None = None, device: str = "cpu") -> None:
        self.path = Path(path) if path else DEFAULT_MODEL
        if device == "cuda" and not torch.cuda.is_available():
            raise DogfilterError("--device cuda: no CUDA device is available to this PyTorch build")
        if device not in ("cpu", "cuda"):
            raise DogfilterError(f"unknown device {device!r} (cpu or cuda)")
        ckpt = load_checkpoint(self.path)
        self.meta = ckpt.meta
        self.classes = ckpt.classes
        self.device = torch.device(device)
        self.norm = check_norm(ckpt.meta.get("norm"), str(self.path))  # the tutorial feeds raw 0..255 pixels
        self.tta = ckpt.meta.get("tta") == "hflip"  # average the crop's and its mirror image's probabilities
        net = build_model(ckpt, str(self.path))
        if isinstance(net, FerNet):  # FerNet: BatchNorm folded into the convolutions, channels-last (~30 % faster)
            net = net.fuse()
        self.net = net.to(self.device)
        self.mean = float(self.norm.get("mean", 0.0))
        self.std = float(self.norm.get("std", 1.0))

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.stem))

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        x = normalise(x.view(-1, 1, CROP, CROP).float(), self.norm)
        p = torch.softmax(self.net(x), dim=1)
        if self.tta:
            p = (p + torch.softmax(self.net(x.flip(3)), dim=1)) / 2
        return p.float().cpu().numpy()
