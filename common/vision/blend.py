"""Alpha-blending BGRA pictures into a frame, in place: what the flat masks and the 3-D dogs paint with.

A BGRA picture becomes the two terms of the blend (colour·alpha/255 and 255 − alpha, 3 channels, uint8), and the
blend is two SIMD passes over the frame's pixels; warps go into reused per-thread buffers.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np


def blend_terms(bgra: np.ndarray, pre: np.ndarray | None = None,
                inv: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A BGRA mask as the two terms of the blend: colour·alpha/255 and 255 − alpha (3 channels each, uint8, into
    ``pre`` and ``inv`` when given)."""
    pre = cv2.cvtColor(bgra, cv2.COLOR_BGRA2BGR, dst=pre)
    # alpha to 3 channels: one channel out, then gray to BGR (twice as fast as mixChannels' general copy)
    inv = cv2.cvtColor(cv2.extractChannel(bgra, 3), cv2.COLOR_GRAY2BGR, dst=inv)
    cv2.multiply(pre, inv, dst=pre, scale=1 / 255)
    cv2.bitwise_not(inv, dst=inv)
    return pre, inv


def blend(roi: np.ndarray, pre: np.ndarray, inv: np.ndarray) -> None:
    """roi ← roi·(255 − a)/255 + colour·a/255, in place (each term rounded: within 1 of the exact blend; an opaque
    pixel is the mask's colour and a transparent one the frame's, exactly)."""
    cv2.multiply(roi, inv, dst=roi, scale=1 / 255)
    cv2.add(roi, pre, dst=roi)


class Scratch(threading.local):
    """Buffers a turned mask or a 3-D dog's card is warped into, reused from frame to frame (one set per thread),
    grown as needed."""

    def __init__(self) -> None:
        self.shape = (0, 0)
        self.bgra = self.pre = self.inv = np.empty((0, 0, 3), np.uint8)

    def take(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if h > self.shape[0] or w > self.shape[1]:
            h0, w0 = max(h, self.shape[0]), max(w, self.shape[1])
            self.shape = (h0, w0)
            self.bgra = np.empty((h0, w0, 4), np.uint8)
            self.pre, self.inv = np.empty((h0, w0, 3), np.uint8), np.empty((h0, w0, 3), np.uint8)
        return self.bgra[:h, :w], self.pre[:h, :w], self.inv[:h, :w]


SCRATCH = Scratch()
