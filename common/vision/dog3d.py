"""The dogs in 3-D: each dog as textured cards placed on MediaPipe's canonical face, posed with the head, hidden
behind it, and alive (the tongue comes out when the mouth opens, the ears perk up when the brows rise, an eyelid of
fur closes when an eye does).

A **card** is a flat textured quad in the canonical face's space (centimetres; x to the face's left, y up, z towards
the viewer: ``headpose``).  Ears, muzzles and the sheepdog's fringe are cut out of the flat masks
(``tools/make_masks.py`` draws both, so the flat and the 3-D dog look alike); the tongue and eyelids are drawn by the
same script (``part_*.png``).  Where a card sits is said once, in :data:`RIGS`: its rectangle on the face (the flat
mask's canvas laid on the canonical face with the dog's nose on the nose tip), a hinge, how far it turns back
around the hinge (an ear turned out from the head, a muzzle bent around the nose) and what moves it.

Drawing a card (:func:`draw`): its corners go through the face's pose and the camera (``headpose.camera``) to the
frame; one perspective warp (``cv2.warpPerspective``, from the halving of its texture nearest the size it is drawn)
fills only its bounding box, clipped to the frame; then it is alpha-blended in place, like the flat masks.  A card
seen from behind is not drawn (a card is one-sided, as a lens renderer culls back faces).  The head hides what is
behind it: cards marked ``occluded`` (ears, the sheepdog's side fur) lose the pixels where the head, an ellipsoid
fitted behind the canonical face (:data:`HEAD`), is nearer the camera than the card: one ray per pixel of the card's
box, solved in closed form (MediaPipe's effect renderer draws a face occluder into the depth buffer first; this is
that, without a GPU).  Cards are drawn back to front.

The pose comes from the landmarks of an average face; a real nose is rarely where the average face puts it, so
the head is moved (parallel to the image, at the nose's depth) until the canonical nose tip lands on the face's own
nose tip (``Face.anchors``): the dog's nose sits on the wearer's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from dogfilter.common import ASSETS
from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.wire import Face
from dogfilter.common.vision import headpose
from dogfilter.common.vision.blend import SCRATCH, blend, blend_terms
from dogfilter.common.vision.smoothing import OneEuro

#: the flat mask's square canvas laid on the canonical face: this many centimetres wide, with its nose's centre
#: (canvas u 0.5, v 0.835: ``tools/make_masks.py``) on the canonical nose tip (landmark 4)
CANVAS_CM = 17.3
CANVAS_NOSE = (0.5, 0.835)
NOSE_TIP = (0.0, -0.46, 7.59)  # canonical landmark 4
DOG_NOSE = (0.0, -0.46, 7.7)  # the centre of the dog's nose: on the wearer's, just in front
#: the head the cards go behind: an ellipsoid inside the canonical face (its surface at or behind every landmark of
#: the face's front, so it never hides what sits on the face), reaching the crown, the back and the sides of a skull
HEAD_CENTRE = (0.0, 1.0, -5.0)
HEAD_AXES = (7.8, 11.5, 9.0)

#: the reactions (``Reactions``), on the openings of ``facemesh.signals`` (measured on the real photos of
#: tests/data/faces: a closed or smiling mouth 0 … 0.26, eyes open 0.2 … 0.43, brows at rest 0.18 … 0.29, median 0.23):
#: the mouth opening at which the tongue comes out and goes back; an eye whose opening is below EYE_OPEN starts to
#: close its lid, fully closed at EYE_SHUT; the ears start to perk with the brows raised PERK_FROM above the face's
#: resting height (BROWS_REST until learnt) and are fully perked at PERK_FULL above it
TONGUE_OUT, TONGUE_IN = 0.32, 0.22
MOUTH_WIDTH_CM = 4.92  # the canonical mouth's corners apart (61, 291): an opening of 0.4 drops the lower lip 2 cm
TONGUE_ROOT_CM, TONGUE_OUT_CM = 0.3, 3.0  # the tongue from under the upper lip, and how far past the lower lip
EYE_OPEN, EYE_SHUT = 0.16, 0.07
BROWS_REST, PERK_FROM, PERK_FULL = 0.24, 0.15, 0.40
BROWS_LEARN_S = 4.0  # the time constant over which a face's resting brow height is learnt
POSE_BOX_RATIO = 6.0  # a dog drawn more than this many times its face box's size, or less, is not drawn in 3-D
AFFINE_PX = 1.5  # the most a card may move from its perspective place to be drawn by an affine warp instead
KEEP_STEP = 4  # pixels between the points where the head's occlusion is solved (bilinear between them)
BROWS_MAX_YAW = 35.0  # degrees of yaw beyond which the brows are not read (foreshortened): the ears hold
#: the openings, smoothed lightly (a blink or a bark is a frame or two): a step just past TONGUE_OUT shows the tongue
#: a frame later, a wide one at once (``dogfilter-bench --only dog``); the real talking clip never shows it
SIGNAL_MIN_CUTOFF_HZ, SIGNAL_BETA, SIGNAL_D_CUTOFF_HZ = 3.0, 10.0, 3.0


def canvas_cm(u: float, v: float) -> tuple[float, float]:
    """A point of the flat mask's canvas (fractions) on the canonical face (x, y in cm)."""
    return CANVAS_CM * (u - CANVAS_NOSE[0]), NOSE_TIP[1] + CANVAS_CM * (CANVAS_NOSE[1] - v)


