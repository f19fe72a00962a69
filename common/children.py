"""Ending child processes: SIGTERM to every one still running, one bounded wait for them all, SIGKILL to what is
left. The launcher, the virtual camera's and the PipeWire source's gst-launch children, the namespace harness and
the benchmarks all end their children this way.  And whether a process is there at all (:func:`alive`: the
janitor's stages, the shared-memory segments of dead captures).  The standard library only: the janitor starts in
tens of milliseconds."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def _signal(p: subprocess.Popen, sig: int, group: bool) -> None:
    try:
        if group:  # a child started with start_new_session: its whole process group
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
    except ProcessLookupError:
        pass


def stop(procs: Iterable[subprocess.Popen], wait_s: float = 5.0, group: bool = False) -> None:
    """SIGTERM each child still running (in the order given), wait up to ``wait_s`` for all of them together, then
    SIGKILL (and reap) any that is still there."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            _signal(p, signal.SIGTERM, group)
    deadline = time.monotonic() + wait_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(p, signal.SIGKILL, group)
            p.wait()


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is no such process: with the pid it
    names one process, even after pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pid: int) -> bool:
    """Process ``pid`` exists and is not a zombie (one killed and not yet reaped is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
