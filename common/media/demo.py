"""Built-in demo video source: real faces moving around a soft, pleasant room.

The demo needs no file from the user.  It is built from the public-domain
portrait of Grace Hopper that matplotlib ships as sample data: the head is cut
out once (GrabCut seeded by a hand-drawn outline, feathered alpha edge), turned
into three distinct "people" (original, mirrored and re-tinted, re-tinted), and
composited over a blurred, deterministic background.

Every face follows its own smooth Lissajous-like path, changes size, rolls a
little and imitates turning its head (horizontal squash plus a slight
perspective warp).  The whole animation loops every :data:`LOOP_SECONDS`.

The faces also change expression on a fixed schedule (each holds one for
2.5 s, then cross-fades to the next; no two faces show the same one, and any
10 s shows all of :data:`EXPRESSIONS`), so that the emotion classifier has
something to read: happy (a broad smile over the upper teeth), sad (mouth
corners down, inner brows up, drooping lids), surprise (dropped jaw, open
mouth, raised brows) and neutral (the photo).  The expressions are
synthesised once from the portrait with smooth local warps (Gaussian
"pushes", inverted by Newton's method, and a per-column stretch that parts
the lips) plus a painted inside of the mouth; nothing tells the pipeline
which expression is meant, it only sees the pixels.  ``tools/
check_demo_expressions.py`` measures what the real models read.

Rendering is cheap (about a millisecond per 640x480 frame on one core): each
face is warped from a pre-scaled sprite into its own clipped region of
interest only, and blended there with 8-bit OpenCV operations.

Example::

    src = DemoSource(640, 480)
    frame = src.render(1.5)          # BGR uint8, shape (480, 640, 3)
    boxes = src.face_boxes(1.5)      # [(x, y, w, h), ...] ground truth
    names = src.expressions(1.5)     # ['surprise', 'happy', 'neutral']
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["EXPRESSIONS", "LOOP_SECONDS", "DemoSource", "load_portrait"]

#: Period of the animation in seconds (``render(t)`` repeats with it).
LOOP_SECONDS = 20.0

# Geometry of the source photo (grace_hopper.jpg, 512 x 600 pixels).
# OpenCV's Haar frontal-face cascade finds her face at (140, 96, 249, 249).
_PHOTO_FACE = (140, 96, 249, 249)
# Crop around head, hat and neck, in photo coordinates (x0, y0, x1, y1).
_CROP = (110, 5, 420, 420)
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

# Face widths (pixels) of the pre-scaled sprite pyramid; the largest entry is
# the unscaled photo.  Neighbouring levels differ by about sqrt(2), so warping
# never down-samples by more than that (no aliasing from bilinear sampling).
_LEVEL_WIDTHS = (48.0, 68.0, 96.0, 136.0, 192.0, 249.0)

# Range of the face width at 640x480 (scaled with the frame size).
_MIN_FACE = 70.0
_MAX_FACE = 200.0
_MAX_ROLL_DEG = 12.0
_MIN_SQUASH = 0.8
_MAX_PERSPECTIVE = 0.07


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
    pts = (np.asarray(points, np.float64) - (_CROP[0], _CROP[1])) * scale
    return np.round(pts).astype(np.int32)


@functools.lru_cache(maxsize=1)
def _head_cutout() -> tuple[np.ndarray, np.ndarray]:
    """Cut the head out of the portrait once.

    Returns:
        ``(bgr, alpha)``: the cropped head (uint8, colours outside the head
        extended from its edge so feathering shows no photo background) and a
        feathered alpha matte (float32 in [0, 1]) of the same size.
    """
    photo = load_portrait()
    x0, y0, x1, y1 = _CROP
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


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Hermite smoothstep of ``x`` between ``lo`` and ``hi``."""
    s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _restyle(bgr: np.ndarray, alpha: np.ndarray, style: int) -> np.ndarray:
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
    x0, y0 = _CROP[0], _CROP[1]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py = xs + x0, ys + y0
    sat, val = hsv[..., 1], hsv[..., 2]

    # Cap: everything above the brim (photo row ~168).
    cap = 1.0 - _smoothstep(py, 160.0, 170.0)
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
    fx, fy, fw, _ = _PHOTO_FACE
    cx, cy = fx + fw / 2.0, fy + fw / 2.0 + 10.0
    ell = ((px - cx) / 92.0) ** 2 + ((py - cy) / 150.0) ** 2
    side = _smoothstep(ell, 0.85, 1.15) * (1.0 - cap)
    side *= 1.0 - _smoothstep(py, 300.0, 330.0)
    hair = side * (1.0 - _smoothstep(sat, 110.0, 150.0)) * _smoothstep(
        val, 80.0, 130.0)
    # Skin: the rest of the face.
    skin = (1.0 - cap) * (1.0 - hair)
    return cloth, hair, skin


