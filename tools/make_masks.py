"""Draw the dogfilter dog masks from scratch and write them as RGBA PNGs.

Three masks are produced, each on a transparent square canvas:

* ``dog.png`` - a friendly brown dog: upright brown ears tilted outward whose
  tips fold over and flop down on the outer side, a pink inner ear, a light
  tan muzzle (two whisker pads with dots) and a big glossy dark-brown nose.
* ``dalmatian.png`` - white drooping ears with black spots and a bold dark
  outline, a white spotted muzzle and a glossy black nose.
* ``sheepdog.png`` - an Old English Sheepdog: shaggy grey fur ears, a white
  fur fringe over the forehead (stopping above the eyes) and a fluffy white
  muzzle around a big black nose.  The fur is built from many short tapered
  strokes.

Everything is drawn with numpy and OpenCV drawing primitives only (no image
is copied or downloaded), so the output is project-owned and released under
CC0.  Drawing is deterministic: hand-placed shapes plus a fixed random seed
for the sheepdog fur strokes.

Canvas layout
-------------
The compositor maps the square canvas onto the face-detector box (x, y, w, h)
so that canvas row ``r`` (out of ``S``) lands on image row
``y - 0.25 h + (r / S) h`` and the canvas columns span ``x .. x + w``.  In
canvas fractions the wearer's eyes are at about ``v = 0.60 .. 0.66``
(``u = 0.30 / 0.70``), the nose tip at ``v ~ 0.85``, the mouth at ``v ~ 1.0``
and the top of the head at ``v ~ 0.2``.  Ears (and the sheepdog fringe) live
in ``v = 0 .. 0.58``, the eye band is left transparent and the nose/muzzle
sits at ``v = 0.74 .. 0.99``.  Nothing touches the canvas border.

Rendering
---------
Shapes are rasterised as hard coverage masks at ``SUPERSAMPLE`` times the
output size and composited with the *over* operator into a premultiplied
float canvas.  The canvas is downsampled with ``INTER_AREA`` (in premultiplied
space, so edges do not pick up dark or white fringes) and then un-premultiplied.
Fully transparent pixels get the colour of the nearest drawn pixels ("colour
bleeding") so that a compositor which resizes the straight-alpha PNG does not
produce dark halos either.

Usage::

    python -m tools.make_masks [--out DIR] [--size N]
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

LOG = logging.getLogger(__name__)

SUPERSAMPLE = 3
DEFAULT_SIZE = 512
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "common" / "assets" / "masks"
SEED = 20240611

FloatArray = NDArray[np.float32]
Mask = NDArray[np.uint8]
Point = tuple[float, float]
RGB = tuple[int, int, int]
ColorFn = Callable[[FloatArray, FloatArray], FloatArray]
Fill = RGB | ColorFn
# A closed path: a start point followed by cubic segments (ctrl1, ctrl2, end).
Segment = tuple[Point, Point, Point]


# --------------------------------------------------------------------------
# Geometry helpers (all coordinates are canvas fractions u, v in [0, 1])
# --------------------------------------------------------------------------


def cubic(p0: Point, p1: Point, p2: Point, p3: Point, n: int = 32) -> FloatArray:
    """Sample a cubic Bezier curve into ``n`` points (endpoint excluded)."""
    t = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)[:, None]
    a, b, c, d = (np.asarray(p, dtype=np.float32) for p in (p0, p1, p2, p3))
    return ((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t**2 * c + t**3 * d).astype(
        np.float32
    )


def bezier_path(start: Point, segments: Sequence[Segment], n: int = 32) -> FloatArray:
    """Turn a start point and a list of cubic segments into a polygon."""
    pts: list[FloatArray] = []
    cur = start
    for c1, c2, end in segments:
        pts.append(cubic(cur, c1, c2, end, n))
        cur = end
    return np.concatenate(pts, axis=0)


def mirror(pts: FloatArray) -> FloatArray:
    """Mirror a polygon left/right about the canvas centre line."""
    out = pts.copy()
    out[:, 0] = 1.0 - out[:, 0]
    return out


def transform(pts: FloatArray, center: Point, scale: Point, angle_deg: float = 0.0) -> FloatArray:
    """Scale, rotate (clockwise on screen) and translate unit-space points."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    scaled = pts * np.asarray(scale, np.float32)
    return (scaled @ rot.T + np.asarray(center, np.float32)).astype(np.float32)


def mix(c0: RGB, c1: RGB, t: float) -> RGB:
    """Linear blend of two RGB colours."""
    return (
        round(c0[0] + (c1[0] - c0[0]) * t),
        round(c0[1] + (c1[1] - c0[1]) * t),
        round(c0[2] + (c1[2] - c0[2]) * t),
    )


