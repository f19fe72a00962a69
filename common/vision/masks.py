"""Masks: loading (RGBA, or the tutorial's white-background PNGs) and painting one onto a face.

Placement is the tutorial's (Step 4): the mask covers rows y−0.25h … y+0.75h and columns x … x+w of the face
box, resized to fit that region with its aspect ratio kept, and centred.  Unlike the tutorial, a face at the
frame edge gets a clipped mask instead of none, RGBA masks are alpha-blended, and the mask can turn with the
head's roll.  For a white-background mask the tutorial's rule decides what is drawn: a pixel of the *resized*
mask whose channels are all < 250 — so inside the frame the result is the tutorial's ``apply_mask``, pixel for pixel.

Painting is in place on the frame, from terms computed once per mask size (colour·alpha and 255 − alpha, uint8: two
SIMD passes a face, within 2 of a float blend); a turned mask is warped only over its own box, into reused buffers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common import ASSETS
from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.wire import Face
from dogfilter.common.vision import dog3d, headpose
from dogfilter.common.vision.blend import SCRATCH, blend, blend_terms

MASK_DIR = ASSETS / "masks"
EMOTION_MASKS = {"happy": "dog", "sad": "dalmatian", "surprise": "sheepdog", "neutral": "dalmatian"}
WHITE_THRESHOLD = 250
CACHE_BYTES = 64 * 1024 * 1024  # resized masks kept per mask
ROLL_UPSCALE = 4 / 3  # a turned mask is warped from the halving between 3/4 and 3/2 of its size: one bilinear pass


@dataclass(eq=False)
class Mask:
    name: str
    bgr: np.ndarray  # H×W×3 uint8
    alpha: np.ndarray | None  # H×W uint8, or None: white-background mask (tutorial rule)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _levels: list = field(default_factory=list, repr=False)  # BGRA halvings of an alpha mask: cheap shrinking
    _cache_bytes: int = field(default=0, repr=False)
    own: bool = False  # one of the product's own dogs (which have a 3-D version), not a user's --mask

    @property
    def shape(self) -> tuple[int, int]:
        return self.bgr.shape[0], self.bgr.shape[1]

    def level(self, w: int, h: int, upscale: float) -> np.ndarray:
        """The smallest BGRA halving of an alpha mask that is at least ``1/upscale`` of w×h (the full mask when
        none is)."""
        if not self._levels:
            assert self.alpha is not None
            self._levels.append(cv2.merge([self.bgr, self.alpha]))
            while min(self._levels[-1].shape[:2]) >= 32:
                self._levels.append(cv2.resize(self._levels[-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
        return next((lv for lv in reversed(self._levels) if lv.shape[1] * upscale >= w and lv.shape[0] * upscale >= h),
                    self._levels[0])

    def resized(self, w: int, h: int) -> Sized:
        """The mask at size w×h, ready to paint (colour, alpha weights and their complements, or the tutorial's
        pixel selection); cached, since faces keep their size from frame to frame."""
        key = (w, h)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        if self.alpha is None:  # the tutorial: resize (bilinear), then keep the pixels that are not near-white
            bgr = cv2.resize(self.bgr, (w, h))
            sel = np.asarray((bgr < WHITE_THRESHOLD).all(axis=2), np.uint8)
            sized = Sized(bgr=bgr, sel=sel, bgra=cv2.merge([bgr, np.multiply(sel, 255, dtype=np.uint8)]))
        else:  # area-average from the smallest halving still at least this size: never from far larger pixels
            src = self.level(w, h, 1.0)
            interp = cv2.INTER_AREA if w < src.shape[1] else cv2.INTER_LINEAR
            pre, inv = blend_terms(cv2.resize(src, (w, h), interpolation=interp))
            sized = Sized(pre=pre, inv=inv)
        self._cache[key] = sized
        self._cache_bytes += sized.nbytes
        # bounded by entries and by bytes: a few huge faces must not pin gigabytes
        while len(self._cache) > 1 and (len(self._cache) > 64 or self._cache_bytes > CACHE_BYTES):
            self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
        return sized


@dataclass(eq=False)
class Sized:
    """A mask at one size, ready to paint.  An alpha mask: its colour premultiplied by alpha and 255 − alpha (both
    3 channels, uint8), so that painting is two SIMD passes over the frame's pixels, in place; a white-background
    mask: its colour, the tutorial's pixel selection (0/1) and a BGRA image to turn (alpha 0 or 255)."""

    pre: np.ndarray | None = None
    inv: np.ndarray | None = None
    bgr: np.ndarray | None = None
    sel: np.ndarray | None = None
    bgra: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(x.nbytes for x in (self.pre, self.inv, self.bgr, self.sel, self.bgra) if x is not None)