@dataclass(frozen=True)
class CardSpec:
    """Where one card of a dog sits.  ``rect`` (u0, v0, u1, v1) is cut from ``texture``'s canvas; for a cut-out of
    the flat mask (no ``place``) it also says where the card lies on the face (:func:`canvas_cm`); else ``place``
    does (x0, y_top, x1, y_bottom, cm).  The card stands at depth ``z`` at its ``hinge`` (canvas u, v, or cm with
    ``place``), turned ``turn``° about the vertical through the hinge (its outer edge back) and ``tilt``° about the
    horizontal (its top back); ``motion`` says what moves it (:class:`Live`)."""

    name: str
    texture: str
    rect: tuple[float, float, float, float]
    hinge: tuple[float, float]
    z: float
    side: int = 0  # -1: the face's right (the image's left when it faces the camera), +1 its left, 0 the middle
    turn: float = 0.0
    tilt: float = 0.0
    place: tuple[float, float, float, float] | None = None
    motion: str = ""  # "ear", "tongue", "lid" or nothing
    occluded: bool = False
    layer: int = 0  # drawn in layer order, back to front within a layer
    perk_roll: float = 0.0  # degrees the ear turns in its plane (towards upright) when perked
    perk_lift: float = 0.0  # degrees the ear tilts forward when perked
    scale: float = 1.0  # the card's size on the face, about its hinge, to the flat mask's


def _ears(tex: str, rect: tuple[float, float, float, float], hinge: tuple[float, float], z: float, turn: float,
          tilt: float, perk_roll: float, perk_lift: float = 0.0, scale: float = 1.0) -> tuple[CardSpec, CardSpec]:
    """Both ears from the one on the image's left (the face's right): the other is its mirror."""
    u0, v0, u1, v1 = rect
    right = CardSpec("right_ear", tex, rect, hinge, z, -1, turn, tilt, motion="ear", occluded=True,
                     perk_roll=perk_roll, perk_lift=perk_lift, scale=scale)
    left = CardSpec("left_ear", tex, (1 - u1, v0, 1 - u0, v1), (1 - hinge[0], hinge[1]), z, 1, turn, tilt,
                    motion="ear", occluded=True, perk_roll=perk_roll, perk_lift=perk_lift, scale=scale)
    return right, left


