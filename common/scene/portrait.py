"""The portrait the demo people are made of: Grace Hopper, cut out once and re-coloured.

Built from the public-domain portrait that matplotlib ships as sample data: the head is cut out once (GrabCut seeded
by a hand-drawn outline, feathered alpha edge), then re-coloured into distinct "people" (:func:`restyle`).  Its
landmarks (mouth corners, eyes) are where the expressions (``expressions.py``) move the face.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import cv2
import numpy as np

from dogfilter.common.scene.curves import smoothstep

__all__ = ["CROP", "L_CORNER", "L_EYE", "PHOTO_FACE", "R_CORNER", "R_EYE", "head_cutout", "load_portrait", "restyle"]


# Geometry of the source photo (grace_hopper.jpg, 512 x 600 pixels).
# OpenCV's Haar frontal-face cascade finds her face at (140, 96, 249, 249).
PHOTO_FACE = (140, 96, 249, 249)
# Crop around head, hat and neck, in photo coordinates (x0, y0, x1, y1).
CROP = (110, 5, 420, 420)
# Loose outline of head + hat + neck (photo coordinates): outside is background.
_OUTLINE = [
    (200, 48), (212, 40), (226, 29), (242, 20), (263, 17), (285, 22),
    (294, 31), (302, 38), (318, 45), (334, 54), (344, 63), (352, 74),
    (360, 86), (378, 98), (384, 200), (370, 262), (352, 302), (334, 332),
    (318, 352), (302, 392), (228, 392), (216, 350), (205, 336), (200, 316),
    (192, 296), (168, 285), (150, 262), (147, 185), (150, 100), (162, 88), (176, 80), (180, 68),
    (188, 57),
]
# Regions that are certainly foreground (photo coordinates).
_HAT = [(200, 58), (228, 34), (263, 24), (290, 32), (340, 62), (368, 100),
        (365, 160), (160, 165), (158, 100)]
_FACE = [(180, 170), (350, 170), (345, 280), (300, 335), (230, 335),
         (205, 300)]
# Below the chin the neck fades out between these photo rows.
_NECK_FADE = (338.0, 382.0)
# Landmarks of the portrait (photo coordinates, found by eye): the mouth
# corners on the line between the lips and the pupils, on the image's left
# and right.  (Her brows sit at rows ~165-170, just above the dark top rims
# of her glasses at ~180; her chin at ~332.)
L_CORNER, R_CORNER = (227.0, 281.0), (305.0, 279.0)
L_EYE, R_EYE = (220.0, 190.0), (305.0, 188.0)


def _photo_path() -> str:
    """Return the path of matplotlib's ``grace_hopper.jpg`` sample image.

    Raises:
        FileNotFoundError: if matplotlib (or its sample data) is missing.
    """
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the demo source needs matplotlib's sample data")
    path = os.path.join(os.path.dirname(spec.origin), "mpl-data",
                        "sample_data", "grace_hopper.jpg")
    if os.path.exists(path):
        return path
    from matplotlib import cbook  # other layouts: ask matplotlib itself

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@functools.lru_cache(maxsize=1)
def load_portrait() -> np.ndarray:
    """Load the Grace Hopper portrait that matplotlib ships (BGR uint8).

    Raises:
        FileNotFoundError: if matplotlib's sample data cannot be found.
    """
    path = _photo_path()
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read matplotlib sample image {path!r}")
    return img


def _crop_points(points: list[tuple[int, int]], scale: float) -> np.ndarray:
    """Convert photo coordinates to (scaled) crop coordinates as int32 polygon."""
    pts = (np.asarray(points, np.float64) - (CROP[0], CROP[1])) * scale
    return np.round(pts).astype(np.int32)


@functools.lru_cache(maxsize=1)
def head_cutout() -> tuple[np.ndarray, np.ndarray]:
    """Cut the head out of the portrait once.

    Returns:
        ``(bgr, alpha)``: the cropped head (uint8, colours outside the head
        extended from its edge so feathering shows no photo background) and a
        feathered alpha matte (float32 in [0, 1]) of the same size.
    """
    photo = load_portrait()
    x0, y0, x1, y1 = CROP
    crop = photo[y0:y1, x0:x1].copy()
    h, w = crop.shape[:2]

    # GrabCut at half resolution, seeded by the hand-drawn outline.
    f = 0.5
    small = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    mask = np.full(small.shape[:2], cv2.GC_BGD, np.uint8)
    cv2.fillPoly(mask, [_crop_points(_OUTLINE, f)], cv2.GC_PR_FGD)
    cv2.fillPoly(mask, [_crop_points(_HAT, f)], cv2.GC_FGD)
    cv2.fillPoly(mask, [_crop_points(_FACE, f)], cv2.GC_FGD)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(12345)  # GrabCut's GMM initialisation uses OpenCV's RNG
    cv2.grabCut(small, mask, (0, 0, 0, 0), bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)  # the rect: unused with a mask
    fg = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0)
    fg = cv2.resize(fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel)
    # Never leave the hand-drawn outline; keep the largest blob only.
    outline = np.zeros((h, w), np.uint8)
    cv2.fillPoly(outline, [_crop_points(_OUTLINE, 1.0)], 255)
    fg = cv2.bitwise_and(fg, outline)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        (fg > 127).astype(np.uint8))
    if n > 1:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        fg = np.where(labels == biggest, 255, 0).astype(np.uint8)

    alpha = cv2.GaussianBlur(fg.astype(np.float32) / 255.0, (0, 0), 2.5)
    # Fade the neck out below the chin.
    rows = np.arange(h, dtype=np.float32) + y0
    a, b = _NECK_FADE
    fade = np.clip((b - rows) / (b - a), 0.0, 1.0)
    fade = fade * fade * (3.0 - 2.0 * fade)  # smoothstep
    alpha *= fade[:, None]
    # Zero alpha along the crop border (clean sprite edges after warping).
    alpha[:3, :] = 0.0
    alpha[-3:, :] = 0.0
    alpha[:, :3] = 0.0
    alpha[:, -3:] = 0.0

    # Extend the head's colours outwards (normalised convolution) so the
    # feathered edge blends towards hair/skin colour, not the flag behind it.
    hard = (alpha > 0.6).astype(np.float32)
    num = cv2.GaussianBlur(crop.astype(np.float32) * hard[..., None], (0, 0), 6)
    den = cv2.GaussianBlur(hard, (0, 0), 6)[..., None]
    extended = num / np.maximum(den, 1e-4)
    bgr = np.where(hard[..., None] > 0, crop.astype(np.float32), extended)
    return np.clip(bgr, 0, 255).astype(np.uint8), alpha.astype(np.float32)


def restyle(bgr: np.ndarray, alpha: np.ndarray, style: int) -> np.ndarray:
    """Recolour the head so the demo people do not look identical.

    Args:
        bgr: cropped head colours (uint8).
        alpha: its alpha matte (float32).
        style: 0 keeps the photo; 1 gives brown hair, a dark green cap and a
            slightly brighter, warmer complexion; 2 gives dark auburn hair, a
            burgundy cap and a tanned complexion.

    Returns:
        The recoloured head (uint8, same shape as ``bgr``).
    """
    if style == 0:
        return bgr.copy()
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.float32)
    cloth, hair, skin = _head_regions(hsv, alpha)
    if style == 1:
        cap_bgr = np.array([40.0, 92.0, 30.0], np.float32)  # dark green
        hair_hue, hair_sat, hair_val = 14.0, 150.0, 0.55
        skin_gain = np.array([1.0, 1.06, 1.12], np.float32)
    else:
        cap_bgr = np.array([48.0, 32.0, 112.0], np.float32)  # burgundy
        hair_hue, hair_sat, hair_val = 8.0, 170.0, 0.42
        skin_gain = np.array([0.55, 0.68, 0.86], np.float32)

    # Cap cloth: the new colour, shaded like the original cloth.
    grey: np.ndarray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (0, 0), 1.2)
    shade = np.clip(grey / 32.0, 0.4, 1.4)[..., None]
    col_cap = cap_bgr * shade
    # Hair: colourise.
    hsv_hair = hsv.copy()
    hsv_hair[..., 0] = hair_hue
    hsv_hair[..., 1] = hair_sat
    hsv_hair[..., 2] = hsv[..., 2] * hair_val
    to_bgr = functools.partial(cv2.cvtColor, code=cv2.COLOR_HSV2BGR)
    col_hair = to_bgr(np.clip(hsv_hair, 0, [179, 255, 255]).astype(np.uint8))

    base = bgr.astype(np.float32)
    out = base * (1.0 - skin[..., None]) + base * skin_gain * skin[..., None]
    cl = cloth[..., None]
    out = out * (1.0 - cl) + col_cap * cl
    hr = hair[..., None]
    out = out * (1.0 - hr) + col_hair.astype(np.float32) * hr
    return np.clip(out, 0, 255).astype(np.uint8)


def _head_regions(hsv: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft masks (float32, 0..1) of the cap's cloth, the hair and the skin of the cropped head."""
    h, w = alpha.shape
    x0, y0 = CROP[0], CROP[1]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py = xs + x0, ys + y0
    sat, val = hsv[..., 1], hsv[..., 2]

    # Cap: everything above the brim (photo row ~168).
    cap = 1.0 - smoothstep(py, 160.0, 170.0)
    # Dark navy cloth of the cap (the gold badge and white top stay): the
    # largest dark blob above the brim, softened a little.
    dark = ((val < 60.0) & (alpha > 0.05) & (py < 185.0)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark)
    cloth = np.zeros_like(alpha)
    if n > 1:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        blob = (labels == biggest).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        blob = cv2.morphologyEx(blob, cv2.MORPH_CLOSE, kernel)
        cloth = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), 0.8)
    # Hair: desaturated light pixels at the sides of the face, below the cap.
    fx, fy, fw, _ = PHOTO_FACE
    cx, cy = fx + fw / 2.0, fy + fw / 2.0 + 10.0
    ell = ((px - cx) / 92.0) ** 2 + ((py - cy) / 150.0) ** 2
    side = smoothstep(ell, 0.85, 1.15) * (1.0 - cap)
    side *= 1.0 - smoothstep(py, 300.0, 330.0)
    hair = side * (1.0 - smoothstep(sat, 110.0, 150.0)) * smoothstep(
        val, 80.0, 130.0)
    # Skin: the rest of the face.
    skin = (1.0 - cap) * (1.0 - hair)
    return cloth, hair, skin
