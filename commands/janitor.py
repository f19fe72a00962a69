"""The launcher's janitor: when the launcher dies, however it dies (SIGKILL too), its stages die and its private run
folder (sockets, the pipeline secret) and its shared-memory segments go.

    python -m dogfilter.commands.janitor FOLDER      (started by the launcher, commands/run.py; not for users)

The launcher holds the only write end of the janitor's stdin and writes the pid of each stage it starts.  End of
file is the launcher's end: each stage still alive (and still one of that run's: its command line names FOLDER) gets
SIGTERM, then SIGKILL two seconds later, and FOLDER is removed.  After a clean stop the launcher has done all that
already and the janitor finds nothing left to do.  Each stage also has a parent-death signal (``prctl``), and a
folder left behind by a launcher and a janitor that were both killed is cleaned at the next launcher's start
(:func:`clean_stale`).  Only the standard library: it starts in tens of milliseconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from dogfilter.common.children import alive, start_time

MARKER = "launcher"  # in a run folder: "PID START_TIME" of the launcher that owns it


def members(folder: Path, pids: list[int] | None = None) -> list[int]:
    """The processes (of ``pids``, else of all this user's) whose command line names ``folder``: that run's stages."""
    mine = str(folder).encode()
    out: list[int] = []
    if pids is None:
        try:
            pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        except OSError:
            return out
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if pid != os.getpid() and mine in cmd and os.stat(f"/proc/{pid}").st_uid == os.getuid() and alive(pid):
                out.append(pid)
        except OSError:
            continue
    return out


def stop(folder: Path, pids: list[int] | None = None, grace_s: float = 2.0) -> None:
    """End the stages of the run in ``folder`` (SIGTERM, then SIGKILL) and remove the folder."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 1.0)):
        left = members(folder, pids)
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        end = time.monotonic() + wait
        while left and time.monotonic() < end:
            time.sleep(0.05)
            left = members(folder, left)
        if not left:
            break
    remove_segments(folder)
    shutil.rmtree(folder, ignore_errors=True)


def remove_segments(folder: Path) -> int:
    """The shared-memory segments of the run in ``folder`` (named after its secret: transport/shmnames.py)."""
    from dogfilter.common.transport import shmnames

    tok = shmnames.token_of_secret_file(folder / "secret")
    return shmnames.remove(tok) if tok else 0


def clean_stale(tmp: str | None = None) -> list[Path]:
    """Run folders whose launcher is gone (killed with its janitor): their stages stopped, the folders removed."""
    cleaned: list[Path] = []
    if not Path("/proc/self/stat").exists():
        return cleaned  # no /proc (not Linux): whether a launcher lives cannot be told; nothing is removed
    for d in Path(tmp or tempfile.gettempdir()).glob("dogfilter-*"):
        try:
            if d.is_symlink() or d.stat().st_uid != os.getuid():
                continue
            pid, started = (d / MARKER).read_text().split()
        except (OSError, ValueError):
            continue  # not a launcher's run folder (the run folder of honcho's stages has no marker)
        if start_time(int(pid)) != started:
            stop(d)
            cleaned.append(d)
    return cleaned


def main() -> int:
    folder = Path(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the launcher's to handle: it closes our stdin
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pids: list[int] = []
    for line in sys.stdin:  # until the launcher's end
        if line.strip().isdigit():
            pids.append(int(line))
    stop(folder, pids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
