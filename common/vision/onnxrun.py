"""One way to open an ONNX model under onnxruntime: the detector, the face mesh and the emotion classifier all run
on it, one process a core, so each session gets ``threads`` intra-op threads, one inter-op thread and runs its
operators in sequence.  Every failure is one :class:`DogfilterError` line naming what was being opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dogfilter.common.errors import DogfilterError


def open_session(path: Path, what: str, *, threads: int = 1, outputs: list[str] | None = None,
                 export: str | None = None, missing: str = "", make: str | None = None) -> tuple[Any, str]:
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU, and the name of its one input.

    ``what`` names the model in errors ("cannot load WHAT PATH: ..."); ``missing`` is added to the error when
    onnxruntime is not installed; ``make``, the command that writes the file, to the error when it is not there
    (None: the file is not checked before loading); ``outputs``, the output names the file must have (a file with
    others is not ``export``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DogfilterError(f"onnxruntime is not installed (pip install onnxruntime){missing}") from None
    if make is not None and not path.is_file():
        raise DogfilterError(f"{what} not found: {path} (make it with `{make}`)")
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = max(1, threads), 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inputs, names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    except Exception as e:  # any failure is "this file is not our model"
        raise DogfilterError(f"cannot load {what}{' ' if what else ''}{path}: {type(e).__name__}: {str(e)[:160]}") \
            from None
    if len(inputs) != 1:
        raise DogfilterError(f"{path} is not a {export or what} (inputs {inputs})")
    if outputs is not None and names != outputs:
        raise DogfilterError(f"{path} is not a {export or what} (outputs {names})")
    return session, inputs[0]
