"""What every service process shares: its command line, logging, and how it runs and exits."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from dogfilter.common.errors import DogfilterError


def env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"DOGFILTER_{name.upper()}", default)


def base_parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"dogfilter-{stage}", description=description)
    p.add_argument("--stream", default=env("stream", "cam0"), help="stream id (default cam0)")
    p.add_argument("--mode", choices=["live", "file"], default=env("mode", "live"),
                   help="live: newest frame wins, drops counted; file: every frame, in order (back-pressure)")
    p.add_argument("--log-level", default=env("log_level", "INFO"))
    p.add_argument("--curve-dir", default=env("curve_dir"),
                   help="folder of CURVE keys (see `dogfilter keys`): encrypts and authenticates the classify link")
    return p


def setup_logging(stage: str, level: str = "INFO") -> logging.Logger:
    name = os.environ.get("HONCHO_PROCESS_NAME") or stage
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO),
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    return logging.getLogger(stage)


def run_service(stage: str, main: Callable[[], int | None]) -> None:
    """Run a service's main loop: user errors are one line and exit 2; Ctrl-C / SIGTERM exit quietly."""
    import signal

    def _term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        code = main() or 0
    except DogfilterError as e:
        print(f"dogfilter-{stage}: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
