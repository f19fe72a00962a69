"""Frames shared between the processes of one host: capture writes a frame's pixels once, into a slot of a bounded
pool of shared-memory segments it owns, and the wire carries a handle (segment, generation, offset; the image
part's shape and dtype as ever) where the pixels would be.  ZeroMQ stays the control path, and the only path to
another host: a worker that does not announce this host's shared memory gets the pixels on the wire as before.

A segment (one slot) is a file in ``/dev/shm`` (``shmnames.py``: ``dogfilter-shm-TOKEN-PID-SERIAL``, 0600, made
with O_EXCL and never resized) laid out as::

    [0:8)    MAGIC
    [8:16)   generation (u64): odd while capture writes the slot, even once the frame in it is whole
    [64:...) the pixels of one frame

Rules:

* **Only capture writes and unlinks** a segment; consumers (detect, composite) map it read-only and never unlink.
* **A handle is checked** like any value from a peer (:class:`Reader`): the name must be this pipeline's (its token,
  derived from the secret), the file a regular one of this user, private, not a link, carrying the magic; offset +
  the image's size within the segment; the image under the pixel cap (``wire._check_part``); the generation the
  handle names.  Anything else is a counted drop (``shm_refused``, ``shm_stale``), never a traceback.
* **A slot is reused only when its frame is through**: no worker holds its job and none will be sent again (file
  mode: a detect worker reports a frame done only once the composite confirmed it, and the composite copies the
  pixels out as it takes the message, so file mode loses nothing); live, also not before the display said the frame
  left (or the flow limiter forgot it).  The generation is checked again after use (detect: after detection; the
  composite: after its copy), so a slot reused anyway is a counted drop, never a silently wrong picture.
* **Bounded**: at most ``--shm-slots`` slots and ``MAX_POOL_BYTES``; when none is free the frame goes on the wire.
* **No leaks**: capture unlinks its segments when it ends, a capture that starts unlinks those of dead captures of
  its pipeline, and the launcher (and its janitor, however the launcher died) unlinks all of its run's.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import os
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dogfilter.common.transport.shmnames import NAME_RE, PREFIX, SHM_DIR, remove, token

MAGIC = b"dfshm\x00\x00\x01"
HEAD = 64  # bytes before the pixels
MAX_POOL_BYTES = 512 * 1024 * 1024  # all of a capture's slots together
MAX_MAPS = 64  # segments a consumer keeps mapped
POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # the pages mapped at once, not a fault per page at first touch
IDLE_MAP_S = 10.0  # a mapping not used this long is dropped (its segment was replaced or its capture ended)

__all__ = ["HEAD", "MAGIC", "Pool", "Reader", "Refused", "Stale", "domain", "token"]


class Refused(ValueError):
    """A handle this pipeline did not issue, or out of bounds."""


class Stale(ValueError):
    """The slot a handle names holds another frame now."""


def domain(secret: bytes, shm_dir: Path = SHM_DIR) -> str | None:
    """Who can see the same segments: the pipeline (its secret), the machine (its boot) and the ``/dev/shm`` (a
    container has its own).  A worker announces it; capture sends handles only to a worker that announces its own.
    None: no shared memory here."""
    try:
        st = os.stat(shm_dir)
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or not os.access(shm_dir, os.W_OK):
        return None
    text = f"dogfilter shm domain\0{boot}\0{st.st_dev}:{st.st_ino}".encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- producer


@dataclass
class Slot:
    name: str
    mm: mmap.mmap
    capacity: int  # pixel bytes it holds
    gen: np.ndarray  # the u64 at [8:16), a view into mm
    holder: Any = None  # the message of the frame in it (None: free)
    freed: float = 0.0  # when it was last freed (the one freed longest ago is reused first)


class Pool:
    """Capture's slots: :meth:`put` copies a frame into a free slot and returns the handle's fields; the caller
    frees the slot with :meth:`release` once the frame is through (see the module's rules)."""

    def __init__(self, secret: bytes, max_slots: int, shm_dir: Path = SHM_DIR) -> None:
        self.token, self.max_slots, self.dir = token(secret), max_slots, shm_dir
        self.pid = os.getpid()
        self.slots: list[Slot] = []
        self.serial = 0
        self.cleaned = remove(self.token, dead_only=True, shm_dir=shm_dir)  # those of captures killed before us

    @property
    def bytes(self) -> int:
        return sum(HEAD + s.capacity for s in self.slots)

    def put(self, img: np.ndarray, holder: Any) -> tuple[np.ndarray, str, int, int] | None:
        """``img`` copied into a free slot held by ``holder``: (the slot's pixels as an array, segment name,
        generation, offset); None when no slot is free (the frame goes on the wire)."""
        nbytes = img.nbytes
        free = [s for s in self.slots if s.holder is None]
        fits = [s for s in free if s.capacity >= nbytes]
        if fits:
            slot = min(fits, key=lambda s: s.freed)
        elif len(self.slots) < self.max_slots and self.bytes + HEAD + nbytes <= MAX_POOL_BYTES:
            slot = self._create(nbytes)
        elif free and self.bytes - free[0].capacity + nbytes <= MAX_POOL_BYTES:
            self._destroy(min(free, key=lambda s: s.freed))  # too small for this frame: made again, bigger
            slot = self._create(nbytes)
        else:
            return None
        g = int(slot.gen[0])
        slot.gen[0] = g + 1  # odd: being written
        view = np.frombuffer(slot.mm, np.uint8, count=nbytes, offset=HEAD).reshape(img.shape)
        np.copyto(view, img)
        slot.gen[0] = g + 2
        slot.holder = holder
        return view, slot.name, g + 2, HEAD

    def held_by(self) -> list[Any]:
        return [s.holder for s in self.slots if s.holder is not None]

    def release(self, holder: Any, now: float | None = None) -> None:
        for s in self.slots:
            if s.holder is holder:
                s.holder, s.freed = None, time.monotonic() if now is None else now

    def _create(self, nbytes: int) -> Slot:
        self.serial += 1
        name = f"{PREFIX}{self.token}-{self.pid}-{self.serial}"
        path = self.dir / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, HEAD + nbytes)
            mm = mmap.mmap(fd, HEAD + nbytes, mmap.MAP_SHARED | POPULATE, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        mm[0:8] = MAGIC
        slot = Slot(name, mm, nbytes, np.frombuffer(mm, np.uint64, count=1, offset=8))
        slot.gen[0] = 0
        self.slots.append(slot)
        return slot

    def _destroy(self, slot: Slot) -> None:
        self.slots.remove(slot)
        try:
            os.unlink(self.dir / slot.name)
        except OSError:
            pass
        del slot.gen  # the view must go before the mapping can close
        try:
            slot.mm.close()
        except BufferError:
            pass  # an array still looks at it (a message not yet collected): the mapping goes with it

    def close(self) -> None:
        """Unlink every segment of this pool (capture ends)."""
        for s in list(self.slots):
            self._destroy(s)


# ----------------------------------------------------------------------------------------------- consumer


@dataclass
class _Map:
    mm: mmap.mmap
    size: int
    used: float


class Reader:
    """A consumer's view of a pipeline's segments: a handle's pixels, checked (:class:`Refused`, :class:`Stale`).
    ``copy``: return a private copy, checked against the generation after copying (the composite, which holds
    frames while their emotions come); else a read-only view into the segment (detect, which checks
    :meth:`intact` after its work)."""

    def __init__(self, tok: str, *, copy: bool, shm_dir: Path = SHM_DIR) -> None:
        self.token, self.copy, self.dir = tok, copy, shm_dir
        self.maps: OrderedDict[str, _Map] = OrderedDict()

    def image(self, seg: str, gen: int, off: int, shape: tuple[int, ...]) -> np.ndarray:
        m = NAME_RE.fullmatch(seg)
        if m is None or not hmac.compare_digest(m.group(1), self.token):
            raise Refused(f"segment {seg[:80]!r} is not this pipeline's")
        mp = self._map(seg)
        nbytes = int(np.prod(shape))
        if off < HEAD or off + nbytes > mp.size:
            raise Refused(f"{nbytes} bytes at offset {off} do not lie within the {mp.size} bytes of {seg}")
        if self._gen(mp) != gen:
            raise Stale(f"{seg} holds generation {self._gen(mp)}, not {gen}")
        view = np.frombuffer(mp.mm, np.uint8, count=nbytes, offset=off).reshape(shape)
        if not self.copy:
            return view
        out = view.copy()
        if self._gen(mp) != gen:
            raise Stale(f"{seg} was written while it was read")
        return out

    def intact(self, seg: str, gen: int) -> bool:
        """The slot still holds the frame of generation ``gen``."""
        mp = self.maps.get(seg)
        return mp is not None and self._gen(mp) == gen

    @staticmethod
    def _gen(mp: _Map) -> int:
        return int.from_bytes(mp.mm[8:16], "little")

    def _map(self, seg: str) -> _Map:
        now = time.monotonic()
        mp = self.maps.get(seg)
        if mp is not None:
            mp.used = now
            self.maps.move_to_end(seg)
            return mp
        self._sweep(now)
        try:
            fd = os.open(self.dir / seg, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise Refused(f"segment {seg}: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise Refused(f"segment {seg} is not a private file of this user")
            if st.st_size < HEAD + 1 or st.st_size > (1 << 34):
                raise Refused(f"segment {seg} is {st.st_size} bytes")
            mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED | POPULATE, mmap.PROT_READ)
        except OSError as e:
            raise Refused(f"segment {seg}: {e.strerror}") from None
        finally:
            os.close(fd)
        if mm[0:8] != MAGIC:
            mm.close()
            raise Refused(f"segment {seg} is not a frame slot")
        mp = self.maps[seg] = _Map(mm, st.st_size, now)
        return mp

    def _sweep(self, now: float) -> None:
        while len(self.maps) >= MAX_MAPS:
            self._drop(next(iter(self.maps)))
        for seg in [s for s, m in self.maps.items() if now - m.used > IDLE_MAP_S]:
            self._drop(seg)

    def _drop(self, seg: str) -> None:
        mp = self.maps.pop(seg)
        try:
            mp.mm.close()
        except BufferError:
            pass  # a frame still looks at it: the mapping goes when that array does
