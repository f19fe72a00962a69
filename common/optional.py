"""Optional parts of the install: PyTorch is an extra (``pip install 'dogfilter[torch]'``).

The default detector and classifier run on onnxruntime, so ``dogfilter image|file|live`` and every service run
without PyTorch (the container image carries none).  Training, checkpoints other than the default, the PyTorch
engines and ``--device cuda`` need it: :func:`torch` imports it or says, in one line, how to get it.
"""

from __future__ import annotations

from types import ModuleType

from dogfilter.common.errors import DogfilterError

TORCH_HINT = ("pip install 'dogfilter[torch]' (from a checkout: make setup; CPU-only boxes: pip install "
              "torch --index-url https://download.pytorch.org/whl/cpu first)")


def torch(why: str) -> ModuleType:
    """PyTorch, or a :class:`DogfilterError` naming what needed it (``why``) and how to install it."""
    try:
        import torch as _torch
    except ImportError:
        raise DogfilterError(f"{why} needs PyTorch, which this install does not have: {TORCH_HINT}") from None
    return _torch
