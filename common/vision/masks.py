"""Masks: loading (RGBA, or the tutorial's white-background PNGs) and painting one onto a face.

Placement is the tutorial's (Step 4): the mask covers rows y−0.25h … y+0.75h and columns x … x+w of the face
box, resized to fit that region with its aspect ratio kept, and centred.  Unlike the tutorial, a face at the
frame edge gets a clipped mask instead of none, RGBA masks are alpha-blended, and the mask can turn with the
head's roll.  For a white-background mask the tutorial's rule decides what is drawn: a pixel of the *resized*
mask whose channels are all < 250 — so inside the frame the result is the tutorial's ``apply_mask``, pixel for pixel.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common import ASSETS
from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.wire import Face

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

    def resized(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BGR, float alpha (0..1) and both as one BGRA uint8 image (for rotating in one warp) at size w×h;
        cached, since faces keep their size from frame to frame."""
        key = (w, h)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        a: np.ndarray  # float alpha, 0..1
        if self.alpha is None:  # the tutorial: resize (bilinear), then keep the pixels that are not near-white
            bgr = cv2.resize(self.bgr, (w, h))
            a = np.asarray((bgr < WHITE_THRESHOLD).all(axis=2), np.float32)
            bgra = cv2.merge([bgr, (a * 255.0 + 0.5).astype(np.uint8)])
        else:  # area-average from the smallest halving still at least this size: never from far larger pixels
            src = self.level(w, h, 1.0)
            interp = cv2.INTER_AREA if w < src.shape[1] else cv2.INTER_LINEAR
            bgra = cv2.resize(src, (w, h), interpolation=interp)
            bgr, a = np.ascontiguousarray(bgra[:, :, :3]), bgra[:, :, 3].astype(np.float32) / 255.0
        self._cache[key] = (bgr, a, bgra)
        self._cache_bytes += bgr.nbytes + a.nbytes + bgra.nbytes
        # bounded by entries and by bytes: a few huge faces must not pin gigabytes
        while len(self._cache) > 1 and (len(self._cache) > 64 or self._cache_bytes > CACHE_BYTES):
            self._cache_bytes -= sum(x.nbytes for x in self._cache.popitem(last=False)[1])
        return bgr, a, bgra


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
        src = mask.level(nw, nh, ROLL_UPSCALE) if mask.alpha is not None else mask.resized(nw, nh)[2]
        bgr, a, ox, oy = _rotate(src, nw, nh, ox, oy, roll_deg)
        nh, nw = a.shape
    else:
        bgr, a, _ = mask.resized(nw, nh)
    H, W = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, ox), max(0, oy), min(W, ox + nw), min(H, oy + nh)
    if fx1 <= fx0 or fy1 <= fy0:
        return False
    mx0, my0 = fx0 - ox, fy0 - oy
    roi = frame[fy0:fy1, fx0:fx1]
    m_bgr = bgr[my0:my0 + (fy1 - fy0), mx0:mx0 + (fx1 - fx0)]
    m_a = a[my0:my0 + (fy1 - fy0), mx0:mx0 + (fx1 - fx0)]
    if mask.alpha is None and abs(roll_deg) <= 0.5:  # binary: copy, exactly like the tutorial
        sel = m_a > 0.5
        roi[sel] = m_bgr[sel]
    else:  # roi·(1−a) + mask·a, rounded: OpenCV's per-pixel weighted sum (one SIMD pass, no float copies)
        roi[:] = cv2.blendLinear(m_bgr, roi, m_a, 1.0 - m_a)
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


def _rotate(bgra: np.ndarray, w: int, h: int, ox: int, oy: int,
            deg: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The mask (BGRA, any size) at w×h, turned by ``deg`` (clockwise on screen) about its centre, in one warp of
    colour and alpha, in a square that holds it; and that square's top-left for a w×h mask whose top-left is
    (ox, oy)."""
    sh, sw = bgra.shape[:2]
    side = int(np.ceil(np.hypot(w, h)))
    t = np.radians(-deg)
    c, s = np.cos(t), np.sin(t)
    lin = np.array([[c, s], [-s, c]]) @ np.diag([w / sw, h / sh])  # scale to w×h, then turn
    M = np.hstack([lin, (np.array([side / 2, side / 2]) - lin @ np.array([sw / 2, sh / 2]))[:, None]])
    r = cv2.warpAffine(bgra, M, (side, side), flags=cv2.INTER_LINEAR)
    # colour as its own packed image: OpenCV takes a 4-strided view by copying and converting it first (2.5× the
    # blend's cost); alpha in 0..1 for the blend's weights
    bgr = cv2.cvtColor(r, cv2.COLOR_BGRA2BGR)
    return bgr, r[:, :, 3].astype(np.float32) * np.float32(1 / 255), ox - (side - w) // 2, oy - (side - h) // 2


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


def load_masks(specs: list[str]) -> dict[str, Mask]:
    """The product's masks by emotion, with ``EMOTION=PATH`` specs (``--mask``) replacing or adding some."""
    table = default_masks()
    for spec in specs:
        emotion, sep, path = spec.partition("=")
        if not sep or not emotion.strip() or not path.strip():
            raise DogfilterError(f"bad --mask {spec!r}: want EMOTION=PATH, e.g. happy=dog.png")
        table[emotion.strip()] = load_mask(path.strip())
    return table


@dataclass
class Painter:
    """Paints each face of a frame: its emotion's mask (turned with the head's roll), or the tutorial's green box
    (``render="boxes"``), and with ``debug`` the box, emotion and probability."""

    masks: dict[str, Mask]
    default_emotion: str = "neutral"
    render: str = "masks"
    debug: bool = False

    def paint(self, image: np.ndarray, faces: list[Face]) -> None:
        for face in faces:
            if self.render == "masks":
                mask = self.masks.get(str(face.emotion)) or self.masks.get(self.default_emotion)
                if mask is not None:
                    paint(image, face.box, mask, roll_deg=roll_from_keypoints(face.keypoints))
            if self.debug or self.render == "boxes":
                draw_debug(image, face)
