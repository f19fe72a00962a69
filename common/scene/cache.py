"""Demo frames made once and kept: the scene loops, so a demo stream shows the same frames again and again.

A frame is kept as its :meth:`~dogfilter.common.scene.scene.DemoScene.patches` (what the faces change in the room:
about a third of a frame at 640x480), and made again by pasting them on the room: a fraction of the cost of painting
it, and the same pixels (the patches are what painting left there).  What is kept is bounded in bytes: once the
budget is spent, further frames are painted every time.

A frame of the scene depends on its time only within the loop (``t % LOOP_SECONDS``), so that is the key: streams of
one size share what is kept, whatever their rate or starting moment.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Iterable

import numpy as np

from dogfilter.common.scene.motion import LOOP_SECONDS
from dogfilter.common.scene.scene import DemoScene, Patch, paste

__all__ = ["BUDGET_BYTES", "CachedScene"]

#: What one cached scene keeps at most: the whole loop at 640x480 (30 frames/s, three faces) is ~170 MiB; at
#: 1280x720 ~375 MiB, so about half of its frames are kept.
BUDGET_BYTES = 192 << 20

log = logging.getLogger("scene")
_CACHES: weakref.WeakSet[CachedScene] = weakref.WeakSet()  # their warm-ups end before the process does


class CachedScene:
    """A :class:`DemoScene` that keeps each frame it made (within ``budget_bytes``) and makes it again from that.

    Args:
        scene: the scene to draw.
        budget_bytes: the most pixel bytes to keep.
    """

    def __init__(self, scene: DemoScene, budget_bytes: int = BUDGET_BYTES) -> None:
        self.scene = scene
        self.budget_bytes = budget_bytes
        self.nbytes = 0  # kept so far
        self.hits = self.misses = 0
        self.full = False  # a frame did not fit: what is not kept yet is painted every time
        self._frames: dict[float, tuple[Patch, ...]] = {}
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None
        self._stop = threading.Event()
        _CACHES.add(self)

    def render(self, t: float) -> np.ndarray:
        """The frame at ``t`` seconds: a new BGR uint8 array, the very pixels of ``scene.render(t)``."""
        key = float(t) % LOOP_SECONDS
        patches = self._frames.get(key)
        if patches is None:
            self.misses += 1
            if self.full:
                return self.scene.render(key)
            patches = self.scene.patches(key)
            self._keep(key, patches)
        else:
            self.hits += 1
        return paste(self.scene.room, patches)

    def warm(self, times: Iterable[float]) -> None:
        """Make the frames at ``times`` in a background thread (once per cache), so that the first pass of a loop
        need not paint them while a stream waits."""
        with self._lock:
            if self._warming is not None:
                return
            self._warming = threading.Thread(target=self._warm, args=(list(times),), daemon=True, name="scene-warm")
        self._warming.start()

    def _warm(self, times: list[float]) -> None:
        for t in times:
            key = float(t) % LOOP_SECONDS
            if key in self._frames:
                continue
            if self.full or self._stop.is_set():
                break
            self._keep(key, self.scene.patches(key))
        log.debug("demo scene %dx%d: %d frames kept, %.0f MiB", self.scene.width, self.scene.height,
                  len(self._frames), self.nbytes / 2**20)

    def stop(self) -> None:
        """The warm-up ends after the frame it is making (the process ends: a thread inside OpenCV then would abort
        it with "terminate called without an active exception")."""
        self._stop.set()
        if self._warming is not None:
            self._warming.join(timeout=5.0)

    def _keep(self, key: float, patches: tuple[Patch, ...]) -> None:
        size = sum(p.nbytes for _, _, p in patches)
        with self._lock:
            if key in self._frames:
                return
            if self.nbytes + size > self.budget_bytes:
                self.full = True
                return
            for _, _, p in patches:
                p.flags.writeable = False  # shared by every stream that shows this frame
            self._frames[key] = patches
            self.nbytes += size


@atexit.register
def _stop_all() -> None:
    for cache in list(_CACHES):
        cache.stop()
