"""The names of a pipeline's shared-memory segments, and their removal: the standard library only (the launcher's
janitor uses it, and must start in tens of milliseconds).  The segments themselves: ``shm.py``.

A segment is a file in ``/dev/shm`` named ``dogfilter-shm-TOKEN-PID-SERIAL``: ``TOKEN`` is derived from the pipeline
secret (so every stage holding the secret knows which names are its pipeline's, and a run's launcher can remove
them all), ``PID`` the capture process that made it (a capture that starts removes those of dead captures),
``SERIAL`` never reused by that process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from dogfilter.common.children import alive

SHM_DIR = Path("/dev/shm")
PREFIX = "dogfilter-shm-"
NAME_RE = re.compile(r"dogfilter-shm-([0-9a-f]{16})-([0-9]{1,10})-([0-9]{1,10})")


def token(secret: bytes) -> str:
    """The name prefix of the segments of the pipeline whose secret is ``secret``."""
    return hmac.new(secret, b"dogfilter shm names", hashlib.sha256).hexdigest()[:16]


def token_of_secret_file(path: str | Path) -> str | None:
    """:func:`token` of the secret in the file ``path`` (None: no readable secret there)."""
    try:
        key = bytes.fromhex(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
    return token(key) if len(key) >= 16 else None


def segments(tok: str, shm_dir: Path = SHM_DIR) -> list[Path]:
    """The segments of the pipeline ``tok`` that exist now."""
    try:
        return [p for p in shm_dir.glob(f"{PREFIX}{tok}-*") if NAME_RE.fullmatch(p.name)]
    except OSError:
        return []


def remove(tok: str, *, dead_only: bool = False, shm_dir: Path = SHM_DIR) -> int:
    """Unlink the segments of the pipeline ``tok`` (``dead_only``: only those whose capture process is gone).
    Returns how many went."""
    n = 0
    for p in segments(tok, shm_dir):
        m = NAME_RE.fullmatch(p.name)
        assert m is not None  # segments() keeps only such names
        if dead_only and alive(int(m.group(2))):
            continue
        try:
            if p.is_symlink() or p.stat().st_uid != os.getuid():
                continue
            p.unlink()
            n += 1
        except OSError:
            continue
    return n