def load_mask(path: str | Path, name: str | None = None) -> Mask:
    p = Path(path)
    if not p.is_file():
        raise DogfilterError(f"mask not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim not in (2, 3) or min(img.shape[:2]) < 4:
        raise DogfilterError(f"mask {p} is not a readable image")
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    alpha = None
    if img.shape[2] == 4:
        alpha = img[:, :, 3].copy()
        img = np.ascontiguousarray(img[:, :, :3])
        if alpha.min() == 255:  # opaque RGBA (like the tutorial's PNGs): use the white-background rule
            alpha = None
    if alpha is None and not (img < WHITE_THRESHOLD).all(axis=2).any():
        raise DogfilterError(f"mask {p} is blank: no transparent-background pixels and no non-white pixels")
    if alpha is not None and alpha.max() == 0:
        raise DogfilterError(f"mask {p} is fully transparent")
    return Mask(name or p.stem, img, alpha)


def default_masks() -> dict[str, Mask]:
    """emotion -> Mask, from the product's own drawings."""
    by_file: dict[str, Mask] = {}
    out = {}
    for emotion, fname in EMOTION_MASKS.items():
        if fname not in by_file:
            by_file[fname] = load_mask(MASK_DIR / f"{fname}.png", fname)
            by_file[fname].own = True
        out[emotion] = by_file[fname]
    return out


def mask_region(box: tuple[int, int, int, int] | list[int]) -> tuple[int, int, int, int]:
    """The tutorial's region for a face box: (x0, y0, x1, y1) = (x, y−0.25h, x+w, y+0.75h), unclipped."""
    x, y, w, h = (int(round(v)) for v in box)
    return x, int(y - 0.25 * h), x + w, int(y + 0.75 * h)


def paint(frame: np.ndarray, box: tuple[int, int, int, int] | list[int], mask: Mask, roll_deg: float = 0.0) -> bool:
    """Paint ``mask`` over the face ``box`` of ``frame`` (BGR, modified in place). Returns False if off-frame."""
    x0, y0, x1, y1 = mask_region(box)
    rw, rh = x1 - x0, y1 - y0
    mh, mw = mask.shape
    factor = min(rh / mh, rw / mw)
    nw, nh = int(factor * mw), int(factor * mh)
    if nw < 2 or nh < 2:
        return False
    # top-left of the resized mask in frame coordinates (the tutorial's centring)
    ox, oy = x0 + int((rw - nw) / 2), y0 + int((rh - nh) / 2)
    if abs(roll_deg) > 0.5:  # sized and turned in one warp (an RGBA mask: from its nearest halving)
        sized = None if mask.alpha is not None else mask.resized(nw, nh)
        src = mask.level(nw, nh, ROLL_UPSCALE) if sized is None else sized.bgra
        assert src is not None
        return _paint_turned(frame, src, nw, nh, ox, oy, roll_deg)
    sized = mask.resized(nw, nh)
    H, W = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, ox), max(0, oy), min(W, ox + nw), min(H, oy + nh)
    if fx1 <= fx0 or fy1 <= fy0:
        return False
    mx0, my0 = fx0 - ox, fy0 - oy
    rows, cols = slice(my0, my0 + (fy1 - fy0)), slice(mx0, mx0 + (fx1 - fx0))
    roi = frame[fy0:fy1, fx0:fx1]  # a view: every write below lands in the frame itself
    if sized.sel is not None:  # binary: copy, exactly like the tutorial
        assert sized.bgr is not None
        cv2.copyTo(sized.bgr[rows, cols], sized.sel[rows, cols], roi)
    else:
        assert sized.pre is not None and sized.inv is not None
        blend(roi, sized.pre[rows, cols], sized.inv[rows, cols])
    return True


