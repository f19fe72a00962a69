"""The built-in demo scene: real faces moving around a soft, pleasant room, changing expression.

The demo needs no file from the user.  Three "people" are made from the public-domain portrait of Grace Hopper that
matplotlib ships (``portrait.py``: cut out once, re-coloured), each in four expressions (``expressions.py``,
``mouth.py``), pre-scaled into sprite pyramids (``sprites.py``), moved along smooth looping paths (``motion.py``)
and drawn (``paint.py``) over a blurred, deterministic room (``room.py``).  :class:`DemoScene` (``scene.py``) is
the public API; ``group.py`` makes group photos of the same people (detector benchmarks and tests).
``tools/check_demo_expressions.py`` measures what the real models read.

Example::

    scene = DemoScene(640, 480)
    frame = scene.render(1.5)          # BGR uint8, shape (480, 640, 3)
    boxes = scene.face_boxes(1.5)      # [(x, y, w, h), ...] ground truth
    names = scene.expressions(1.5)     # ['surprise', 'happy', 'neutral']

The frame source that reads from it is ``common.media.sources.DemoSource``.
"""

from __future__ import annotations

from dogfilter.common.scene.expressions import EXPRESSIONS
from dogfilter.common.scene.motion import LOOP_SECONDS
from dogfilter.common.scene.portrait import load_portrait
from dogfilter.common.scene.scene import DemoScene

__all__ = ["EXPRESSIONS", "LOOP_SECONDS", "DemoScene", "load_portrait"]
