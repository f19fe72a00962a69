"""What every service process does around its own loop: parse its declared options, set up logging, apply the
pipeline-wide limits (and one OpenCV thread), turn SIGTERM/SIGHUP/SIGINT into a clean exit (never inside a step
marked :func:`uninterrupted`), and show a user's error as one line (exit code 2).

A service file in ``services/`` declares ``GROUPS`` (its options and the shared ones it reads) and a
``run(options, log)`` socket loop, and its ``cli()`` is ``service.cli(STAGE, __doc__, GROUPS, run)``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cv2

from dogfilter.common import health, options
from dogfilter.common.errors import DogfilterError
from dogfilter.common.options import Option
from dogfilter.common.transport import rundir, wire

Run = Callable[[argparse.Namespace, logging.Logger], int | None]


def setup_logging(stage: str, level: str = "INFO") -> logging.Logger:
    name = os.environ.get("HONCHO_PROCESS_NAME") or stage
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO),
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    return logging.getLogger(stage)


class _Held:
    depth = 0  # uninterrupted() blocks entered (signal handlers run in the main thread only)
    pending = False  # a stop came meanwhile


def interrupt(*_: Any) -> None:
    """A signal handler: stop the way Ctrl-C does (finally blocks run: sockets closed, files flushed); inside
    :func:`uninterrupted`, once its step is done."""
    if _Held.depth:
        _Held.pending = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A step that a stop must not split (a frame written to a recording and counted; a recording committed): a
    SIGTERM, SIGHUP or SIGINT that comes meanwhile raises its KeyboardInterrupt right after it (unless the step
    fails: its own error goes on instead).  Main thread only."""
    _Held.depth += 1
    try:
        yield
    finally:
        _Held.depth -= 1
        stop = not _Held.depth and _Held.pending
        if stop:
            _Held.pending = False
    if stop:
        raise KeyboardInterrupt


def main(stage: str, doc: str, groups: Iterable[tuple[str, Sequence[Option]]], run: Run,
         argv: Sequence[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Ctrl-C too (not where it is ignored)
        signal.signal(signal.SIGINT, interrupt)
    try:
        o = options.parse(f"dogfilter-{stage}", doc, groups, argv)
        log = setup_logging(stage, o.log_level)
        rundir.resolve(o)  # {run} in the link addresses: the user's private run folder
        wire.configure(o.max_pixels)
        health.serve(stage, o.health_port, o.health_host)  # --health-port: /healthz, /readyz, /metrics
        cv2.setNumThreads(1)  # one core per process, as onnxruntime has: scale by running more processes. OpenCV's
        # own pool spins a second thread on every resize; beside the other stages it took ~18 % of a core in detect
        return run(o, log) or 0
    except DogfilterError as e:
        print(f"dogfilter-{stage}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def cli(stage: str, doc: str, groups: Iterable[tuple[str, Sequence[Option]]], run: Run) -> None:
    """A service's console-script entry point."""
    sys.exit(main(stage, doc, groups, run))