def roll_from_keypoints(kp: Any) -> float:
    """Head roll in degrees from a detector's keypoints (BlazeFace: [right eye, left eye, ...] as [x, y]; the
    subject's right eye is on the image's left). 0 when there are none or they are unusable."""
    try:
        (rx, ry), (lx, ly) = kp[0][:2], kp[1][:2]
        roll = float(np.degrees(np.arctan2(float(ly) - float(ry), float(lx) - float(rx))))
    except (TypeError, ValueError, IndexError, KeyError):
        return 0.0
    return roll if np.isfinite(roll) and abs(roll) <= 90 else 0.0


def _paint_turned(frame: np.ndarray, bgra: np.ndarray, w: int, h: int, ox: int, oy: int, deg: float) -> bool:
    """Blend the mask (BGRA, any size) at w×h, turned by ``deg`` (clockwise on screen) about its centre, onto
    ``frame`` where an upright w×h mask would have its top-left at (ox, oy).  The warp (colour and alpha in one)
    computes only the pixels the turned mask can touch — its bounding box, clipped to the frame — into reused
    buffers, and the blend writes into the frame in place."""
    # the few numbers of the warp in plain floats (numpy's cost per call on 2×2 matrices is the most of it)
    sh, sw = bgra.shape[:2]
    side = math.ceil(math.hypot(w, h))  # the square that holds the turned mask, centred where the mask is
    t = math.radians(-deg)
    c, s = math.cos(t), math.sin(t)
    kx, ky = w / sw, h / sh  # scale to w×h, then turn: [[c, s], [-s, c]] · diag(kx, ky)
    m00, m01, m10, m11 = c * kx, s * ky, -s * kx, c * ky
    sx, sy = ox - (side - w) // 2, oy - (side - h) // 2  # the square's top-left in the frame
    # the turned w×h box within the square, a pixel more on each side for the bilinear fringe
    hx, hy = (abs(c) * w + abs(s) * h) / 2 + 1, (abs(s) * w + abs(c) * h) / 2 + 1
    bx0, bx1 = max(0, math.floor(side / 2 - hx)), min(side, math.ceil(side / 2 + hx))
    by0, by1 = max(0, math.floor(side / 2 - hy)), min(side, math.ceil(side / 2 + hy))
    H, W = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, sx + bx0), max(0, sy + by0), min(W, sx + bx1), min(H, sy + by1)
    if fx1 <= fx0 or fy1 <= fy0:
        return False
    # the mask's centre to the square's, and the warp's output starting at that corner of the square
    tx = side / 2 - (m00 * (sw / 2) + m01 * (sh / 2)) - (fx0 - sx)
    ty = side / 2 - (m10 * (sw / 2) + m11 * (sh / 2)) - (fy0 - sy)
    M = np.array(((m00, m01, tx), (m10, m11, ty)))
    r, pre, inv = SCRATCH.take(fy1 - fy0, fx1 - fx0)
    cv2.warpAffine(bgra, M, (fx1 - fx0, fy1 - fy0), dst=r, flags=cv2.INTER_LINEAR)
    blend_terms(r, pre, inv)
    blend(frame[fy0:fy1, fx0:fx1], pre, inv)
    return True


