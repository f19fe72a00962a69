"""Smooth curves the scene's painters share."""

from __future__ import annotations

import numpy as np


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Hermite smoothstep of ``x`` between ``lo`` and ``hi``."""
    s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)
