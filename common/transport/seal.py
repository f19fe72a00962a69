"""Stream seals: only the process that owns a stream can start it, number its frames and end it.

Capture (the owner of its streams) seals every frame and every end of stream it sends: ``meta.seal`` is an HMAC, with
the pipeline's shared secret, of (stream, epoch, frame number, capture's own time stamp ``ts.capture``, and for an end
of stream its last frame).  So the age of a frame is what capture sealed: a peer that restamps ``ts.capture`` to
pass an old frame as fresh breaks the seal.  Detect
forwards the seal with the frame; composite and display accept a frame, a skip, a new epoch or an end of stream only
with a valid seal.  So a process that can connect to a port but does not hold the secret cannot end the display,
reset a stream to a future epoch, or inject frames; it only adds to the drop counters (``unsealed``).

The secret is a file only its owner can read (0600), shared by the processes of one pipeline: the launcher makes a
fresh one per run in its private folder; under honcho or systemd every stage reads the same default file, created on
first use in the user's private run folder (``rundir.py``: 0700, refused if another user owns or may open it).
Workers (detect, classify) never need it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.wire import Message, WireError

SECRET_BYTES = 32


def default_secret_path() -> Path:
    """``secret`` in the user's private run folder (``rundir.py``), made and checked here."""
    from dogfilter.common.transport.rundir import private_dir

    return private_dir() / "secret"


def check_private(path: Path, what: str) -> None:
    """Refuse a secret that others can read (or write)."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DogfilterError(f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):04o}): "
                             f"run `chmod 600 {path}`")


def create_secret(path: Path) -> Path:
    """A fresh pipeline secret written to ``path``, readable by its owner only (0600); FileExistsError if one is
    there.  The one place a secret is made: the launcher's per-run one, the default one, the benchmarks'."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(SECRET_BYTES) + "\n")
    return path


def load_or_create_secret(path: str | Path | None) -> bytes:
    """The pipeline secret at ``path`` (default: :func:`default_secret_path`), created 0600 if missing."""
    p = Path(path) if path else default_secret_path()
    if not p.exists():
        try:
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            create_secret(p)
        except FileExistsError:
            pass  # another stage made it a moment ago: read theirs
        except OSError as e:
            raise DogfilterError(f"cannot create the pipeline secret {p}: {e.strerror}") from None
    try:
        check_private(p, "pipeline secret")
        text = p.read_text().strip()
    except OSError as e:
        raise DogfilterError(f"cannot read the pipeline secret {p}: {e.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise DogfilterError(f"pipeline secret {p} is not at least 32 hex digits")
    return key


class Sealer:
    """Seals messages about a stream's frames, and checks seals."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def from_file(cls, path: str | Path | None) -> Sealer:
        return cls(load_or_create_secret(path))

    def _mac(self, msg: Message) -> str:
        end = msg.meta.get("last") if msg.kind == "eos" else None
        captured = msg.ts.get("capture")  # the frame's age is judged by this: sealed, so nobody restamps it
        text = (f"{msg.stream}\0{msg.epoch}\0{msg.frame}\0{'eos' if msg.kind == 'eos' else 'frame'}\0{end}"
                f"\0{captured!r}")
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def web_token(self, given: str | None, host: str) -> str | None:
        """The token a browser page wants: the one given, else beyond loopback one derived from the secret (every
        stage of the pipeline derives the same), else none."""
        from dogfilter.common.transport.sockets import is_local

        if given:
            return given
        if is_local(f"tcp://{host}:0"):
            return None
        return hmac.new(self.key, b"dogfilter web token", hashlib.sha256).hexdigest()[:24]

    def seal(self, msg: Message) -> Message:
        msg.meta["seal"] = self._mac(msg)
        return msg

    def check(self, msg: Message) -> bool:
        seal = msg.meta.get("seal")
        return isinstance(seal, str) and hmac.compare_digest(seal, self._mac(msg))

    def admit(self, msg: Message) -> None:
        """For :func:`wire.decode` (``admit``): a frame without a valid seal is refused before its pixels are
        decoded (counted ``unsealed``)."""
        if msg.kind in ("frame", "detections", "skip", "composited", "eos") and not self.check(msg):
            raise WireError(f"{msg.kind} of stream {msg.stream} without capture's seal", "unsealed")
