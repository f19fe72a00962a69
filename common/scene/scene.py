"""The demo scene: :class:`DemoScene`, what a frame at a time shows and where its faces are.

``render(t)``, ``face_boxes(t)`` and ``expressions(t)`` are pure, deterministic functions of the time ``t`` in
seconds; the animation loops every :data:`~dogfilter.common.scene.motion.LOOP_SECONDS`.
"""

from __future__ import annotations

import numpy as np

from dogfilter.common.scene.expressions import EXPRESSIONS
from dogfilter.common.scene.motion import LOOP_SECONDS, MIN_SQUASH, PATHS, Pose, poses
from dogfilter.common.scene.paint import Layer, draw, homography, level_for
from dogfilter.common.scene.room import background
from dogfilter.common.scene.sprites import Sprite, people

__all__ = ["DemoScene", "Patch", "paste"]

Box = tuple[int, int, int, int]
Rect = tuple[float, float, float, float]
#: Part of a frame: its left and top column and row, and its pixels (BGR uint8).
Patch = tuple[int, int, np.ndarray]


def paste(background: np.ndarray, patches: tuple[Patch, ...]) -> np.ndarray:
    """A new frame: ``background`` with ``patches`` laid on it in order."""
    frame = background.copy()
    for x0, y0, pixels in patches:
        frame[y0:y0 + pixels.shape[0], x0:x0 + pixels.shape[1]] = pixels
    return frame


def overlap(a: Rect, b: Rect) -> float:
    """Intersection area of two ``(x0, y0, x1, y1)`` rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


class DemoScene:
    """Synthetic demo video: real faces moving over a soft room background.

    Args:
        width: frame width in pixels.
        height: frame height in pixels.
        faces: number of faces (0 to 3; 0 shows the empty room).
    """

    def __init__(self, width: int = 640, height: int = 480, faces: int = 3) -> None:
        if width < 32 or height < 32:
            raise ValueError(f"frame size too small: {width}x{height}")
        if not 0 <= faces <= len(PATHS):
            raise ValueError(f"faces must be 0..{len(PATHS)}, got {faces}")
        self.width = int(width)
        self.height = int(height)
        self.faces = int(faces)
        self.loop_seconds = LOOP_SECONDS
        self._people = people()
        self._background = background(self.width, self.height)

    def face_boxes(self, t: float) -> list[Box]:
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

    def render(self, t: float) -> np.ndarray:
        """Render the frame at time ``t`` seconds.

        Returns:
            A new BGR uint8 array of shape ``(height, width, 3)``.
        """
        frame = self._background.copy()
        for pose, level, _, _ in self._layout(t):
            draw(frame, self._layers(pose, level))
        return frame

    def patches(self, t: float) -> tuple[Patch, ...]:
        """The frame at ``t`` as what its faces change in the room: ``paste(room, patches(t)) == render(t)``.

        Each face's region is taken just after it is drawn, so a later face's patch, laid on after it, holds
        whatever that face covers of the earlier ones.
        """
        frame = self._background.copy()
        out = []
        for pose, level, _, _ in self._layout(t):
            region = draw(frame, self._layers(pose, level))
            if region is not None:
                x0, y0, x1, y1 = region
                out.append((x0, y0, frame[y0:y1, x0:x1].copy()))
        return tuple(out)

    @property
    def room(self) -> np.ndarray:
        """The empty room at this size (read-only: copy it to draw on it)."""
        view = self._background.view()
        view.flags.writeable = False
        return view

    def __call__(self, t: float) -> np.ndarray:
        """Alias of :meth:`render`."""
        return self.render(t)

    def _layers(self, pose: Pose, level: int) -> list[Layer]:
        """What to draw for one face: its expression's sprite, and while it fades in, the one before it."""
        pyramids = self._people[pose.person]
        sprite = pyramids[pose.expression][level]
        layers = [(sprite, homography(pose, sprite), pose.mix)]
        if pose.mix < 1.0:
            old = pyramids[pose.previous][level]
            layers.append((old, homography(pose, old), 1.0 - pose.mix))
        return layers

    def _layout(self, t: float) -> list[tuple[Pose, int, Sprite, np.ndarray]]:
        """Pose, sprite level, neutral sprite and its homography of each face.

        Ordered back to front (drawing order).  The neutral sprite gives the
        geometry (face boxes, occlusion), the same whatever the expression.
        """
        out = []
        for pose in poses(t, self.width, self.height, self.faces):
            level = level_for(pose)
            sprite = self._people[pose.person][0][level]
            out.append((pose, level, sprite, homography(pose, sprite)))
        return out

    def _visible(self, t: float) -> list[tuple[Box, Pose]]:
        """Box and pose of every visible face at ``t`` (see :meth:`face_boxes`)."""
        layout = self._layout(t)
        heads = [_head_rect(sprite, hmg) for _, _, sprite, hmg in layout]  # on screen, for occlusion
        boxes = []
        for i, (pose, _, sprite, hmg) in enumerate(layout):
            box, side = _face_rect(pose, sprite, hmg)
            frame = (0.0, 0.0, float(self.width), float(self.height))
            if overlap(box, frame) < 0.5 * side * side:
                continue
            hidden = max((overlap(box, head) for head in heads[i + 1:]), default=0.0)
            if hidden > 0.5 * side * side:
                continue
            x0, y0 = round(max(box[0], 0.0)), round(max(box[1], 0.0))
            x1 = round(min(box[2], frame[2]))
            y1 = round(min(box[3], frame[3]))
            boxes.append(((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), pose))
        return boxes


def _head_rect(sprite: Sprite, hmg: np.ndarray) -> Rect:
    """Screen-space bounding box of a head (where its alpha is over a half), ``(x0, y0, x1, y1)``."""
    hx0, hy0, hx1, hy1 = sprite.head
    pts = hmg @ np.array([[hx0, hx1, hx0, hx1], [hy0, hy0, hy1, hy1],
                          [1.0, 1.0, 1.0, 1.0]])
    xs, ys = pts[0] / pts[2], pts[1] / pts[2]
    return xs.min(), ys.min(), xs.max(), ys.max()


def _face_rect(pose: Pose, sprite: Sprite, hmg: np.ndarray) -> tuple[Rect, float]:
    """Screen-space Haar-style face box, ``(x0, y0, x1, y1)``, and its side: square, narrowing a little as the head
    turns."""
    c = hmg @ np.array([sprite.center[0], sprite.center[1], 1.0])
    cx, cy = c[0] / c[2], c[1] / c[2]
    squash = 1.0 - (1.0 - MIN_SQUASH) * abs(pose.yaw)
    side = pose.face_width * (0.5 + 0.5 * squash)
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0), side
