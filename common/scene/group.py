"""Still pictures of the demo's people with their ground truth: group photos and single demo frames.

For the detector benchmark (``commands/bench_detect.py``) and the detector and tracking tests: a *shot* is a picture
and the Haar-style boxes of the faces in it.  Group photos put 1–6 of the demo's people (neutral) on the demo's
room, faces 30–300 px wide, some rolled or turned; everything is deterministic in a seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from dogfilter.common.scene.expressions import EXPRESSIONS
from dogfilter.common.scene.scene import DemoScene
from dogfilter.common.scene.sprites import Sprite, people

__all__ = ["Box", "Shot", "demo_shot", "group_photo", "paste_face"]

Box = tuple[float, float, float, float]  # x, y, w, h


@dataclass
class Shot:
    """A picture and its ground truth."""

    image: np.ndarray  # BGR uint8
    boxes: list[Box]  # the faces' Haar-style boxes, x, y, w, h
    rolls: list[float]  # degrees, per face (positive: clockwise on screen); empty for demo frames


def _neutral_people() -> list[tuple[Sprite, ...]]:
    """Each person's sprite pyramid with the photo's own expression: group photos are of calm faces."""
    neutral = EXPRESSIONS.index("neutral")
    return [person[neutral] for person in people()]


def paste_face(img: np.ndarray, person: int, cx: float, cy: float, width: float, roll_deg: float = 0.0,
               squash: float = 1.0) -> Box:
    """Paste one of the demo's people so that its Haar face box is ``width`` wide, centred at (cx, cy), rolled
    ``roll_deg`` clockwise on screen and squashed horizontally (turned head) by ``squash``.

    Returns:
        The ground-truth box (the Haar box, narrowed a little as in the demo when turned).
    """
    levels = _neutral_people()[person]
    sprite = next((s for s in levels if s.face_width >= width * 0.98), levels[-1])
    r = width / sprite.face_width
    th = math.radians(roll_deg)
    c, s = math.cos(th), math.sin(th)
    a = np.array([[c * r * squash, -s * r], [s * r * squash, c * r]])
    m = np.hstack([a, (np.array([cx, cy]) - a @ np.array(sprite.center))[:, None]])
    h, w = img.shape[:2]
    warped = cv2.warpAffine(sprite.bgra, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    alpha = warped[:, :, 3:4].astype(np.float32) / 255.0
    img[:] = np.clip(warped[:, :, :3].astype(np.float32) + img.astype(np.float32) * (1.0 - alpha) + 0.5,
                     0, 255).astype(np.uint8)
    side = width * (0.5 + 0.5 * squash)
    return cx - side / 2, cy - side / 2, side, side


def group_photo(width: int = 640, height: int = 480, seed: int = 0, n: int | None = None,
                sizes: tuple[float, float] = (30.0, 300.0), max_roll: float = 25.0, turn: float = 0.8) -> Shot:
    """A synthetic group photo: ``n`` (1–6, random if None) of the demo's people on the demo's room, face widths
    log-uniform in ``sizes`` (pixels at 640×480, scaled with the frame), no two heads overlapping; a third of the
    faces rolled up to ±``max_roll``°, a third turned (squashed down to ``turn``).  Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    img = DemoScene(width, height, faces=0).render(0.0)
    unit = min(width / 640, height / 480)
    n = int(n or rng.integers(1, 7))
    placed: list[tuple[float, float, float]] = []
    shot = Shot(img, [], [])
    for _ in range(400):
        if len(placed) == n:
            break
        lo, hi = sizes[0] * unit, min(sizes[1] * unit, 0.62 * height)
        w = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        # the head reaches ~0.75 w above the face centre (hat) and ~0.7 w below (chin, neck)
        cx, cy = rng.uniform(0.55 * w, width - 0.55 * w), rng.uniform(0.85 * w, height - 0.7 * w)
        if any(abs(cx - x) < 0.7 * (w + pw) and abs(cy - y) < 0.85 * (w + pw) for x, y, pw in placed):
            continue
        kind = rng.integers(0, 3)
        roll = float(rng.uniform(-max_roll, max_roll)) if kind == 1 else float(rng.uniform(-4, 4))
        squash = float(rng.uniform(min(turn, 0.9), 0.9)) if kind == 2 and turn < 1 else 1.0
        placed.append((cx, cy, w))
        shot.boxes.append(paste_face(img, int(rng.integers(0, 3)), cx, cy, w, roll, squash))
        shot.rolls.append(roll)
    return shot


@functools.lru_cache(maxsize=4)
def _scene(width: int, height: int) -> DemoScene:
    """One demo scene per frame size (building one draws the room)."""
    return DemoScene(width, height)


def demo_shot(width: int, height: int, t: float) -> Shot:
    """The demo scene's frame at ``t`` seconds, with its face boxes."""
    scene = _scene(width, height)
    boxes: list[Box] = [(float(x), float(y), float(w), float(h)) for x, y, w, h in scene.face_boxes(t)]
    return Shot(scene.render(t), boxes, [])