def _face_parts(tex: str, muzzle: tuple[float, float, float, float]) -> tuple[CardSpec, ...]:
    """The muzzle (two halves bent back around the nose), the tongue and both eyelids."""
    u0, v0, u1, v1 = muzzle
    nz = DOG_NOSE[2]
    return (
        CardSpec("muzzle_right", tex, (u0, v0, 0.5, v1), (0.5, CANVAS_NOSE[1]), nz, -1, 35.0, layer=4),
        CardSpec("muzzle_left", tex, (0.5, v0, u1, v1), (0.5, CANVAS_NOSE[1]), nz, 1, 35.0, layer=4),
        # hangs from between the lips (canonical 13: 0, -3.99, 5.22), out over the lower lip and chin
        CardSpec("tongue", "part_tongue", (0.18, 0.0, 0.82, 0.98), (0.0, -3.7), 5.6, tilt=-30.0,
                 place=(-1.5, -3.7, 1.5, -7.7), motion="tongue", layer=3),
        # over each eye (upper lid 159: -3.18, 2.96, 3.88; corners 33 and 133), closing from the top
        CardSpec("right_lid", f"part_{tex}_lid", (0.04, 0.18, 0.96, 0.82), (-3.2, 3.5), 4.3, -1, 18.0,
                 place=(-4.8, 3.5, -1.6, 1.95), motion="lid", layer=2),
        CardSpec("left_lid", f"part_{tex}_lid", (0.04, 0.18, 0.96, 0.82), (3.2, 3.5), 4.3, 1, 18.0,
                 place=(1.6, 3.5, 4.8, 1.95), motion="lid", layer=2),
    )


#: the three dogs, by the name of their flat mask
RIGS: dict[str, tuple[CardSpec, ...]] = {
    # upright ears whose tips fold over, standing on the top of the skull, turned out from it
    "dog": (*_ears("dog", (0.02, 0.0, 0.45, 0.42), (0.25, 0.39), 1.0, 35.0, 12.0, 14.0, scale=1.2),
            *_face_parts("dog", (0.26, 0.7, 0.74, 1.0))),
    # drooping ears hanging from the top of the head down its sides; perked, they lift
    "dalmatian": (*_ears("dalmatian", (0.0, 0.05, 0.47, 0.52), (0.40, 0.14), 3.5, 35.0, 0.0, -22.0, 10.0),
                  *_face_parts("dalmatian", (0.26, 0.7, 0.74, 1.0))),
    # grey fur hanging at the sides of the head and a white fringe over the forehead, bent around it
    "sheepdog": (*_ears("sheepdog", (0.0, 0.08, 0.2, 0.62), (0.16, 0.2), 1.0, 25.0, 10.0, -10.0, 6.0),
                 CardSpec("fringe_right", "sheepdog", (0.2, 0.0, 0.5, 0.6), (0.5, 0.45), 6.2, -1, 30.0, 18.0,
                          layer=1),
                 CardSpec("fringe_left", "sheepdog", (0.5, 0.0, 0.8, 0.6), (0.5, 0.45), 6.2, 1, 30.0, 18.0,
                          layer=1),
                 *_face_parts("sheepdog", (0.22, 0.68, 0.78, 1.0))),
}