def linear_gradient(c0: RGB, c1: RGB, p0: Point, p1: Point) -> ColorFn:
    """Colour function blending ``c0`` at ``p0`` into ``c1`` at ``p1``."""
    a = np.asarray(c0, np.float32) / 255.0
    b = np.asarray(c1, np.float32) / 255.0
    d = np.asarray(p1, np.float32) - np.asarray(p0, np.float32)
    dd = float(d @ d) or 1.0

    def fn(u: FloatArray, v: FloatArray) -> FloatArray:
        t = ((u - p0[0]) * d[0] + (v - p0[1]) * d[1]) / dd
        t = np.clip(t, 0.0, 1.0)[..., None]
        return (a * (1 - t) + b * t).astype(np.float32)

    return fn


def radial_gradient(c_in: RGB, c_out: RGB, center: Point, radius: Point) -> ColorFn:
    """Elliptical radial gradient from ``c_in`` at the centre to ``c_out``."""
    a = np.asarray(c_in, np.float32) / 255.0
    b = np.asarray(c_out, np.float32) / 255.0

    def fn(u: FloatArray, v: FloatArray) -> FloatArray:
        r = np.sqrt(((u - center[0]) / radius[0]) ** 2 + ((v - center[1]) / radius[1]) ** 2)
        t = np.clip(r, 0.0, 1.0)[..., None]
        return (a * (1 - t) + b * t).astype(np.float32)

    return fn


# --------------------------------------------------------------------------
# Supersampled premultiplied canvas
# --------------------------------------------------------------------------


