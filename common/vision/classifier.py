"""The emotion classifier the pipeline runs, on the fastest engine that gives the checkpoint's own answers.

``load_classifier(path, device, engine)`` returns an object with ``name``, ``classes``, ``engine`` and
``predict_proba(crops) -> N×C``.  ``engine="auto"`` takes the checkpoint's ONNX export (``tools/export_classifier``:
the whole of ``predict_proba`` in one graph, checked against PyTorch) on onnxruntime when it is there and was made
from this very checkpoint (its sha256), and PyTorch otherwise (any other checkpoint, or ``--device cuda``).  The
onnxruntime path never imports PyTorch: a classify process starts in a fraction of the time, with a third of the
memory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dogfilter.common import ASSETS, optional
from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.onnxrun import open_session

DEFAULT_MODEL = ASSETS / "models" / "fer4_fernet.pth"
TUTORIAL_CLASSES = ["happy", "sad", "surprise"]  # the tutorial's outputs, in order (its checkpoints, its data)
ENGINES = ("auto", "onnxruntime", "torch")


class Classifier(Protocol):
    """What load_classifier returns: OnnxClassifier, or models.EmotionClassifier (PyTorch)."""

    @property
    def name(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def engine(self) -> str: ...
    def predict_proba(self, crops: np.ndarray) -> np.ndarray: ...


class OnnxClassifier:
    engine = "onnxruntime"

    def __init__(self, onnx_path: Path, info: dict[str, Any], threads: int = 1) -> None:
        self.session, _ = open_session(onnx_path, "", threads=threads, export="classifier export")
        self.name, self.classes = str(info["name"]), list(info["classes"])

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.session.run(None, {"pixels": np.ascontiguousarray(crops, np.float32)})[0]


def _export_of(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The ONNX export made from this checkpoint, if there is one (and it is still this checkpoint's)."""
    onnx, meta = path.with_suffix(".onnx"), path.with_suffix(".onnx.json")
    if not (onnx.is_file() and meta.is_file() and path.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
    except ValueError:
        return None
    if info.get("source_sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
        return None
    return onnx, info


def load_classifier(path: str | Path | None = None, device: str = "cpu", engine: str = "auto",
                    threads: int = 1) -> Classifier:
    if engine not in ENGINES:
        raise DogfilterError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    p = Path(path) if path else DEFAULT_MODEL
    export = _export_of(p) if device == "cpu" and engine != "torch" else None
    if export is None and engine == "onnxruntime":
        raise DogfilterError(f"--engine onnxruntime: {p} has no ONNX export of its own (python -m "
                             "tools.export_classifier --model PATH makes one)")
    if export is not None:
        try:
            import onnxruntime  # noqa: F401 - only whether it imports
        except ImportError:
            export = None
    if export is not None:
        return OnnxClassifier(*export, threads=threads)
    if not p.is_file():
        raise DogfilterError(f"model file not found: {p}")
    if device != "cpu":
        why = f"--device {device}"
    elif engine == "torch":
        why = "--classify-engine torch"
    else:
        why = f"the model {p.name} (it has no ONNX export of its own)"
    torch = optional.torch(why)

    from dogfilter.common.vision.models import EmotionClassifier

    torch.set_num_threads(max(1, threads))
    return EmotionClassifier(p, device)