@dataclass(eq=False)
class Card:
    """A card ready to draw: its spec, its texture (BGRA halvings, largest first) and its rest corners (4×3 cm:
    top-left, top-right, bottom-right, bottom-left of the texture)."""

    spec: CardSpec
    levels: list[np.ndarray]
    rect_cm: tuple[float, float, float, float]  # x0, y_top, x1, y_bottom on the face before turning
    hinge_cm: tuple[float, float, float]

    def corners(self, live: Live) -> np.ndarray:
        s = self.spec
        x0, y0, x1, y1 = self.rect_cm
        hx, hy, hz = self.hinge_cm
        pts = (np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64) - (hx, hy)) * s.scale
        roll, tilt = 0.0, s.tilt
        if s.motion == "ear":
            roll += s.side * s.perk_roll * live.perk
            tilt -= s.perk_lift * live.perk
        elif s.motion == "lid":
            pts[:, 1] *= max(0.05, live.lid(s.side))  # closing from its top edge
        elif s.motion == "tongue":  # from under the upper lip, past the dropped lower lip, then hanging out
            pts[:, 1] *= (TONGUE_ROOT_CM + live.tongue * MOUTH_WIDTH_CM + TONGUE_OUT_CM) / (y0 - y1)
        if roll:
            c, sn = math.cos(math.radians(roll)), math.sin(math.radians(roll))
            pts = pts @ np.array([[c, sn], [-sn, c]])
        p3 = np.column_stack([pts, np.zeros(4)])
        a, b = math.radians(s.side * s.turn if s.side else s.turn), math.radians(-tilt)
        ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
        return p3 @ (ry @ rx).T + (hx, hy, hz)

    def texture(self, size_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The halving of the texture nearest above ``size_px`` (its longer side), its corners as the perspective
        warp wants them and the three the affine warp does."""
        for lv in reversed(self.levels):
            if max(lv.shape[:2]) >= size_px:
                return lv, *_corners_of(lv.shape[1], lv.shape[0])
        return self.levels[0], *_corners_of(self.levels[0].shape[1], self.levels[0].shape[0])


@cache
def _corners_of(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    four = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return four, np.ascontiguousarray(four[[0, 1, 3]])


@dataclass
class Live:
    """What moves a dog: ``tongue``, the mouth's opening while the tongue is out (0: in; a ratio, as
    ``Anchors.mouth``); the ears' perk and each eyelid's closing, 0 … 1 (0: at rest, open)."""

    tongue: float = 0.0
    perk: float = 0.0
    right_lid: float = 0.0
    left_lid: float = 0.0

    def lid(self, side: int) -> float:
        return self.right_lid if side < 0 else self.left_lid

    def moves(self, spec: CardSpec) -> bool:
        """Is ``spec``'s card away from where it rests?"""
        if spec.motion == "ear":
            return self.perk > 0
        if spec.motion == "lid":
            return self.lid(spec.side) > 0
        return spec.motion == "tongue" and self.tongue > 0

    def shows(self, spec: CardSpec) -> bool:
        if spec.motion == "tongue":
            return self.tongue > 0
        if spec.motion == "lid":
            return self.lid(spec.side) > 0.05
        return True


