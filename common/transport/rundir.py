"""The run folder: what one user's pipeline keeps private on one host (its ``ipc://`` sockets, its secret).

Under honcho or systemd the five stages find each other through the default link addresses, ``ipc://{run}/frames``
and so on, where ``{run}`` is this folder: ``--run-dir``, else ``$XDG_RUNTIME_DIR/dogfilter`` (the user's own runtime
folder), else ``/tmp/dogfilter-UID``.  It is made 0700 on first use, and refused (one line) when it is not a folder
of this user that nobody else may open: a folder another local user made first (to listen in, or to hand us their
sockets), or one a user opened up by mistake.  A process of another user cannot connect to a socket in it, so it can
take no frame and no face crop, and cannot read the secret.  (The launcher, ``dogfilter file|image|live``, makes a
fresh private folder of its own per run instead.)
"""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from pathlib import Path

from dogfilter.common.errors import DogfilterError

RUN = "{run}"  # in a link address: the run folder


def default_run_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "dogfilter"
    return Path(tempfile.gettempdir()) / f"dogfilter-{os.getuid()}"


def private_dir(path: str | Path | None = None) -> Path:
    """The run folder ``path`` (default: :func:`default_run_dir`), made 0700 if missing; refused unless it is a
    folder (not a link) of this user that no other user may open."""
    d = Path(path) if path else default_run_dir()
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        pass  # made before (or by another stage a moment ago): checked below like any
    except OSError as e:
        raise DogfilterError(f"cannot make the run folder {d}: {e.strerror}") from None
    try:
        st = os.lstat(d)
    except OSError as e:
        raise DogfilterError(f"cannot open the run folder {d}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DogfilterError(f"run folder {d} is not a folder (a link or a file): remove it, or give --run-dir")
    if st.st_uid != os.getuid():
        raise DogfilterError(f"run folder {d} belongs to another user (uid {st.st_uid}): refusing to put this "
                             "pipeline's sockets and secret there; give --run-dir (DOGFILTER_RUN_DIR)")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DogfilterError(f"run folder {d} is open to other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                             f"run `chmod 700 {d}`")
    return d


def resolve(o: argparse.Namespace) -> None:
    """Put the run folder into a stage's parsed options: ``{run}`` in its link addresses (``*_addr``,
    ``--connect``), and the default secret file beside them.  The folder is made and checked only when an address
    uses it or ``--run-dir`` names it (else a stage that needs the secret finds it in the default run folder)."""
    connect = getattr(o, "connect", None) or []
    # a worker given --connect takes its jobs from those hosts: its own link addresses are not used
    wants = [] if connect else [k for k, v in vars(o).items()
                                if k.endswith("_addr") and isinstance(v, str) and RUN in v]
    if not (wants or any(RUN in c for c in connect) or getattr(o, "run_dir", None)):
        return
    d = str(private_dir(getattr(o, "run_dir", None)))
    for k in wants:
        setattr(o, k, getattr(o, k).replace(RUN, d))
    if connect:
        o.connect = [c.replace(RUN, d) for c in connect]
    if hasattr(o, "secret_file") and not o.secret_file:
        o.secret_file = os.path.join(d, "secret")
