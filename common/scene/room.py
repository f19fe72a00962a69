"""The room behind the faces: a soft, out-of-focus living room (wall, window, picture, lamp, floor, sofa, plant)."""

from __future__ import annotations

import cv2
import numpy as np

from dogfilter.common.scene.curves import smoothstep

__all__ = ["background"]


def background(width: int, height: int) -> np.ndarray:
    """Render the soft, out-of-focus living-room background (BGR uint8).

    Drawn at reduced resolution in normalised coordinates, blurred and
    up-sampled, so it looks the same at every frame size.  Fully
    deterministic (fixed-seed grain).
    """
    sw = max(64, width // 4)
    sh = max(48, height // 4)
    img = _room(sw, sh)
    img = cv2.GaussianBlur(img, (0, 0), max(1.0, 0.012 * sw))
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    # Soft vignette and a little fixed-seed grain against banding.
    vy, vx = np.ogrid[0:height, 0:width]
    r2 = ((vx + 0.5) / width - 0.5) ** 2 + ((vy + 0.5) / height - 0.5) ** 2
    img *= (1.0 - 0.35 * r2)[..., None].astype(np.float32)
    rng = np.random.default_rng(20240)
    img += rng.normal(0.0, 1.2, (height, width, 1)).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _room(sw: int, sh: int) -> np.ndarray:
    """The room drawn sharp at sw×sh (float32 BGR): wall, window, picture, lamp, floor, sofa, plant."""
    ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
    u = (xs + 0.5) / sw
    v = (ys + 0.5) / sh

    def px(x: float, y: float) -> tuple[int, int]:
        return round(x * sw), round(y * sh)

    # Wall: warm beige, lighter towards the upper right (window light).
    top = np.array([196, 214, 228], np.float32)  # BGR
    bottom = np.array([150, 176, 200], np.float32)
    img = top * (1.0 - v[..., None]) + bottom * v[..., None]
    glow = np.exp(-(((u - 0.82) / 0.45) ** 2 + ((v - 0.25) / 0.5) ** 2))
    img += glow[..., None] * np.array([22, 20, 16], np.float32)

    # Window on the right: soft sky over a green garden, with curtains.
    cv2.rectangle(img, px(0.67, 0.08), px(0.94, 0.58), (232, 222, 205), -1)
    sky = smoothstep(v, 0.1, 0.45)[..., None]
    pane = (u > 0.685) & (u < 0.925) & (v > 0.1) & (v < 0.56)
    view = (np.array([250, 236, 214], np.float32) * (1.0 - sky)
            + np.array([150, 200, 175], np.float32) * sky)
    img[pane] = view[pane]
    for x0, x1 in ((0.63, 0.7), (0.91, 0.975)):
        cv2.rectangle(img, px(x0, 0.05), px(x1, 0.62), (120, 150, 190), -1)
    # Picture frame on the left wall.
    cv2.rectangle(img, px(0.08, 0.12), px(0.3, 0.38), (70, 90, 120), -1)
    cv2.rectangle(img, px(0.095, 0.14), px(0.285, 0.36), (150, 170, 130), -1)
    cv2.circle(img, px(0.22, 0.22), max(2, int(0.05 * sh)), (120, 200, 235),
               -1)
    # Floor lamp with a warm glow on the left (behind the sofa).
    cv2.line(img, px(0.045, 0.3), px(0.045, 0.82), (60, 60, 60), 2)
    lamp = np.exp(-(((u - 0.05) / 0.09) ** 2 + ((v - 0.27) / 0.12) ** 2))
    img += lamp[..., None] * np.array([60, 150, 220], np.float32)
    # Wooden floor.
    floor = smoothstep(v, 0.80, 0.83)[..., None]
    wood = np.array([70, 100, 140], np.float32) * (
        1.0 - 0.25 * (v[..., None] - 0.8) / 0.2)
    img = img * (1.0 - floor) + wood * floor
    # Teal sofa with three back cushions.
    cv2.rectangle(img, px(0.1, 0.62), px(0.84, 0.86), (120, 118, 70), -1)
    cv2.rectangle(img, px(0.07, 0.56), px(0.16, 0.87), (105, 104, 62), -1)
    cv2.rectangle(img, px(0.78, 0.56), px(0.87, 0.87), (105, 104, 62), -1)
    for cx in (0.28, 0.47, 0.66):
        cv2.rectangle(img, px(cx - 0.09, 0.6), px(cx + 0.09, 0.72),
                      (138, 134, 84), -1)
    # Potted plant on the floor in the right corner.
    cv2.rectangle(img, px(0.9, 0.7), px(0.97, 0.86), (60, 85, 160), -1)
    for dx, dy, r in ((0.0, 0.0, 0.07), (-0.035, 0.05, 0.055),
                      (0.035, 0.045, 0.055), (0.0, -0.07, 0.05),
                      (-0.02, -0.12, 0.035)):
        cv2.circle(img, px(0.935 + dx, 0.6 + dy), max(2, int(r * sh)),
                   (62, 128, 72), -1)
    return img