def draw_debug(frame: np.ndarray, face: Face, color: tuple[int, int, int] = (0, 255, 0)) -> None:
    """Box (the tutorial's Step 2 green rectangle) and, when known, the emotion and its probability."""
    x, y, w, h = (int(round(v)) for v in face.box)
    cv2.rectangle(frame, (x, y), (x + w, y + h), color, 2)
    label = face.emotion
    if label:
        p = face.p
        text = f"{label} {p:.2f}" if isinstance(p, float) else str(label)
        if face.stale:
            text += " (late)"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(th + 4, y - 4)
        cv2.rectangle(frame, (x, ty - th - 4), (x + tw + 4, ty + 2), (0, 0, 0), -1)
        cv2.putText(frame, text, (x + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def draw_geometry(frame: np.ndarray, face: Face) -> None:
    """The face's 3-D fit, for ``--debug``: the canonical face's 468 points where its pose puts them (grey), the
    anchors (yellow; the eyes cyan), and the head's axes from the nose tip (x red: the face's left, y green: up,
    z blue: out of the face), 8 cm long; each angle written under the box."""
    h, w = frame.shape[:2]
    p = face.pose
    if p is not None:
        pose = headpose.Pose.turned(p.yaw, p.pitch, p.roll, p.t)
        face3d = headpose.canonical()
        for x, y in pose.project(face3d.vertices, w, h):
            if 0 <= x < w and 0 <= y < h:
                frame[int(y), int(x)] = (200, 200, 200)
        nose = face3d.vertices[4]
        ends = pose.project(np.array([nose, nose + [8, 0, 0], nose + [0, 8, 0], nose + [0, 0, 8]]), w, h)
        o = (int(ends[0][0]), int(ends[0][1]))
        for end, color in zip(ends[1:], ((0, 0, 255), (0, 255, 0), (255, 0, 0)), strict=True):
            cv2.line(frame, o, (int(end[0]), int(end[1])), color, 2, cv2.LINE_AA)
        x, y, bw, bh = face.box
        text = f"yaw {p.yaw:.0f} pitch {p.pitch:.0f} roll {p.roll:.0f}"
        cv2.putText(frame, text, (int(x), int(y + bh + 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1,
                    cv2.LINE_AA)
    a = face.anchors
    if a is not None:
        for i, (x, y) in enumerate(a.points()):
            cv2.circle(frame, (int(round(x)), int(round(y))), 3, (255, 255, 0) if i < 2 else (0, 255, 255), -1,
                       cv2.LINE_AA)


def load_masks(specs: list[str]) -> dict[str, Mask]:
    """The product's masks by emotion, with ``EMOTION=PATH`` specs (``--mask``) replacing or adding some."""
    table = default_masks()
    for spec in specs:
        emotion, sep, path = spec.partition("=")
        if not sep or not emotion.strip() or not path.strip():
            raise DogfilterError(f"bad --mask {spec!r}: want EMOTION=PATH, e.g. happy=dog.png")
        table[emotion.strip()] = load_mask(path.strip())
    return table


RENDERS = ("3d", "flat", "boxes")


@dataclass
class Painter:
    """Paints each face of a frame: its emotion's dog in 3-D (``render="3d"``: posed with the head, alive; a face
    without a pose, or an emotion given a user's own ``--mask``, gets the flat mask), the flat mask turned with the
    head's roll (``"flat"``: the tutorial's Step 4), or the tutorial's green box (``"boxes"``: Step 2); with ``debug``
    the box, emotion and probability, and the face's 3-D fit."""

    masks: dict[str, Mask]
    default_emotion: str = "neutral"
    render: str = "3d"
    debug: bool = False

    def paint(self, image: np.ndarray, faces: list[Face], lives: list[dog3d.Live] | None = None) -> None:
        """``lives``: each face's reactions (the composite's, over time), else each face as it is now."""
        for i, face in enumerate(faces):
            mask = self.masks.get(str(face.emotion)) or self.masks.get(self.default_emotion)
            if self.render != "boxes" and mask is not None:
                cards = dog3d.rig(mask.name) if self.render == "3d" and mask.own else None
                live = lives[i] if lives is not None else None
                if cards is None or dog3d.draw(image, face, cards, live) is None:
                    paint(image, face.box, mask, roll_deg=roll_from_keypoints(face.keypoints))
            if self.debug or self.render == "boxes":
                draw_debug(image, face)
            if self.debug:
                draw_geometry(image, face)
