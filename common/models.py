"""Emotion models: the tutorial's CNN, checkpoint loading (weights only, validated) and batched inference.

Checkpoints are the tutorial's format, ``{'state_dict': ...}`` (its ``model_best.pth`` also holds ``optimizer``
and ``epoch``), plus an optional ``meta`` map written by this project: architecture, classes, input size,
normalisation, accuracy, data fingerprint. They are read with ``torch.load(weights_only=True)``: never unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from common.config import DogfilterError

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "models" / "fer3_tutorial_cnn.pth"
TUTORIAL_CLASSES = ["happy", "sad", "surprise"]
CROP = 48


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


ARCHITECTURES: dict[str, type[nn.Module]] = {"tutorial": TutorialNet}


def face_crop(image: np.ndarray, box: list[int] | tuple[int, ...], size: int = CROP) -> np.ndarray:
    """The tutorial's classifier input: the face box of the frame, grey, resized to size×size (uint8).

    The box is clipped to the frame, so a face at the edge still gets a crop.
    """
    x, y, w, h = (int(round(v)) for v in box)
    H, W = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((size, size), np.uint8)
    roi = image[y0:y1, x0:x1]
    if roi.ndim == 3 and roi.shape[2] > 1:
        roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY if roi.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return cv2.resize(roi, (size, size)).reshape(size, size)


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
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return Checkpoint(obj["state_dict"], meta)


def build_model(ckpt: Checkpoint, source: str = "checkpoint") -> nn.Module:
    cls = ARCHITECTURES.get(ckpt.arch)
    if cls is None:
        raise DogfilterError(f"model {source}: unknown architecture {ckpt.arch!r} (known: {sorted(ARCHITECTURES)})")
    net = cls(n_classes=len(ckpt.classes))
    try:
        net.load_state_dict(ckpt.state_dict)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        raise DogfilterError(f"model {source} does not fit the {ckpt.arch} architecture: "
                             f"{first[1].strip() if len(first) > 1 else first[0]}"[:300]) from None
    return net.eval()


class EmotionClassifier:
    """Batched inference: N×48×48 uint8 crops in, N×C probabilities out."""

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
        self.net = build_model(ckpt, str(self.path)).to(self.device)
        norm = ckpt.meta.get("norm") or {}
        self.mean = float(norm.get("mean", 0.0))
        self.std = float(norm.get("std", 1.0))  # the tutorial feeds raw 0..255 pixels

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.path.stem))

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        x = x.view(-1, 1, CROP, CROP).float()
        if self.mean or self.std != 1.0:
            x = (x - self.mean) / self.std
        return torch.softmax(self.net(x), dim=1).float().cpu().numpy()
