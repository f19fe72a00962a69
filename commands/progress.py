"""Progress of a long ``dogfilter file`` job, on stderr: a tqdm bar on a terminal (frames done of the total,
frames/s, time left), one plain line every few seconds elsewhere (a log, CI); nothing before the first frame."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PLAIN_EVERY_S = 5.0


class Progress:
    def __init__(self, total: int | None, out: TextIO | None = None, desc: str = "dogfilter file") -> None:
        self.total, self.out, self.desc = total or None, out or sys.stderr, desc
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.bar: Any = None
        self.done = 0
        self.t0 = time.monotonic()
        self.last_line = self.t0

    def update(self, done: int) -> None:
        """``done`` frames written so far (a count, not an increment)."""
        if done <= self.done:
            return
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, desc=self.desc, unit="frame", file=self.out, dynamic_ncols=True,
                                leave=True)
            self.bar.update(done - self.done)
        self.done = done
        now = time.monotonic()
        if not self.tty and now - self.last_line >= PLAIN_EVERY_S:
            self.last_line = now
            print(self.line(now), file=self.out, flush=True)

    def line(self, now: float) -> str:
        rate = self.done / max(1e-6, now - self.t0)
        if self.total:
            left = max(0, self.total - self.done) / rate if rate > 0 else float("inf")
            return (f"{self.desc}: {self.done}/{self.total} frames ({100 * self.done / self.total:.0f}%), "
                    f"{rate:.1f} frames/s, {left:.0f} s left")
        return f"{self.desc}: {self.done} frames, {rate:.1f} frames/s"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