# ------------------------------------------------------------- expressions
#: The expressions the demo people show, named as the emotion classifier
#: names its classes.
EXPRESSIONS = ("neutral", "happy", "sad", "surprise")

# Landmarks of the portrait (photo coordinates, found by eye): the mouth
# corners on the line between the lips and the pupils, on the image's left
# and right.  (Her brows sit at rows ~165-170, just above the dark top rims
# of her glasses at ~180; her chin at ~332.)
_L_CORNER, _R_CORNER = (227.0, 281.0), (305.0, 279.0)
_L_EYE, _R_EYE = (220.0, 190.0), (305.0, 188.0)


@dataclass(frozen=True)
class _Push:
    """A smooth local move of the face (photo pixels).

    Points near ``at`` shift by ``by``; the shift falls off as a Gaussian of
    radii ``r`` (x, y) around ``at``.
    """

    at: tuple[float, float]
    by: tuple[float, float]
    r: tuple[float, float]


@dataclass(frozen=True)
class _Mouth:
    """Parted lips (photo pixels), the gap painted as an open mouth.

    Between the columns ``x0`` and ``x1`` the upper lip rises by up to ``up``
    and the lower lip drops by up to ``down`` (at the middle; the opening's
    profile across the mouth is ``(1 - u**2) ** power``, ``u`` = -1 .. 1).
    The upper ``teeth`` fraction of the gap shows the upper teeth, the rest
    is the dark inside of the mouth.
    """

    x0: float
    x1: float
    up: float
    down: float
    power: float = 0.5
    teeth: float = 0.0
    upper_reach: float = 24.0  # rows above the lips that move with the upper lip
    lower_reach: tuple[float, float] = (6.0, 40.0)  # rigid part, then fall-off


@dataclass(frozen=True)
class _Expression:
    """How one expression changes the neutral portrait."""

    pushes: tuple[_Push, ...] = ()
    mouth: _Mouth | None = None


_EXPRESSION_SPECS: dict[str, _Expression] = {
    "neutral": _Expression(),
    # A broad smile: mouth corners up and out, lips parted over the upper
    # teeth, cheeks raised.
    "happy": _Expression(
        pushes=(
            _Push(_L_CORNER, (-9.0, -12.0), (11.0, 11.0)),
            _Push(_R_CORNER, (9.0, -12.0), (11.0, 11.0)),
            _Push((225.0, 252.0), (0.0, -6.0), (16.0, 12.0)),  # cheeks
            _Push((308.0, 250.0), (0.0, -6.0), (16.0, 12.0)),
        ),
        mouth=_Mouth(225.0, 307.0, up=4.5, down=15.0, power=0.6, teeth=0.7),
    ),
    # Mouth corners well down (an arched mouth, the lower lip pushed out and
    # the upper lip drawn up), inner brows raised (the glasses ride up with
    # them at the bridge), upper eyelids lowered.
    "sad": _Expression(
        pushes=(
            _Push(_L_CORNER, (-2.0, 20.0), (16.0, 16.0)),
            _Push(_R_CORNER, (2.0, 20.0), (16.0, 16.0)),
            _Push((266.0, 283.0), (0.0, -3.0), (14.0, 6.0)),  # middle of the lips
            _Push((266.0, 292.0), (0.0, 4.0), (16.0, 5.0)),  # lower lip
            _Push((266.0, 262.0), (0.0, -4.0), (20.0, 8.0)),  # upper lip
            _Push((245.0, 168.0), (0.0, -11.0), (10.0, 10.0)),  # inner brows up
            _Push((287.0, 166.0), (0.0, -11.0), (10.0, 10.0)),
            _Push((200.0, 170.0), (0.0, 3.0), (10.0, 6.0)),  # outer brows down
            _Push((330.0, 168.0), (0.0, 3.0), (10.0, 6.0)),
            _Push((252.0, 182.0), (0.0, -9.0), (10.0, 9.0)),  # glasses: inner ends up
            _Push((281.0, 180.0), (0.0, -9.0), (10.0, 9.0)),
            _Push((190.0, 182.0), (0.0, 4.5), (12.0, 9.0)),  # outer ends down
            _Push((340.0, 178.0), (0.0, 4.5), (12.0, 9.0)),
            _Push((_L_EYE[0], _L_EYE[1] - 7.0), (0.0, 5.0), (12.0, 4.0)),  # upper eyelids
            _Push((_R_EYE[0], _R_EYE[1] - 7.0), (0.0, 5.0), (12.0, 4.0)),
        ),
    ),
    # Jaw dropped into an open oval mouth, brows raised, eyes wide open.
    "surprise": _Expression(
        pushes=(
            _Push((266.0, 322.0), (0.0, 14.0), (45.0, 30.0)),  # jaw
            _Push(_L_CORNER, (8.0, 2.0), (9.0, 9.0)),
            _Push(_R_CORNER, (-8.0, 2.0), (9.0, 9.0)),
            _Push((222.0, 166.0), (0.0, -7.0), (22.0, 9.0)),  # brows
            _Push((308.0, 164.0), (0.0, -7.0), (22.0, 9.0)),
            _Push((_L_EYE[0], _L_EYE[1] - 6.0), (0.0, -2.5), (10.0, 3.0)),  # upper eyelids
            _Push((_R_EYE[0], _R_EYE[1] - 6.0), (0.0, -2.5), (10.0, 3.0)),
            _Push((_L_EYE[0], _L_EYE[1] + 7.0), (0.0, 2.0), (10.0, 3.0)),  # lower eyelids
            _Push((_R_EYE[0], _R_EYE[1] + 7.0), (0.0, 2.0), (10.0, 3.0)),
        ),
        mouth=_Mouth(237.0, 295.0, up=7.0, down=17.0, power=0.55, teeth=0.08),
    ),
}