def _texture(name: str) -> np.ndarray:
    img = cv2.imread(str(ASSETS / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        raise DogfilterError(f"dog part {name}.png is missing or has no alpha: run `make masks`")
    return img


def _card(spec: CardSpec, img: np.ndarray) -> Card:
    """Cut the card's texture (its rectangle, tightened to what is drawn in it) and place it."""
    size = img.shape[0]
    u0, v0, u1, v1 = spec.rect
    x0, y0, x1, y1 = (round(u0 * size), round(v0 * size), round(u1 * size), round(v1 * size))
    tex = img[y0:y1, x0:x1]
    ys, xs = np.nonzero(tex[:, :, 3])
    if len(xs) == 0:
        raise DogfilterError(f"dog part {spec.name}: nothing drawn in {spec.texture}.png at {spec.rect}")
    pad = 2
    tx0, ty0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    tx1, ty1 = min(tex.shape[1], int(xs.max()) + 1 + pad), min(tex.shape[0], int(ys.max()) + 1 + pad)
    tex = np.ascontiguousarray(tex[ty0:ty1, tx0:tx1])
    # the tightened rectangle, as fractions of the cut
    fu0, fv0 = tx0 / (x1 - x0), ty0 / (y1 - y0)
    fu1, fv1 = tx1 / (x1 - x0), ty1 / (y1 - y0)
    if spec.place is None:  # a cut-out of the flat mask lies where it lies on the canvas
        a = canvas_cm(x0 / size + fu0 * (x1 - x0) / size, y0 / size + fv0 * (y1 - y0) / size)
        b = canvas_cm(x0 / size + fu1 * (x1 - x0) / size, y0 / size + fv1 * (y1 - y0) / size)
        rect_cm = (a[0], a[1], b[0], b[1])
        hinge2 = canvas_cm(*spec.hinge)
    else:
        px0, py0, px1, py1 = spec.place
        rect_cm = (px0 + fu0 * (px1 - px0), py0 + fv0 * (py1 - py0), px0 + fu1 * (px1 - px0),
                   py0 + fv1 * (py1 - py0))
        hinge2 = spec.hinge
    levels = [tex]
    while min(levels[-1].shape[:2]) >= 16:
        levels.append(cv2.resize(levels[-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    return Card(spec, levels, rect_cm, (hinge2[0], hinge2[1], spec.z))


SAMPLES = 6  # a card's points where the head's occlusion is tried first: this many each way, where it is drawn


def _samples(card: Card) -> np.ndarray:
    """The bilinear weights (M×4, of the corners) of the points of a SAMPLES × SAMPLES grid over the card where its
    texture is drawn."""
    alpha = card.levels[0][:, :, 3]
    h, w = alpha.shape
    out = []
    for t in np.linspace(0.02, 0.98, SAMPLES):
        for s in np.linspace(0.02, 0.98, SAMPLES):
            if alpha[int(t * (h - 1)), int(s * (w - 1))] > 0:
                out.append(((1 - s) * (1 - t), s * (1 - t), s * t, (1 - s) * t))
    return np.array(out, np.float64).reshape(-1, 4)


@dataclass(eq=False)
class Rig:
    """One dog's cards, and all their corners at rest in one array (N×4×3 cm): a frame's cards are posed in one
    product; only the cards a reaction moves are placed again.  ``probe``: the sample points of every card the head
    can hide, as one matrix over all corners (a frame's points are one product), and which card each row is."""

    cards: tuple[Card, ...]
    rest: np.ndarray
    probe: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    probe_card: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.cards)
        rows, which = [], []
        for i, c in enumerate(self.cards):
            if c.spec.occluded:
                for wts in _samples(c):
                    row = np.zeros(4 * n)
                    row[4 * i:4 * i + 4] = wts
                    rows.append(row)
                    which.append(i)
        self.probe = np.array(rows).reshape(-1, 4 * n)
        self.probe_card = np.array(which, np.int64)

    def maybe_hidden(self, corners: np.ndarray, skull: _Skull) -> set[int]:
        """The cards (indices) some of whose sample points the head hides (``corners``: the cards' corners in the
        canonical face's space): only these need the per-pixel pass.  A point is hidden inside the skull, or where
        the ray from the eye to it (s = 1 at the point) meets the skull before it."""
        if not len(self.probe_card):
            return set()
        p = (self.probe @ corners.reshape(-1, 3) - HEAD_CENTRE) / HEAD_AXES
        s, meets = skull.first_meeting(p - skull.eye)
        hidden = ((p * p).sum(1) < 1) | (meets & (s < 1))
        return set(self.probe_card[hidden].tolist())

    def __iter__(self) -> Iterator[Card]:
        return iter(self.cards)

    def corners(self, live: Live) -> np.ndarray:
        out = self.rest
        moved = [i for i, c in enumerate(self.cards) if c.spec.motion and live.moves(c.spec)]
        if moved:
            out = out.copy()
            for i in moved:
                out[i] = self.cards[i].corners(live)
        return out


@cache
def rig(name: str) -> Rig | None:
    """The cards of the dog named like its flat mask (None: no 3-D version, e.g. a user's own mask)."""
    specs = RIGS.get(name)
    if specs is None:
        return None
    images: dict[str, np.ndarray] = {}
    cards = []
    for s in specs:
        if s.texture not in images:
            images[s.texture] = _texture(s.texture)
        cards.append(_card(s, images[s.texture]))
    return Rig(tuple(cards), np.stack([c.corners(Live()) for c in cards]))


class Reactions:
    """One face's reactions over time, from its anchors' openings (``Face.anchors``): the openings smoothed lightly
    (one One-Euro filter, fast: a mouth opening shows within a frame or two), the tongue with hysteresis (out above
    ``TONGUE_OUT``, back below ``TONGUE_IN``: talking does not make it flicker), the ears perked by the brows raised
    above the face's own resting height (learnt slowly, while they are not raised), each lid closing with its eye."""

    def __init__(self) -> None:
        self.filter = OneEuro(SIGNAL_MIN_CUTOFF_HZ, SIGNAL_BETA, SIGNAL_D_CUTOFF_HZ)
        self.tongue_out = False
        self.brows_rest: float | None = None
        self.perk = 0.0
        self.t: float | None = None

    def __call__(self, face: Face, t: float) -> Live:
        a = face.anchors
        if a is None:
            return Live()
        mouth, reye, leye, brows = (float(v) for v in self.filter(
            np.array([a.mouth, a.right_eye_open, a.left_eye_open, a.brows]), t, 0.5))
        if self.tongue_out and mouth < TONGUE_IN:
            self.tongue_out = False
        elif not self.tongue_out and mouth > TONGUE_OUT:
            self.tongue_out = True
        tongue = max(TONGUE_IN, mouth) if self.tongue_out else 0.0
        p = face.pose
        if p is None or abs(p.yaw) <= BROWS_MAX_YAW:
            rest = self.brows_rest if self.brows_rest is not None else BROWS_REST
            raised = brows / rest - 1.0
            self.perk = min(1.0, max(0.0, (raised - PERK_FROM) / (PERK_FULL - PERK_FROM)))
            if raised < PERK_FROM:  # learn the face's resting height while its brows are not raised
                k = 1.0 - math.exp(-(t - self.t) / BROWS_LEARN_S) if self.t is not None and t > self.t else 0.0
                self.brows_rest = rest + k * (brows - rest)
        self.t = t
        lids = [min(1.0, max(0.0, (EYE_OPEN - e) / (EYE_OPEN - EYE_SHUT))) for e in (reye, leye)]
        if p is not None and abs(p.yaw) > 40:  # the far eye is seen edge-on: both lids follow the near one
            near = lids[0] if p.yaw > 0 else lids[1]
            lids = [near, near]
        return Live(tongue, self.perk, *lids)


@dataclass(frozen=True)
class _Skull:
    """The head the cards go behind, as rays see it, in the skull's own space (the canonical face's centimetres less
    ``HEAD_CENTRE``, over ``HEAD_AXES``: the skull is the unit sphere there).  The camera is at ``eye``; the ray
    through a pixel, s·(u, v, 1) in the camera's axes (s: the depth), is eye + s·``to_skull`` @ (u, v, 1) here."""

    eye: np.ndarray
    to_skull: np.ndarray  # 3×3

    @classmethod
    def seen_by(cls, pose: headpose.Pose) -> _Skull:
        r_cam = headpose.FLIP @ pose.r
        axes = np.array(HEAD_AXES)
        return cls((-r_cam.T @ pose.t - HEAD_CENTRE) / axes, r_cam.T / axes[:, None])

    def first_meeting(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Along eye + s·d (``d``: any number of directions, ...×3): the s where each ray first meets the skull, and
        whether it meets it at all ahead of the eye (s > 0)."""
        e = self.eye
        a = (d * d).sum(-1)
        b = d @ e
        disc = b * b - a * (float(e @ e) - 1.0)
        s = (-b - np.sqrt(np.maximum(disc, 0))) / a
        return s, (disc > 0) & (s > 0)


def _grid(skull: _Skull, k: np.ndarray, box: tuple[int, int, int, int], plane_p: np.ndarray, plane_n: np.ndarray,
          step: int) -> np.ndarray:
    """On a grid of points ``step`` pixels apart from the top-left of ``box`` (x0, y0, x1, y1) to past its far
    edges: 255 where the card's plane is nearer the camera than the head (or the head is not there), 0 where the head
    hides it."""
    x0, y0, x1, y1 = box
    f, cx, cy = k[0, 0], k[0, 2], k[1, 2]
    nx, ny = (x1 - x0 + step - 1) // step + 1, (y1 - y0 + step - 1) // step + 1
    u = (x0 + step * np.arange(nx) + 0.5 - cx) / f
    v = (y0 + step * np.arange(ny) + 0.5 - cy) / f
    m = skull.to_skull
    s_head, meets = skull.first_meeting(u[None, :, None] * m[:, 0] + v[:, None, None] * m[:, 1] + m[:, 2])
    # the card's plane along the same ray: s_card = n·p / n·(u, v, 1)
    n = plane_n
    s_card = float(n @ plane_p) / (float(n[0]) * u[None, :] + (float(n[1]) * v[:, None] + float(n[2])))
    return np.where(meets & (s_head < s_card), np.uint8(0), np.uint8(255))


def _kept(skull: _Skull, k: np.ndarray, box: tuple[int, int, int, int], plane_p: np.ndarray,
          plane_n: np.ndarray) -> np.ndarray:
    """Of each pixel of ``box``: 255 where the card is seen, 0 where the head hides it (uint8, to multiply a card's
    alpha with): solved on a grid ``KEEP_STEP`` pixels apart and spread over the pixels between by a bilinear resize
    (the outline is smooth, and comes out anti-aliased)."""
    x0, y0, x1, y1 = box
    grid = _grid(skull, k, box, plane_p, plane_n, KEEP_STEP)
    ny, nx = grid.shape
    # grid point j sits at pixel j·step: a resize to (n − 1)·step + 1 pixels puts them there exactly
    full = cv2.resize(grid, ((nx - 1) * KEEP_STEP + 1, (ny - 1) * KEEP_STEP + 1), interpolation=cv2.INTER_LINEAR)
    return full[:y1 - y0, :x1 - x0]




def posed(face: Face, width: int, height: int) -> headpose.Pose | None:
    """The face's pose, moved so that the canonical nose tip lands on the face's own (its anchors), or None."""
    p = face.pose
    if p is None:
        return None
    pose = headpose.Pose.turned(p.yaw, p.pitch, p.roll, p.t)
    a = face.anchors
    if a is None:
        return pose
    tx, ty, tz = (headpose.FLIP @ pose.r @ _NOSE_TIP + pose.t).tolist()
    f = headpose.focal(height)
    dx, dy = a.nose_tip[0] - (f * tx / tz + width / 2), a.nose_tip[1] - (f * ty / tz + height / 2)
    if math.hypot(dx, dy) > 0.5 * math.hypot(a.left_eye[0] - a.right_eye[0], a.left_eye[1] - a.right_eye[1]):
        return pose  # far off: a fit and anchors that disagree; keep the fit
    return headpose.Pose(pose.r, pose.t + (dx * tz / f, dy * tz / f, 0.0))


_NOSE_TIP = np.array(NOSE_TIP)


@dataclass
class Drawn:
    """What :func:`draw` drew of one face (for tests and the bench): each card's name → its corners in the frame
    (4×2), and the pixels the head hid of each occluded card."""

    corners: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: dict[str, int] = field(default_factory=dict)
    culled: list[str] = field(default_factory=list)
    pixels: dict[str, int] = field(default_factory=dict)  # with ``measure``: each card's pixels left to paint


def project(face: Face, points: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """Points of the canonical face's space (K×3, cm) where the dog draws them on ``face`` (K×2 frame pixels: the
    pose moved onto the face's own nose, :func:`posed`), or None without a pose."""
    pose = posed(face, width, height)
    return None if pose is None else pose.project(np.asarray(points, np.float64), width, height)


def draw(frame: np.ndarray, face: Face, cards: Rig, live: Live | None = None,
         measure: bool = False) -> Drawn | None:
    """Draw the dog ``cards`` on ``face`` of ``frame`` (BGR, in place), posed with the face.  None: the face has no
    pose, or one that disagrees with its box by more than ``POSE_BOX_RATIO`` (the caller paints the flat mask).
    ``measure``: count each card's pixels (tests, the bench)."""
    h, w = frame.shape[:2]
    pose = posed(face, w, h)
    if pose is None:
        return None
    live = live or Live()
    k = headpose.camera(w, h)
    f, cx, cy = headpose.focal(h), w / 2, h / 2
    r_cam = headpose.FLIP @ pose.r
    out = Drawn()
    corners_face = cards.corners(live)
    cam = corners_face @ r_cam.T + pose.t  # every card's corners, N×4×3, in one product
    # top edge × left edge: in the camera's axes (y down) it points away from the viewer when the card's front is seen
    e1, e2 = cam[:, 1] - cam[:, 0], cam[:, 3] - cam[:, 0]
    normal = np.stack([e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1], e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
                       e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]], 1)
    facing = ((normal * cam.sum(1)).sum(1) > 0).tolist()
    ahead = bool((cam[:, :, 2] >= 1.0).all())  # every corner at least 1 cm in front of the lens
    z = np.maximum(cam[:, :, 2], 1e-3)
    pts = np.stack([f * cam[:, :, 0] / z + cx, f * cam[:, :, 1] / z + cy], 2)  # N×4×2
    # a pose that puts a card at the lens, or says the face is far bigger or smaller than its box (a peer's nonsense,
    # or a fit gone wrong): the box is what was seen, so the flat mask, bounded by it, is painted instead of warps
    # as big as the frame
    size, extent = max(face.box[2], face.box[3], 1), float(np.ptp(pts.reshape(-1, 2), 0).max())
    if not ahead or not size / POSE_BOX_RATIO <= extent <= POSE_BOX_RATIO * size:
        return None
    corners = pts.tolist()  # plain floats: what the loop reads costs less than numpy's scalars
    depth = cam[:, :, 2].sum(1).tolist()
    order = sorted(range(len(cards.cards)), key=lambda i: (cards.cards[i].spec.layer, -depth[i]))
    skull = _Skull.seen_by(pose)
    maybe = cards.maybe_hidden(corners_face, skull)
    for i in order:
        card = cards.cards[i]
        spec = card.spec
        if not live.shows(spec):
            continue
        if not facing[i]:
            out.culled.append(spec.name)
            continue
        out.corners[spec.name] = pts[i]
        (ax, ay), (bx, by), (qx, qy), (dx, dy) = corners[i]
        x0, y0 = max(0, math.floor(min(ax, bx, qx, dx))), max(0, math.floor(min(ay, by, qy, dy)))
        x1, y1 = min(w, math.ceil(max(ax, bx, qx, dx)) + 1), min(h, math.ceil(max(ay, by, qy, dy)) + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        tex, src, src3 = card.texture(max(math.hypot(bx - ax, by - ay), math.hypot(dx - ax, dy - ay)))
        bgra, pre, inv = SCRATCH.take(y1 - y0, x1 - x0)
        # where perspective moves the fourth corner less than AFFINE_PX from where an affine map puts it (so no pixel
        # of the card further than that), the affine warp (half the time) draws it
        if math.hypot(qx - bx - dx + ax, qy - by - dy + ay) < AFFINE_PX:
            dst = np.array(((ax - x0, ay - y0), (bx - x0, by - y0), (dx - x0, dy - y0)), np.float32)
            cv2.warpAffine(tex, cv2.getAffineTransform(src3, dst), (x1 - x0, y1 - y0), dst=bgra,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        else:
            dst = np.array(((ax - x0, ay - y0), (bx - x0, by - y0), (qx - x0, qy - y0), (dx - x0, dy - y0)),
                           np.float32)
            cv2.warpPerspective(tex, cv2.getPerspectiveTransform(src, dst), (x1 - x0, y1 - y0), dst=bgra,
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        if i in maybe:  # some of its sample points are behind the head: find which pixels
            alpha = cv2.extractChannel(bgra, 3)
            keep = _kept(skull, k, (x0, y0, x1, y1), cam[i, 0], normal[i])
            if measure:
                out.hidden[spec.name] = int(np.count_nonzero(alpha[keep < 128]))
            cv2.multiply(alpha, keep, dst=alpha, scale=1 / 255)
            cv2.insertChannel(alpha, bgra, 3)
        if measure:
            out.pixels[spec.name] = int(np.count_nonzero(bgra[:, :, 3]))
        blend_terms(bgra, pre, inv)
        blend(frame[y0:y1, x0:x1], pre, inv)
    return out