class Canvas:
    """A premultiplied RGBA float canvas drawn at ``supersample`` x resolution."""

    def __init__(self, size: int, supersample: int = SUPERSAMPLE) -> None:
        self.size = size
        self.ss = supersample
        self.n = size * supersample
        self.rgba: FloatArray = np.zeros((self.n, self.n, 4), np.float32)

    # -- coordinate helpers -------------------------------------------------
    def px(self, pts: FloatArray) -> NDArray[np.int32]:
        """Canvas-fraction points -> integer supersampled pixel coordinates."""
        return np.round(np.asarray(pts, np.float32) * self.n).astype(np.int32)

    def lw(self, px512: float) -> int:
        """A width given in output pixels at 512 px -> supersampled pixels."""
        return max(1, round(px512 * self.size / 512.0 * self.ss))

    def blank(self) -> Mask:
        return np.zeros((self.n, self.n), np.uint8)

    # -- mask builders ------------------------------------------------------
    def poly(self, pts: FloatArray) -> Mask:
        m = self.blank()
        cv2.fillPoly(m, [self.px(pts)], 255, lineType=cv2.LINE_8)
        return m

    def ellipse(self, center: Point, axes: Point, angle: float = 0.0) -> Mask:
        m = self.blank()
        c = (round(center[0] * self.n), round(center[1] * self.n))
        ax = (max(1, round(axes[0] * self.n)), max(1, round(axes[1] * self.n)))
        cv2.ellipse(m, c, ax, angle, 0, 360, 255, thickness=-1, lineType=cv2.LINE_8)
        return m

    def polyline(self, pts: FloatArray, width512: float, closed: bool = False) -> Mask:
        m = self.blank()
        cv2.polylines(m, [self.px(pts)], closed, 255, self.lw(width512), cv2.LINE_8)
        return m

    def dilate(self, mask: Mask, width512: float) -> Mask:
        r = self.lw(width512)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(mask, k)

    def erode(self, mask: Mask, width512: float) -> Mask:
        r = self.lw(width512)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.erode(mask, k)

    def soften(self, mask: Mask, sigma512: float) -> FloatArray:
        """Gaussian-blurred float coverage, for soft highlights and shadows."""
        s = sigma512 * self.size / 512.0 * self.ss
        return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), s)

    # -- compositing --------------------------------------------------------
    def paint(self, mask: Mask | FloatArray, fill: Fill, opacity: float = 1.0) -> None:
        """Composite ``fill`` through ``mask`` over the canvas (premultiplied)."""
        nz = (mask > 0).astype(np.uint8)
        x, y, w, h = cv2.boundingRect(nz)
        if w == 0 or h == 0:
            return
        cov = mask[y : y + h, x : x + w].astype(np.float32)
        if mask.dtype == np.uint8:
            cov /= 255.0
        cov = (cov * opacity)[..., None]
        if callable(fill):
            us = (np.arange(x, x + w, dtype=np.float32) + 0.5) / self.n
            vs = (np.arange(y, y + h, dtype=np.float32) + 0.5) / self.n
            uu, vv = np.meshgrid(us, vs)
            col = fill(uu, vv)
        else:
            col = np.asarray(fill, np.float32) / 255.0
        dst = self.rgba[y : y + h, x : x + w]
        dst[..., :3] = col * cov + dst[..., :3] * (1.0 - cov)
        dst[..., 3:] = cov + dst[..., 3:] * (1.0 - cov)

    def outlined(self, mask: Mask, fill: Fill, outline: RGB, width512: float) -> None:
        """Paint ``mask`` with an outer outline of ``width512`` px (at 512)."""
        self.paint(self.dilate(mask, width512), outline)
        self.paint(mask, fill)

    # -- output -------------------------------------------------------------
    def to_bgra8(self) -> NDArray[np.uint8]:
        """Downsample, un-premultiply, bleed colour, and return 8-bit BGRA."""
        small = cv2.resize(self.rgba, (self.size, self.size), interpolation=cv2.INTER_AREA)
        alpha = np.clip(small[..., 3], 0.0, 1.0)
        premult = small[..., :3]
        rgb = np.zeros_like(premult)
        solid = alpha > 1e-4
        rgb[solid] = premult[solid] / alpha[solid][:, None]
        # Colour bleeding: give transparent pixels near the artwork the colour
        # of the nearby drawn pixels (normalised convolution at growing
        # scales) so that a compositor resizing the straight-alpha PNG does not
        # produce dark halos.  Pixels farther away stay black, which keeps the
        # PNG small.
        band = max(8, self.size // 32)
        empty = (np.round(alpha * 255.0) == 0).astype(np.uint8)
        dist = cv2.distanceTransform(empty, cv2.DIST_L2, 3)
        todo = ~solid & (dist <= band)
        for sigma in (1.5, 4.0, 12.0, 36.0):
            if not todo.any():
                break
            num = cv2.GaussianBlur(premult, (0, 0), sigma)
            den = cv2.GaussianBlur(alpha, (0, 0), sigma)
            ok = todo & (den > 1e-3)
            rgb[ok] = num[ok] / den[ok][:, None]
            todo &= ~ok
        rgb = np.clip(rgb, 0.0, 1.0)
        out = np.empty((self.size, self.size, 4), np.uint8)
        out[..., :3] = np.round(rgb[..., ::-1] * 255.0).astype(np.uint8)
        out[..., 3] = np.round(alpha * 255.0).astype(np.uint8)
        return out


# --------------------------------------------------------------------------
# Shared parts
# --------------------------------------------------------------------------


def nose_shape(center: Point, width: float, height: float) -> FloatArray:
    """A rounded inverted-triangle dog nose."""
    unit = bezier_path(
        (-0.5, -0.12),
        [
            ((-0.5, -0.46), (-0.26, -0.5), (0.0, -0.5)),
            ((0.26, -0.5), (0.5, -0.46), (0.5, -0.12)),
            ((0.5, 0.2), (0.16, 0.5), (0.0, 0.5)),
            ((-0.16, 0.5), (-0.5, 0.2), (-0.5, -0.12)),
        ],
    )
    return transform(unit, center, (width, height))


def draw_nose(
    cv: Canvas,
    center: Point,
    width: float,
    height: float,
    base: RGB,
    shine: RGB,
    outline: RGB,
    outline_w: float = 3.0,
) -> None:
    """Big glossy nose with nostrils and a highlight."""
    cx, cy = center
    shape = cv.poly(nose_shape(center, width, height))
    grad = radial_gradient(shine, base, (cx - 0.1 * width, cy - 0.2 * height), (0.6 * width, 0.75 * height))
    cv.outlined(shape, grad, outline, outline_w)
    # Nostrils: dark comma-like ellipses.
    nostril = mix(base, (0, 0, 0), 0.6)
    for side in (-1, 1):
        m = cv.ellipse(
            (cx + side * 0.2 * width, cy + 0.06 * height), (0.1 * width, 0.055 * height), side * 25.0
        )
        cv.paint(m, nostril)
    # Soft sheen across the top, then a crisp specular highlight.
    sheen = cv.ellipse((cx - 0.02 * width, cy - 0.27 * height), (0.32 * width, 0.12 * height))
    cv.paint(cv.soften(sheen, 4.0) * (shape > 0), (255, 255, 255), 0.28)
    spec = cv.ellipse((cx - 0.18 * width, cy - 0.25 * height), (0.11 * width, 0.055 * height), -12.0)
    cv.paint(cv.soften(spec, 1.2), (255, 255, 255), 0.9)
    dot = cv.ellipse((cx + 0.12 * width, cy - 0.3 * height), (0.035 * width, 0.03 * height))
    cv.paint(cv.soften(dot, 0.8), (255, 255, 255), 0.75)


def draw_whisker_pads(
    cv: Canvas,
    center: Point,
    pad_r: Point,
    spread: float,
    fill: Fill,
    outline: RGB,
    outline_w: float,
) -> Mask:
    """Two round whisker pads under the nose; returns their union mask."""
    cx, cy = center
    left = cv.ellipse((cx - spread, cy), pad_r, -8.0)
    right = cv.ellipse((cx + spread, cy), pad_r, 8.0)
    both = cv2.bitwise_or(left, right)
    cv.paint(cv.dilate(both, outline_w), outline)
    cv.paint(both, fill)
    # Crease between the pads (the top of the mouth line).
    crease = np.array([(cx, cy - 0.6 * pad_r[1]), (cx, cy + 0.35 * pad_r[1])], np.float32)
    cv.paint(cv.polyline(crease, outline_w * 0.8), outline)
    return both


def whisker_dots(
    cv: Canvas, pads_center: Point, spread: float, pad_r: Point, color: RGB, dot_r: float
) -> None:
    """Three rows of whisker dots on each pad."""
    cx, cy = pads_center
    for side in (-1, 1):
        for du, dv in ((0.25, -0.05), (0.5, 0.1), (0.3, 0.3), (0.58, -0.18), (0.62, 0.38)):
            u = cx + side * (spread + (du - 0.35) * pad_r[0] * 1.4)
            v = cy + dv * pad_r[1] * 1.4
            cv.paint(cv.ellipse((u, v), (dot_r, dot_r)), color)


# --------------------------------------------------------------------------
# Brown dog
# --------------------------------------------------------------------------


def draw_dog(cv: Canvas) -> None:
    outline = (48, 28, 16)
    brown_hi = (168, 108, 58)
    brown_lo = (110, 64, 30)
    flap_c = (92, 52, 24)
    pink_hi = (246, 178, 170)
    pink_lo = (214, 128, 126)

    # Left ear, drawn upright in ear-local units (base on y = 0, pointing up
    # to y ~ -0.9), then tilted outward and placed on the head.  The top of
    # the ear folds over and the flap hangs down on the outer side.
    body = bezier_path(
        (-0.5, 0.0),
        [
            ((-0.6, -0.3), (-0.52, -0.6), (-0.42, -0.75)),
            ((-0.3, -0.93), (0.3, -0.93), (0.42, -0.75)),
            ((0.52, -0.6), (0.6, -0.3), (0.5, 0.0)),
            ((0.2, 0.12), (-0.2, 0.12), (-0.5, 0.0)),
        ],
    )
    inner = transform(body, (0.04, -0.06), (0.66, 0.72))
    flap = bezier_path(
        (0.44, -0.76),
        [
            ((0.3, -0.95), (-0.3, -0.95), (-0.44, -0.78)),
            ((-0.58, -0.68), (-0.74, -0.45), (-0.78, -0.22)),
            ((-0.8, -0.1), (-0.68, -0.08), (-0.6, -0.2)),
            ((-0.4, -0.45), (0.1, -0.62), (0.44, -0.76)),
        ],
    )
    crease = bezier_path((-0.4, -0.8), [((-0.25, -0.9), (0.25, -0.9), (0.4, -0.8))], n=24)
    place = {"center": (0.29, 0.33), "scale": (0.25, 0.34), "angle_deg": -26.0}
    for flip in (False, True):
        f = mirror if flip else (lambda p: p)
        ear_m = cv.poly(f(transform(body, **place)))
        u0 = 0.95 if flip else 0.05
        u1 = 0.7 if flip else 0.3
        cv.outlined(ear_m, linear_gradient(brown_lo, brown_hi, (u0, 0.05), (u1, 0.3)), outline, 3.5)
        inner_m = cv.poly(f(transform(inner, **place)))
        cv.paint(cv.soften(cv.dilate(inner_m, 3.0), 3.0) * (ear_m > 0), (80, 40, 20), 0.35)
        cv.paint(inner_m, linear_gradient(pink_lo, pink_hi, (u0, 0.05), (u1, 0.3)))
        flap_m = cv.poly(f(transform(flap, **place)))
        # Shadow cast by the folded flap onto the ear.
        shadow = cv.soften(cv.dilate(flap_m, 5.0), 4.0) * (ear_m > 0)
        cv.paint(shadow, (40, 20, 10), 0.5)
        cv.outlined(flap_m, linear_gradient(brown_hi, flap_c, (u1, 0.02), (u0, 0.3)), outline, 3.0)
        crease_m = cv.polyline(f(transform(crease, **place)), 3.0)
        cv.paint(cv.soften(crease_m, 1.5), (236, 196, 150), 0.55)

    # Muzzle: tan whisker pads with dots, then the nose.
    pads_c = (0.5, 0.905)
    pad_r = (0.105, 0.075)
    spread = 0.085
    tan = radial_gradient((246, 222, 186), (214, 170, 120), (0.5, 0.86), (0.22, 0.14))
    draw_whisker_pads(cv, pads_c, pad_r, spread, tan, outline, 3.0)
    whisker_dots(cv, pads_c, spread, pad_r, (96, 60, 36), 0.007)
    draw_nose(cv, (0.5, 0.835), 0.25, 0.14, (34, 20, 14), (104, 70, 56), outline, 3.0)


# --------------------------------------------------------------------------
# Dalmatian
# --------------------------------------------------------------------------


def _spot(cv: Canvas, center: Point, r: Point, angle: float) -> Mask:
    """An irregular spot: an ellipse plus two overlapping lobes."""
    m = cv.ellipse(center, r, angle)
    a = math.radians(angle)
    for k, s in ((0.55, 0.7), (-0.5, 0.6)):
        c = (center[0] + k * r[0] * math.cos(a), center[1] + k * r[0] * math.sin(a) + 0.25 * r[1] * k)
        m = cv2.bitwise_or(m, cv.ellipse(c, (r[0] * s, r[1] * s * 1.1), angle + 30.0 * k))
    return m


def draw_dalmatian(cv: Canvas) -> None:
    outline = (18, 18, 20)
    white = (250, 250, 248)
    shade = (206, 208, 214)
    black = (22, 22, 24)

    # Left ear: attaches on top of the head and droops down the side.
    ear = bezier_path(
        (0.44, 0.15),
        [
            ((0.34, 0.06), (0.18, 0.06), (0.10, 0.12)),
            ((0.03, 0.18), (0.015, 0.32), (0.04, 0.42)),
            ((0.06, 0.49), (0.15, 0.50), (0.20, 0.45)),
            ((0.25, 0.38), (0.28, 0.30), (0.34, 0.24)),
            ((0.38, 0.20), (0.42, 0.18), (0.44, 0.15)),
        ],
    )
    fold = bezier_path((0.40, 0.15), [((0.30, 0.12), (0.19, 0.14), (0.13, 0.20))], n=24)
    left_spots = [
        ((0.085, 0.30), (0.030, 0.022), 70.0),
        ((0.18, 0.26), (0.022, 0.016), 20.0),
        ((0.10, 0.41), (0.020, 0.016), -30.0),
        ((0.27, 0.13), (0.020, 0.013), -10.0),
        ((0.15, 0.165), (0.015, 0.011), 30.0),
        ((0.045, 0.22), (0.016, 0.022), 10.0),
        ((0.21, 0.375), (0.012, 0.009), 40.0),
        ((0.36, 0.155), (0.010, 0.008), 0.0),
        ((0.055, 0.37), (0.009, 0.008), 0.0),
        ((0.13, 0.22), (0.008, 0.007), 0.0),
    ]
    right_spots = [
        ((0.10, 0.24), (0.028, 0.020), -30.0),
        ((0.17, 0.34), (0.024, 0.018), 60.0),
        ((0.07, 0.37), (0.016, 0.014), 0.0),
        ((0.31, 0.16), (0.022, 0.014), 15.0),
        ((0.21, 0.14), (0.012, 0.010), 0.0),
        ((0.115, 0.455), (0.013, 0.010), 0.0),
        ((0.24, 0.26), (0.013, 0.010), -20.0),
        ((0.05, 0.29), (0.010, 0.013), 0.0),
        ((0.38, 0.17), (0.008, 0.007), 0.0),
        ((0.14, 0.42), (0.008, 0.007), 0.0),
    ]
    for flip, spots in ((False, left_spots), (True, right_spots)):
        f = mirror if flip else (lambda p: p)
        ear_m = cv.poly(f(ear))
        cx = 0.82 if flip else 0.18
        cv.outlined(ear_m, radial_gradient(white, shade, (cx, 0.22), (0.2, 0.28)), outline, 4.0)
        for c, r, ang in spots:
            cc = (1.0 - c[0], c[1]) if flip else c
            cv.paint(cv2.bitwise_and(_spot(cv, cc, r, -ang if flip else ang), ear_m), black)
        fold_m = cv.polyline(f(fold), 2.2)
        cv.paint(cv.soften(fold_m, 1.0), (90, 92, 100), 0.8)

    # Muzzle: white pads with black spots/whisker dots, glossy black nose.
    pads_c = (0.5, 0.905)
    pad_r = (0.11, 0.075)
    spread = 0.09
    pads = draw_whisker_pads(
        cv,
        pads_c,
        pad_r,
        spread,
        radial_gradient(white, (222, 224, 230), (0.5, 0.88), (0.22, 0.13)),
        outline,
        3.5,
    )
    for c, r, ang in (((0.36, 0.905), (0.020, 0.015), 20.0), ((0.655, 0.93), (0.017, 0.013), -20.0)):
        cv.paint(cv2.bitwise_and(_spot(cv, c, r, ang), cv.erode(pads, 1.0)), black)
    whisker_dots(cv, pads_c, spread, pad_r, black, 0.0065)
    draw_nose(cv, (0.5, 0.835), 0.25, 0.14, (14, 14, 16), (92, 92, 100), outline, 3.0)


# --------------------------------------------------------------------------
# Old English Sheepdog
# --------------------------------------------------------------------------


def _tuft_points(root: FloatArray, direction: FloatArray, length: float, bend: float) -> FloatArray:
    """Centre line of a slightly curved fur stroke, 7 points from the root."""
    perp = np.array([-direction[1], direction[0]], np.float32)
    t = np.linspace(0.0, 1.0, 7, dtype=np.float32)[:, None]
    return (root + direction * length * t + perp * bend * length * t * t).astype(np.float32)


def _tuft(mask: Mask, pts_px: FloatArray, width: int) -> None:
    """Draw a tapered stroke (pixel units) along ``pts_px`` into ``mask``."""
    for i in range(1, len(pts_px)):
        t = i / (len(pts_px) - 1)
        w = max(1, round(width * (1.0 - 0.75 * t)))
        a = (round(float(pts_px[i - 1][0])), round(float(pts_px[i - 1][1])))
        b = (round(float(pts_px[i][0])), round(float(pts_px[i][1])))
        cv2.line(mask, a, b, 255, w, cv2.LINE_8)


Flow = Callable[[float, float], tuple[float, float, float]]
Picker = Callable[[float, float, float], int]


def fur_patch(
    cv: Canvas,
    rng: np.random.Generator,
    base_pts: FloatArray,
    flow: Flow,
    fill: Fill,
    palette: Sequence[RGB],
    pick: Picker,
    outline: RGB,
    density: int,
    length: tuple[float, float],
    width512: tuple[float, float],
    jitter_deg: float = 20.0,
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
) -> Mask:
    """Shaggy fur: a base blob covered in short tapered strokes, with a tufty outline.

    ``flow(u, v)`` gives the local fur direction and a length multiplier
    ``(du, dv, scale)``.  ``palette`` is ordered back-to-front and
    ``pick(u, v, x)`` (``x`` uniform in [0, 1)) chooses a palette layer for the
    stroke rooted at ``(u, v)``.  Strokes are shortened so that they stay
    inside ``bounds`` (u0, v0, u1, v1) and never touch the canvas edge.
    Returns the silhouette mask (without the outline).
    """
    base = cv.poly(base_pts)
    layers = [cv.blank() for _ in palette]
    n = cv.n
    x0, y0 = base_pts.min(axis=0)
    x1, y1 = base_pts.max(axis=0)
    # Interior roots plus extra roots along the contour for a shaggy silhouette.
    cand = rng.uniform((x0, y0), (x1, y1), size=(density * 3, 2))
    inside = [p for p in cand if base[min(n - 1, int(p[1] * n)), min(n - 1, int(p[0] * n))]]
    roots = inside[:density]
    idx = rng.choice(len(base_pts), size=max(8, density // 3), replace=True)
    roots += [base_pts[i] for i in idx]
    outline512 = 2.0
    for r in roots:
        du, dv, scale = flow(float(r[0]), float(r[1]))
        ang = math.atan2(dv, du) + math.radians(rng.uniform(-jitter_deg, jitter_deg))
        d = np.array([math.cos(ang), math.sin(ang)], np.float32)
        ln = rng.uniform(*length) * scale
        bend = rng.uniform(-0.35, 0.35)
        w512 = rng.uniform(*width512)
        # Keep the stroke, its thickness and its outline inside ``bounds``.
        margin = (w512 / 2 + outline512 + 1.5) / 512.0
        lo = np.array([bounds[0] + margin, bounds[1] + margin], np.float32)
        hi = np.array([bounds[2] - margin, bounds[3] - margin], np.float32)
        for _ in range(8):
            pts = _tuft_points(np.asarray(r, np.float32), d, ln, bend)
            if (pts >= lo).all() and (pts <= hi).all():
                break
            ln *= 0.7
        else:
            continue
        layer = layers[pick(float(r[0]), float(r[1]), float(rng.random()))]
        _tuft(layer, pts * n, cv.lw(w512))
    sil = base.copy()
    for m in layers:
        sil |= m
    cv.paint(cv.dilate(sil, outline512), outline)
    cv.paint(base, fill)
    for m, color in zip(layers, palette, strict=True):
        cv.paint(m, color)
    return sil


def chaikin(pts: FloatArray, iterations: int = 2) -> FloatArray:
    """Chaikin corner cutting for a closed polygon (rounds off zig-zags)."""
    p = pts
    for _ in range(iterations):
        q = np.roll(p, -1, axis=0)
        p = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], axis=1).reshape(-1, 2)
    return p.astype(np.float32)


def draw_sheepdog(cv: Canvas) -> None:
    rng = np.random.default_rng(SEED)
    outline = (70, 72, 78)
    # Palettes run dark -> light (back -> front).
    greys = [(78, 82, 90), (104, 108, 116), (132, 136, 144), (160, 164, 170), (196, 198, 202)]
    fur = [
        (120, 124, 132),
        (168, 170, 176),
        (206, 208, 212),
        (232, 233, 234),
        (250, 250, 248),
        (255, 255, 255),
    ]

    # Grey shaggy ears hanging at the sides of the head.
    ear = bezier_path(
        (0.28, 0.14),
        [
            ((0.14, 0.10), (0.05, 0.18), (0.035, 0.30)),
            ((0.02, 0.42), (0.05, 0.52), (0.10, 0.55)),
            ((0.15, 0.56), (0.17, 0.44), (0.20, 0.34)),
            ((0.22, 0.26), (0.28, 0.20), (0.28, 0.14)),
        ],
    )

    def ear_flow(u: float, v: float) -> tuple[float, float, float]:
        side = -1.0 if u < 0.5 else 1.0
        return (side * 0.3, 1.0, 1.0)

    def ear_pick(u: float, v: float, x: float) -> int:
        return min(len(greys) - 1, int(x * len(greys)))

    for pts in (ear, mirror(ear)):
        fur_patch(
            cv,
            rng,
            pts,
            ear_flow,
            greys[1],
            greys,
            ear_pick,
            outline,
            190,
            (0.04, 0.075),
            (3.5, 6.0),
            bounds=(0.0, 0.0, 1.0, 0.58),
        )

    # White fur cap radiating from the crown, ending in hanging locks above
    # the eyebrows (the eyes stay uncovered).
    lock_u = [0.86, 0.77, 0.67, 0.56, 0.44, 0.33, 0.23, 0.14]
    lock_v = [0.42, 0.47, 0.50, 0.54, 0.54, 0.50, 0.47, 0.42]
    bottom: list[Point] = []
    for i, (lu, lv) in enumerate(zip(lock_u, lock_v, strict=True)):
        bottom.append((lu, lv))
        if i + 1 < len(lock_u):
            bottom.append(((lu + lock_u[i + 1]) / 2, min(lv, lock_v[i + 1]) - 0.075))
    top = bezier_path(
        (0.09, 0.36),
        [((0.06, 0.12), (0.28, 0.03), (0.50, 0.03)), ((0.72, 0.03), (0.94, 0.12), (0.91, 0.36))],
        n=40,
    )
    fringe = chaikin(np.concatenate([top, np.asarray(bottom, np.float32)], axis=0), 2)

    def fringe_flow(u: float, v: float) -> tuple[float, float, float]:
        if v > 0.27:  # lower band: strokes converge into the nearest lock
            i = min(range(len(lock_u)), key=lambda k: abs(lock_u[k] - u))
            du, dv = lock_u[i] - u, lock_v[i] + 0.01 - v
            dist = math.hypot(du, dv)
            return (du, dv, min(2.2, max(0.8, dist / 0.06)))
        if v < 0.14:  # crown: short tufts sticking up and out
            return (u - 0.5, (v - 0.25) * 1.4, 0.7)
        return (u - 0.5, (v + 0.12) * 0.9, 1.0)

    def fringe_pick(u: float, v: float, x: float) -> int:
        # Greyer towards the sides and the back of the head, white in front.
        greyness = min(1.0, max(0.0, abs(u - 0.5) * 2.2 - 0.45)) + max(0.0, 0.12 - v) * 2.0
        t = min(0.999, max(0.0, x * 0.8 + 0.35 - greyness * 0.55))
        return int(t * len(fur))

    cap_fill = radial_gradient((250, 250, 248), (150, 154, 162), (0.5, 0.2), (0.5, 0.36))
    cap = fur_patch(
        cv,
        rng,
        fringe,
        fringe_flow,
        cap_fill,
        fur,
        fringe_pick,
        outline,
        560,
        (0.04, 0.075),
        (3.5, 6.5),
        bounds=(0.0, 0.0, 1.0, 0.56),
    )
    # Soft shadows in the partings between locks give the fringe volume.
    partings = cv.blank()
    for i in range(len(lock_u) - 1):
        mu = (lock_u[i] + lock_u[i + 1]) / 2
        mv = min(lock_v[i], lock_v[i + 1]) - 0.05
        line = np.array([(mu + (mu - 0.5) * 0.25, 0.27), (mu, mv)], np.float32)
        partings |= cv.polyline(line, 9.0)
    cv.paint(cv.soften(partings, 6.0) * (cap > 0), (96, 100, 110), 0.55)

    # Fluffy white muzzle surrounding a big black nose, fur radiating out.
    muzzle = transform(
        bezier_path(
            (-1.0, 0.0),
            [
                ((-1.0, -0.55), (-0.55, -1.0), (0.0, -1.0)),
                ((0.55, -1.0), (1.0, -0.55), (1.0, 0.0)),
                ((1.0, 0.55), (0.55, 1.0), (0.0, 1.0)),
                ((-0.55, 1.0), (-1.0, 0.55), (-1.0, 0.0)),
            ],
        ),
        (0.5, 0.85),
        (0.215, 0.10),
    )

    def muzzle_flow(u: float, v: float) -> tuple[float, float, float]:
        return ((u - 0.5) * 1.2, (v - 0.83) * 1.6 + 0.1, 1.0)

    def muzzle_pick(u: float, v: float, x: float) -> int:
        return min(len(fur) - 1, 1 + int(x * (len(fur) - 1)))

    muzzle_fill = radial_gradient((252, 252, 250), (190, 192, 198), (0.5, 0.82), (0.22, 0.12))
    fur_patch(
        cv, rng, muzzle, muzzle_flow, muzzle_fill, fur, muzzle_pick, outline, 300, (0.03, 0.055), (3.0, 5.5)
    )
    draw_nose(cv, (0.5, 0.835), 0.29, 0.155, (12, 12, 14), (90, 90, 98), (20, 20, 22), 3.0)


# --------------------------------------------------------------------------
# Parts of the dogs in 3-D that the flat masks do not have
# --------------------------------------------------------------------------
# The 3-D dogs (``common/vision/dog3d.py``) cut their ears, muzzles and fringe out of the masks above and add these:
# a tongue (all three dogs) and, for each dog, an eyelid of its fur that closes over the wearer's eye.  Each is drawn
# on its own square canvas; the rig cuts the drawn rectangle named in its comment.


def draw_tongue(cv: Canvas) -> None:
    """A hanging tongue, u 0.2 .. 0.8, v 0.05 .. 0.95: its root along the top edge (hidden under the muzzle)."""
    outline = (120, 36, 52)
    shape = bezier_path(
        (0.24, 0.05),
        [
            ((0.22, 0.40), (0.20, 0.70), (0.30, 0.85)),
            ((0.40, 0.97), (0.60, 0.97), (0.70, 0.85)),
            ((0.80, 0.70), (0.78, 0.40), (0.76, 0.05)),
            ((0.60, 0.03), (0.40, 0.03), (0.24, 0.05)),
        ],
    )
    m = cv.poly(shape)
    cv.outlined(m, linear_gradient((214, 74, 96), (246, 132, 148), (0.5, 0.05), (0.5, 0.9)), outline, 4.0)
    groove = bezier_path((0.5, 0.08), [((0.49, 0.35), (0.51, 0.55), (0.5, 0.66))], n=24)
    cv.paint(cv.soften(cv.polyline(groove, 6.0), 3.0) * (m > 0), (150, 40, 62), 0.8)
    shine = cv.ellipse((0.36, 0.62), (0.05, 0.14), 12.0)
    cv.paint(cv.soften(shine, 6.0) * (m > 0), (255, 255, 255), 0.35)
    root = cv.ellipse((0.5, 0.0), (0.34, 0.12))
    cv.paint(cv.soften(root, 8.0) * (m > 0), (90, 20, 36), 0.6)


def _lid(cv: Canvas, fur: Fill, outline: RGB, lash: RGB) -> None:
    """An eyelid, u 0.05 .. 0.95, v 0.2 .. 0.8: fur over the eye, its lower edge a lash line."""
    shape = bezier_path(
        (0.06, 0.45),
        [
            ((0.10, 0.22), (0.90, 0.22), (0.94, 0.45)),
            ((0.80, 0.74), (0.20, 0.74), (0.06, 0.45)),
        ],
    )
    m = cv.poly(shape)
    cv.outlined(m, fur, outline, 3.0)
    edge = bezier_path((0.08, 0.50), [((0.25, 0.72), (0.75, 0.72), (0.92, 0.50))], n=48)
    cv.paint(cv.polyline(edge, 9.0), lash)
    for k in range(5):  # lashes
        u = 0.25 + 0.125 * k
        v = 0.66 - 0.25 * (u - 0.5) ** 2
        tip = (u + (u - 0.5) * 0.25, v + 0.1)
        cv.paint(cv.polyline(np.array([(u, v), tip], np.float32), 6.0), lash)


def draw_dog_lid(cv: Canvas) -> None:
    _lid(cv, linear_gradient((168, 108, 58), (126, 74, 36), (0.5, 0.2), (0.5, 0.7)), (48, 28, 16), (40, 22, 12))


def draw_dalmatian_lid(cv: Canvas) -> None:
    _lid(cv, linear_gradient((250, 250, 248), (206, 208, 214), (0.5, 0.2), (0.5, 0.7)), (18, 18, 20), (18, 18, 20))
    cv.paint(_spot(cv, (0.3, 0.38), (0.07, 0.05), 20.0), (22, 22, 24))


def draw_sheepdog_lid(cv: Canvas) -> None:
    _lid(cv, linear_gradient((250, 250, 248), (190, 192, 198), (0.5, 0.2), (0.5, 0.7)), (70, 72, 78), (60, 62, 68))


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

DRAWERS: dict[str, Callable[[Canvas], None]] = {
    "dog": draw_dog,
    "dalmatian": draw_dalmatian,
    "sheepdog": draw_sheepdog,
    "part_tongue": draw_tongue,
    "part_dog_lid": draw_dog_lid,
    "part_dalmatian_lid": draw_dalmatian_lid,
    "part_sheepdog_lid": draw_sheepdog_lid,
}
PART_SIZE = 256  # the parts' canvases (small things: a tongue, an eyelid)


def render(name: str, size: int = DEFAULT_SIZE, supersample: int = SUPERSAMPLE) -> NDArray[np.uint8]:
    """Render the named mask and return it as an 8-bit BGRA array."""
    cv = Canvas(size, supersample)
    DRAWERS[name](cv)
    return cv.to_bgra8()


def write_masks(out_dir: Path, size: int = DEFAULT_SIZE) -> list[Path]:
    """Render all masks into ``out_dir``; return the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in DRAWERS:
        path = out_dir / f"{name}.png"
        if not cv2.imwrite(str(path), render(name, PART_SIZE * size // DEFAULT_SIZE if name.startswith("part_")
                                             else size)):
            raise OSError(f"could not write {path}")
        LOG.info("wrote %s", path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "dogfilter masks").splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: <repo>/common/assets/masks)"
    )
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="canvas size in pixels")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each file")
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error("--size must be at least 32")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    paths = write_masks(args.out, args.size)
    print(f"wrote {len(paths)} masks ({args.size}x{args.size}) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