def _lip_line(px: np.ndarray) -> np.ndarray:
    """Photo row of the line between the lips at photo columns ``px``."""
    (xa, ya), (xb, yb) = _L_CORNER, _R_CORNER
    return ya + (yb - ya) * (px - xa) / (xb - xa)


def _push_field(px: np.ndarray, py: np.ndarray,
                pushes: tuple[_Push, ...]) -> tuple[np.ndarray, ...]:
    """Displacement of the pushes at photo points ``(px, py)``, and its derivatives.

    Returns:
        ``(dx, dy, dx/dx, dx/dy, dy/dx, dy/dy)``.
    """
    out = [np.zeros_like(px) for _ in range(6)]
    for p in pushes:
        ux = (px - p.at[0]) / p.r[0]
        uy = (py - p.at[1]) / p.r[1]
        g = np.exp(-0.5 * (ux * ux + uy * uy))
        gx = -g * ux / p.r[0]
        gy = -g * uy / p.r[1]
        for i, term in enumerate((p.by[0] * g, p.by[1] * g, p.by[0] * gx, p.by[0] * gy, p.by[1] * gx,
                                  p.by[1] * gy)):
            out[i] += term
    return tuple(out)


def _invert_pushes(qx: np.ndarray, qy: np.ndarray,
                   pushes: tuple[_Push, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Where the pushes move points *from*: solve ``p + F(p) = q`` for ``p``.

    Newton's method from ``p = q``, steps capped at 2 pixels.  The map has
    no folds (every push moves by well under its radius, so its Jacobian
    stays positive; the specs keep it above ~0.25), so this converges to a
    small fraction of a pixel.
    """
    px, py = qx.copy(), qy.copy()
    for _ in range(12):
        dx, dy, dxx, dxy, dyx, dyy = _push_field(px, py, pushes)
        rx, ry = px + dx - qx, py + dy - qy
        a, b, c, d = 1.0 + dxx, dxy, dyx, 1.0 + dyy
        det = a * d - b * c
        sx = (d * rx - b * ry) / det
        sy = (a * ry - c * rx) / det
        step = np.hypot(sx, sy)
        scale = np.minimum(1.0, 2.0 / np.maximum(step, 1e-9))
        px -= sx * scale
        py -= sy * scale
        if step.max() < 1e-3:
            break
    return px, py


# Where the teeth meet, in photo pixels from the middle of the mouth: the
# teeth narrow towards the corners as the dental arch turns away.  Each
# tooth's length and brightness (from the middle out) vary a little.
_TOOTH_EDGES = (0.0, 8.5, 15.5, 21.5, 26.5, 31.0, 35.0, 38.5, 42.0)
_TOOTH_LENGTH = (1.0, 0.9, 0.96, 0.86, 0.84, 0.8, 0.8, 0.8)
_TOOTH_SHADE = (1.0, 0.95, 0.9, 0.9, 0.86, 0.84, 0.82, 0.8)


def _mouth_paint(u: np.ndarray, v: np.ndarray, dist: np.ndarray,
                 mouth: _Mouth) -> np.ndarray:
    """Colour of the inside of an open mouth (BGR float, 0..255).

    Args:
        u: position across the mouth, -1 .. 1 (corner to corner).
        v: position down the gap, 0 (upper lip) .. 1 (lower lip).
        dist: distance from the middle of the mouth in photo pixels.
        mouth: the opening (how much of it the upper teeth fill).
    """
    uu = (u * u)[..., None]
    # Dark throat, lighter and redder towards the lips and the tongue.
    edge = np.exp(-((v / 0.18) ** 2)) + np.exp(-(((1.0 - v) / 0.25) ** 2))
    col = np.array([22.0, 22.0, 48.0]) + np.array([20.0, 24.0, 62.0]) * edge[..., None]
    tongue = np.exp(-((u / 0.55) ** 2 + ((1.0 - v) / 0.35) ** 2))[..., None]
    col = col * (1.0 - 0.7 * tongue) + np.array([70.0, 80.0, 160.0]) * 0.7 * tongue
    col *= 1.0 - 0.45 * uu  # the corners of the mouth are in shadow
    if mouth.teeth <= 0.0:
        return col
    # Upper teeth: ivory, in the upper lip's shadow at the top, greyer and
    # darker towards the corners; soft dark seams between them; each tooth's
    # biting edge curves down a little at its middle.
    edges = np.asarray(_TOOTH_EDGES)
    k = np.clip(np.searchsorted(edges, dist) - 1, 0, len(edges) - 2)
    lo, hi = edges[k], edges[k + 1]
    pos = (dist - lo) / (hi - lo)  # 0 .. 1 across one tooth
    seam = np.exp(-(((np.minimum(pos, 1.0 - pos) * (hi - lo)) / 0.9) ** 2))
    tip = (mouth.teeth * np.asarray(_TOOTH_LENGTH)[k] * (1.0 - 0.3 * u * u)
           * (0.9 + 0.1 * np.sin(np.pi * pos)))
    shade = np.asarray(_TOOTH_SHADE)[k] * (0.78 + 0.22 * _smoothstep(v, 0.0, 0.3))
    shade *= (1.0 - 0.4 * u * u) * (1.0 - 0.22 * seam)
    tooth = np.array([196.0, 222.0, 242.0]) * shade[..., None]
    # The biting edge is translucent: greyer, bluish.
    clear = _smoothstep(v, tip - 0.12 * mouth.teeth, tip)[..., None]
    tooth = tooth * (1.0 - 0.35 * clear) + np.array([120.0, 116.0, 112.0]) * 0.35 * clear
    cover = _smoothstep(tip - v, -0.04, 0.04)[..., None]
    return col * (1.0 - cover) + tooth * cover


def _part_lips(h: int, w: int, mouth: _Mouth) -> tuple[np.ndarray, np.ndarray]:
    """Part the lips (crop coordinates).

    Each column of the mouth is stretched vertically: rows above the line
    between the lips move up (the upper lip by ``up``, the shift fading out
    towards the nose), rows below move down (the lower lip by ``down``,
    fading out over ``lower_reach``).  The gap that opens is painted.

    Returns:
        ``(rows, paint)``: the source row of every pixel (float32, ``(h,
        w)``; columns do not move) and the painted inside of the mouth as
        premultiplied BGRA (float32, ``(h, w, 4)``, alpha in 0..1).
    """
    ox, oy = _CROP[0], _CROP[1]
    rows = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    paint = np.zeros((h, w, 4), np.float32)
    mid = 0.5 * (mouth.x0 + mouth.x1)
    half = 0.5 * (mouth.x1 - mouth.x0)
    c0 = max(0, math.ceil(mouth.x0 - ox))
    c1 = min(w, math.floor(mouth.x1 - ox) + 1)
    px = np.arange(c0, c1, dtype=np.float64) + ox
    u = np.clip((px - mid) / half, -1.0, 1.0)
    prof = (1.0 - u * u) ** mouth.power
    line = _lip_line(px) - oy
    top, bottom = line - mouth.up * prof, line + mouth.down * prof

    fine = np.arange(0.0, h - 1.0 + 1e-6, 0.25)
    yq = np.arange(h, dtype=np.float64)
    for i, x in enumerate(range(c0, c1)):
        d = fine - line[i]
        fwd = np.where(
            d < 0,
            fine - (line[i] - top[i]) * (1.0 - _smoothstep(-d, 0.0, mouth.upper_reach)),
            fine + (bottom[i] - line[i]) * (1.0 - _smoothstep(d, *mouth.lower_reach)))
        rows[:, x] = np.interp(yq, fwd, fine)

    # The gap, with anti-aliased edges (rows x mouth columns).
    y = yq[:, None]
    inside = np.clip(y - top + 0.5, 0.0, 1.0) * np.clip(bottom - y + 0.5, 0.0, 1.0)
    v = np.clip((y - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)
    uu = np.broadcast_to(u, v.shape)
    dist = np.broadcast_to(np.abs(px - mid), v.shape)
    col = _mouth_paint(uu, v, dist, mouth)
    # A little fixed grain, like the photo's.
    col += np.random.default_rng(7).normal(0.0, 2.5, col.shape[:2])[..., None]
    paint[:, c0:c1, :3] = col * inside[..., None]
    paint[:, c0:c1, 3] = inside
    # As soft as the photo around it.
    return rows, cv2.GaussianBlur(paint, (0, 0), 0.6)


@functools.cache
def _expression_maps(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Remap tables (crop coordinates) and mouth paint of one expression.

    Returns:
        ``(map_x, map_y, paint)``: float32 maps for :func:`cv2.remap` from
        the neutral head to the expression, and the premultiplied BGRA
        float32 paint to lay over the result (``None`` without one).
    """
    spec = _EXPRESSION_SPECS[name]
    h, w = _head_cutout()[1].shape
    ox, oy = _CROP[0], _CROP[1]
    map_y, map_x = np.mgrid[0:h, 0:w].astype(np.float32)
    if spec.pushes:
        # The pushes move nothing measurable beyond 4 radii: invert inside.
        x0 = max(0, math.floor(min(p.at[0] - 4.0 * p.r[0] for p in spec.pushes) - ox))
        x1 = min(w, math.ceil(max(p.at[0] + 4.0 * p.r[0] for p in spec.pushes) - ox))
        y0 = max(0, math.floor(min(p.at[1] - 4.0 * p.r[1] for p in spec.pushes) - oy))
        y1 = min(h, math.ceil(max(p.at[1] + 4.0 * p.r[1] for p in spec.pushes) - oy))
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        px, py = _invert_pushes(xs + ox, ys + oy, spec.pushes)
        map_x[y0:y1, x0:x1] = px - ox
        map_y[y0:y1, x0:x1] = py - oy
    if spec.mouth is None:
        return map_x, map_y, None
    rows, paint = _part_lips(h, w, spec.mouth)
    src_y = cv2.remap(rows, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    paint = cv2.remap(paint, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return map_x, src_y, paint


def _with_expression(bgr: np.ndarray, alpha: np.ndarray,
                     name: str) -> tuple[np.ndarray, np.ndarray]:
    """The head (crop coordinates) showing expression ``name``."""
    if name == "neutral":
        return bgr, alpha
    map_x, map_y, paint = _expression_maps(name)
    col = cv2.remap(bgr, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if paint is not None:
        out = col.astype(np.float32) * (1.0 - paint[..., 3:]) + paint[..., :3]
        col = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return col, a


@dataclass(frozen=True)
class _Sprite:
    """One pre-scaled, premultiplied BGRA head sprite."""

    bgra: np.ndarray  # uint8 (h, w, 4), colour premultiplied by alpha
    face_width: float  # width of the Haar face box in sprite pixels
    center: tuple[float, float]  # face-box centre in sprite pixel coordinates
    head: tuple[float, float, float, float]  # x0, y0, x1, y1 where alpha > 0.5


def _pyramid(col: np.ndarray, a: np.ndarray, center: tuple[float, float]) -> tuple[_Sprite, ...]:
    """Pre-scaled sprites of one head (crop-sized colour and alpha).

    Args:
        col: the head's colours (uint8, BGR).
        a: its alpha matte (float32, 0..1).
        center: the face-box centre in pixel coordinates of ``col``.
    """
    h, w = a.shape
    fw = _PHOTO_FACE[2]
    ys, xs = np.nonzero(a > 0.5)
    head = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    premul = col.astype(np.float32) * a[..., None]
    full = np.dstack([premul, a * 255.0])
    full = np.clip(full + 0.5, 0, 255).astype(np.uint8)
    levels = []
    for lw in _LEVEL_WIDTHS:
        s = lw / fw
        if s >= 1.0:
            img = full
        else:
            size = (max(2, round(w * s)), max(2, round(h * s)))
            img = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        sx = img.shape[1] / w
        sy = img.shape[0] / h
        # Trim fully transparent margins (keep a 1-pixel empty border):
        # smaller sprites mean smaller regions to warp and blend.
        rows = np.flatnonzero(img[..., 3].any(axis=1))
        cols = np.flatnonzero(img[..., 3].any(axis=0))
        top = max(0, int(rows[0]) - 1)
        left = max(0, int(cols[0]) - 1)
        bottom = min(img.shape[0], int(rows[-1]) + 2)
        right = min(img.shape[1], int(cols[-1]) + 2)
        img = img[top:bottom, left:right]
        levels.append(_Sprite(
            bgra=np.ascontiguousarray(img),
            face_width=fw * sx,
            center=((center[0] + 0.5) * sx - 0.5 - left, (center[1] + 0.5) * sy - 0.5 - top),
            head=(head[0] * sx - left, head[1] * sy - top, head[2] * sx - left, head[3] * sy - top),
        ))
    return tuple(levels)


@functools.lru_cache(maxsize=1)
def _people() -> tuple[tuple[tuple[_Sprite, ...], ...], ...]:
    """Build the sprite pyramids of the three demo people (cached).

    Returns:
        ``people[person][expression][level]``: expressions in the order of
        :data:`EXPRESSIONS`, levels in the order of ``_LEVEL_WIDTHS``.
    """
    bgr, alpha = _head_cutout()
    w = alpha.shape[1]
    fx, fy, fw, fh = _PHOTO_FACE
    cx = fx + fw / 2.0 - 0.5 - _CROP[0]  # pixel-centre convention
    cy = fy + fh / 2.0 - 0.5 - _CROP[1]

    people = []
    for style, mirror in ((0, False), (1, True), (2, False)):
        styled = _restyle(bgr, alpha, style)
        pyramids = []
        for name in EXPRESSIONS:
            col, a = _with_expression(styled, alpha, name)
            center = (cx, cy)
            if mirror:
                col = col[:, ::-1]
                a = a[:, ::-1]
                center = ((w - 1) - cx, cy)
            pyramids.append(_pyramid(col, a, center))
        people.append(tuple(pyramids))
    return tuple(people)


def _background(width: int, height: int) -> np.ndarray:
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
    sky = _smoothstep(v, 0.1, 0.45)[..., None]
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
    floor = _smoothstep(v, 0.80, 0.83)[..., None]
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


@dataclass(frozen=True)
class _Path:
    """Motion of one face: Lissajous-like, all frequencies integer per loop."""

    person: int
    x: tuple[float, float, int, float]  # centre, amplitude, frequency, phase
    y: tuple[float, float, int, float]
    x2: tuple[float, int, float]  # second harmonic: amplitude, freq, phase
    size: tuple[int, float]  # frequency, phase of the size oscillation
    size_range: tuple[float, float]  # fraction of [min, max] face width used
    roll: tuple[int, float]
    yaw: tuple[int, float]


# Positions are fractions of the frame size; sizes fractions of the range.
_PATHS = (
    _Path(0, (0.22, 0.12, 1, 1.8), (0.48, 0.13, 2, 4.4), (0.04, 3, 1.0),
          (1, 2.8), (0.0, 1.0), (2, 0.3), (3, 0.0)),
    _Path(1, (0.78, 0.12, 1, 4.8), (0.47, 0.13, 2, 4.9), (0.04, 2, 0.4),
          (1, 0.9), (0.0, 1.0), (3, 1.7), (2, 1.2)),
    _Path(2, (0.50, 0.13, 1, 3.2), (0.50, 0.15, 1, 2.4), (0.03, 3, 2.5),
          (1, 5.05), (0.0, 0.85), (2, 4.0), (3, 2.6)),
)


def _overlap(a: tuple[float, float, float, float],
             b: tuple[float, float, float, float]) -> float:
    """Intersection area of two ``(x0, y0, x1, y1)`` rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def _wave(t: float, freq: int, phase: float) -> float:
    """``sin`` with ``freq`` whole periods per loop."""
    return math.sin(2.0 * math.pi * freq * t / LOOP_SECONDS + phase)


# Expression schedule: every face runs through _CYCLE, holding each
# expression for _HOLD_SECONDS (the loop holds a whole number of cycles), so
# any 10 s shows all four.  Face i starts i places back in the cycle and
# switches _SWITCH_LAG[i] later than face 0 (lags under one hold): then no
# two faces ever show the same expression, and they do not all switch at
# once.  A new expression cross-fades in over _FADE_SECONDS.
_CYCLE = ("happy", "surprise", "sad", "neutral")
_HOLD_SECONDS = 2.5
_FADE_SECONDS = 0.3
_SWITCH_LAG = (0.0, 0.8, 1.6)


def _expression_at(face: int, t: float) -> tuple[int, int, float]:
    """Expression of face ``face`` (its index in ``_PATHS``) at time ``t``.

    Returns:
        ``(current, previous, mix)``: indices into :data:`EXPRESSIONS` of
        the expression being shown and of the one before it, and the weight
        of the current one (0 .. 1; below 1 while it fades in).
    """
    s = (t % LOOP_SECONDS - _SWITCH_LAG[face]) / _HOLD_SECONDS
    k = math.floor(s)
    current = EXPRESSIONS.index(_CYCLE[(k - face) % len(_CYCLE)])
    previous = EXPRESSIONS.index(_CYCLE[(k - 1 - face) % len(_CYCLE)])
    mix = (s - k) * _HOLD_SECONDS / _FADE_SECONDS
    mix = 1.0 if mix >= 1.0 else mix * mix * (3.0 - 2.0 * mix)
    return current, previous, mix


@dataclass(frozen=True)
class _Pose:
    """Pose and expression of one face at one instant (frame pixel units)."""

    person: int
    cx: float
    cy: float
    face_width: float
    roll_deg: float
    yaw: float  # -1 .. 1: turning left .. right
    expression: int = 0  # index into EXPRESSIONS
    previous: int = 0  # the expression before (fading out while mix < 1)
    mix: float = 1.0  # weight of ``expression``


class DemoSource:
    """Synthetic demo video: real faces moving over a soft room background.

    ``render(t)`` and ``face_boxes(t)`` are pure, deterministic functions of
    the time ``t`` in seconds; the animation loops every
    :data:`LOOP_SECONDS` seconds.

    Args:
        width: frame width in pixels.
        height: frame height in pixels.
        faces: number of faces (0 to 3; 0 shows the empty room).
    """

    def __init__(self, width: int = 640, height: int = 480,
                 faces: int = 3) -> None:
        if width < 32 or height < 32:
            raise ValueError(f"frame size too small: {width}x{height}")
        if not 0 <= faces <= len(_PATHS):
            raise ValueError(f"faces must be 0..{len(_PATHS)}, got {faces}")
        self.width = int(width)
        self.height = int(height)
        self.faces = int(faces)
        self.loop_seconds = LOOP_SECONDS
        self._unit = min(self.width / 640.0, self.height / 480.0)
        self._people = _people()
        self._background = _background(self.width, self.height)

    # ------------------------------------------------------------------ poses
    def _poses(self, t: float) -> list[_Pose]:
        """Poses of all faces at time ``t``, back to front (small first)."""
        t = float(t) % LOOP_SECONDS
        w, h = self.width, self.height
        lo, hi = _MIN_FACE * self._unit, _MAX_FACE * self._unit
        poses = []
        for face, path in enumerate(_PATHS[: self.faces]):
            xc, xa, xf, xp = path.x
            yc, ya, yf, yp = path.y
            a2, f2, p2 = path.x2
            if self.faces == 1:
                xc = 0.5
            s0, s1 = path.size_range
            k = 0.5 + 0.5 * _wave(t, *path.size)
            fw = lo + (hi - lo) * (s0 + (s1 - s0) * k)
            cx = w * (xc + xa * _wave(t, xf, xp) + a2 * _wave(t, f2, p2))
            cy = h * (yc + ya * _wave(t, yf, yp))
            roll = _MAX_ROLL_DEG * _wave(t, *path.roll)
            yaw = _wave(t, *path.yaw)
            current, previous, mix = _expression_at(face, t)
            poses.append(_Pose(path.person, cx, cy, fw, roll, yaw, current, previous, mix))
        poses.sort(key=lambda p: p.face_width)
        return poses

    @staticmethod
    def _homography(pose: _Pose, sprite: _Sprite) -> np.ndarray:
        """3x3 map from sprite pixels to frame pixels for ``pose``."""
        r = pose.face_width / sprite.face_width
        squash = 1.0 - (1.0 - _MIN_SQUASH) * abs(pose.yaw)
        half = 0.5 * pose.face_width
        p = _MAX_PERSPECTIVE * pose.yaw / half
        th = math.radians(pose.roll_deg)
        c, s = math.cos(th), math.sin(th)
        to_origin = np.array([[1.0, 0.0, -sprite.center[0]],
                              [0.0, 1.0, -sprite.center[1]],
                              [0.0, 0.0, 1.0]])
        scale = np.diag([r * squash, r, 1.0])
        persp = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [p, 0.0, 1.0]])
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        place = np.array([[1.0, 0.0, pose.cx], [0.0, 1.0, pose.cy],
                          [0.0, 0.0, 1.0]])
        return place @ rot @ persp @ scale @ to_origin

    def _level_for(self, pose: _Pose) -> int:
        """Level of the smallest pre-scaled sprite at least as large as the face."""
        for level, width in enumerate(_LEVEL_WIDTHS):
            if width >= pose.face_width * 0.98:
                return level
        return len(_LEVEL_WIDTHS) - 1

    def _layout(self, t: float) -> list[tuple[_Pose, int, _Sprite, np.ndarray]]:
        """Pose, sprite level, neutral sprite and its homography of each face.

        Ordered back to front (drawing order).  The neutral sprite gives the
        geometry (face boxes, occlusion), the same whatever the expression.
        """
        out = []
        for pose in self._poses(t):
            level = self._level_for(pose)
            sprite = self._people[pose.person][0][level]
            out.append((pose, level, sprite, self._homography(pose, sprite)))
        return out

    # ------------------------------------------------------------ public API
    def face_boxes(self, t: float) -> list[tuple[int, int, int, int]]:
        """Ground-truth face boxes at time ``t``.

        Boxes are ``(x, y, w, h)`` in the style of a Haar frontal-face box
        (square, forehead to chin, narrowing a little as the head turns),
        ordered back to front and clipped to the frame.  A face is listed
        only while it is visible: at least half of its box inside the frame
        and at most half of it hidden behind a head drawn in front of it.
        """
        return [box for box, _ in self._visible(t)]

    def expressions(self, t: float) -> list[str]:
        """Intended expression of each face listed by :meth:`face_boxes`.

        One of :data:`EXPRESSIONS` per face, in the order of ``face_boxes(t)``
        (while one expression cross-fades into the next, the one with the
        larger weight).
        """
        return [EXPRESSIONS[pose.expression if pose.mix >= 0.5 else pose.previous]
                for _, pose in self._visible(t)]

    def _visible(self, t: float) -> list[tuple[tuple[int, int, int, int], _Pose]]:
        """Box and pose of every visible face at ``t`` (see :meth:`face_boxes`)."""
        layout = self._layout(t)
        # Screen-space bounding boxes of the heads (for occlusion).
        heads = []
        for _, _, sprite, hmg in layout:
            hx0, hy0, hx1, hy1 = sprite.head
            pts = hmg @ np.array([[hx0, hx1, hx0, hx1], [hy0, hy0, hy1, hy1],
                                  [1.0, 1.0, 1.0, 1.0]])
            xs, ys = pts[0] / pts[2], pts[1] / pts[2]
            heads.append((xs.min(), ys.min(), xs.max(), ys.max()))

        boxes = []
        for i, (pose, _, sprite, hmg) in enumerate(layout):
            c = hmg @ np.array([sprite.center[0], sprite.center[1], 1.0])
            cx, cy = c[0] / c[2], c[1] / c[2]
            squash = 1.0 - (1.0 - _MIN_SQUASH) * abs(pose.yaw)
            side = pose.face_width * (0.5 + 0.5 * squash)
            box = (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0,
                   cy + side / 2.0)
            frame = (0.0, 0.0, float(self.width), float(self.height))
            if _overlap(box, frame) < 0.5 * side * side:
                continue
            hidden = max((_overlap(box, head) for head in heads[i + 1:]),
                         default=0.0)
            if hidden > 0.5 * side * side:
                continue
            x0, y0 = round(max(box[0], 0.0)), round(max(box[1], 0.0))
            x1 = round(min(box[2], frame[2]))
            y1 = round(min(box[3], frame[3]))
            boxes.append(((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), pose))
        return boxes

    def render(self, t: float) -> np.ndarray:
        """Render the frame at time ``t`` seconds.

        Returns:
            A new BGR uint8 array of shape ``(height, width, 3)``.
        """
        frame = self._background.copy()
        for pose, level, _, _ in self._layout(t):
            pyramids = self._people[pose.person]
            sprite = pyramids[pose.expression][level]
            layers = [(sprite, self._homography(pose, sprite), pose.mix)]
            if pose.mix < 1.0:
                old = pyramids[pose.previous][level]
                layers.append((old, self._homography(pose, old), 1.0 - pose.mix))
            self._draw(frame, layers)
        return frame

    def __call__(self, t: float) -> np.ndarray:
        """Alias of :meth:`render`."""
        return self.render(t)

    @staticmethod
    def _warp(sprite: _Sprite, hmg: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The sprite warped by ``hmg`` (sprite to region pixels) into a region of ``size``."""
        m = hmg / hmg[2, 2]
        if abs(m[2, 0]) * size[0] + abs(m[2, 1]) * size[1] < 1e-2:
            # Facing the camera (keystone under ~1%): warp affine, cheaper.
            return cv2.warpAffine(sprite.bgra, m[:2], size, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        return cv2.warpPerspective(sprite.bgra, m, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))

    # ------------------------------------------------------------- internals
    def _draw(self, frame: np.ndarray, layers: list[tuple[_Sprite, np.ndarray, float]]) -> None:
        """Warp a head into its clipped region of ``frame`` and blend it there.

        Args:
            frame: the frame to draw on (BGR uint8, changed in place).
            layers: ``(sprite, homography, weight)`` of the head, or of two
                expressions of it that cross-fade (their weighted average).
        """
        xs, ys = [], []
        for sprite, hmg, _ in layers:
            sh, sw = sprite.bgra.shape[:2]
            corners = np.array([[0.0, 0.0, 1.0], [sw, 0.0, 1.0], [0.0, sh, 1.0],
                                [sw, sh, 1.0]]).T
            mapped = hmg @ corners
            xs.extend(mapped[0] / mapped[2])
            ys.extend(mapped[1] / mapped[2])
        x0 = max(0, math.floor(min(xs)))
        y0 = max(0, math.floor(min(ys)))
        x1 = min(self.width, math.ceil(max(xs)) + 1)
        y1 = min(self.height, math.ceil(max(ys)) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        size = (x1 - x0, y1 - y0)
        (sprite, hmg, total), *others = layers
        warped = self._warp(sprite, shift @ hmg, size)
        for sprite, hmg, weight in others:
            # Premultiplied colour: a weighted average is the right cross-fade.
            total += weight
            share = weight / total
            warped = cv2.addWeighted(warped, 1.0 - share, self._warp(sprite, shift @ hmg, size), share, 0.0)
        color = cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR)
        inv = cv2.bitwise_not(cv2.extractChannel(warped, 3))
        roi = frame[y0:y1, x0:x1]
        kept = cv2.multiply(roi, cv2.merge((inv, inv, inv)), scale=1.0 / 255.0)
        roi[...] = cv2.add(kept, color)
