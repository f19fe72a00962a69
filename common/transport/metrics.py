"""Counters, latency windows and the per-stage latency breakdown read from a message's timestamps.

Each stage stamps ``msg.ts[stage]`` (wall-clock seconds) as the frame passes; the display turns consecutive
stamps into per-hop latencies.  Each stage also attaches its counters (drops, malformed messages...) to what it
sends, so the last stage sees every stage's counts without another socket.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import Counter, deque

# the order in which stamps are taken along the pipeline; hop "a→b" is ts[b] − ts[a]
STAGES = ["capture", "detect_in", "detect", "composite_in", "composite", "display"]

# Every counter a stage reports, by name: a fixed vocabulary per stage.  The display keeps, shows and exports (as
# /metrics series) only these: a name a peer invents in a message's ``stats`` never becomes a series, so a hostile
# worker cannot make the statistics grow or churn.  A counter added to a stage must be added here
# (tests/test_trust_insiders.py checks the sources against it).
# WireError.fault: every receiver counts them
WIRE_FAULTS = frozenset({"malformed", "oversized", "bad_value", "unsealed", "shm_refused", "shm_stale"})
PROTOCOL_EVENTS = frozenset({"unexpected", "unknown_job", "unknown_worker", "too_many_workers", "refused_worker",
                             "workers_stalled", "workers_benched_bad_replies", "workers_expired", "workers_evicted",
                             "benched_announces", "late_replies", "jobs_given_back", "resent_unconfirmed",
                             "bad_reply"})
_SHARED = WIRE_FAULTS | PROTOCOL_EVENTS
EVENTS: dict[str, frozenset[str]] = {
    "source": frozenset({"frames", "frames_dropped", "files_skipped", "files_truncated", "frames_in",
                         "frames_replaced", "bad_frames", "results_out", "results_replaced"}),
    "capture": _SHARED | {"frames_lost_in_workers", "unknown_acks", "tabs_timed_out", "frames_shared", "shm_full"},
    "detect": _SHARED | {"frames", "faces", "stale_frames", "frames_dropped", "full_scans", "scan_passes",
                         "scans_skipped", "meshed", "mesh_rejected", "mesh_carried"},
    "classify": _SHARED | {"batches", "faces", "replies_dropped"},
    "composite": _SHARED | {"frames", "busy", "stale_frames", "frames_dropped", "faces_read_earlier",
                            "updated_after_paint", "late_results", "frames_lost", "faces_unclassified", "faces_late",
                            "jobs_dropped", "display_dropped", "too_many_streams", "unsealed"},
    "display": _SHARED | {"stale_frames", "too_many_streams", "unsealed", "results_not_returned",
                          "stats_not_written", "streams_forgotten", "jpeg_encoded"},
}


def known_events(stage: str, counts: dict[str, int]) -> dict[str, int] | None:
    """``counts`` of ``stage`` with only the names of its vocabulary (None: not a stage of the pipeline)."""
    vocabulary = EVENTS.get(stage)
    if vocabulary is None:
        return None
    return {k: v for k, v in counts.items() if k in vocabulary}


def peer_name(ident: bytes | str | None) -> str:
    """A peer's id as it can safely be logged and shown: printable ASCII, at most 64 characters."""
    if ident is None:
        return "?"
    text = ident.decode("utf-8", "replace") if isinstance(ident, bytes) else str(ident)
    text = ascii(text)[1:-1]
    return text if len(text) <= 64 else text[:61] + "..."


class Counters(Counter):
    """Named event counts of one stage, logged at most every ``every`` seconds.

    :meth:`drop` counts a dropped message by kind of fault and logs at most one line per kind every
    ``every`` seconds, with how many happened since (so a flood of bad input cannot flood the log); what a peer
    sent is never logged raw: reasons are cut short and peer ids escaped.
    """

    def __init__(self, stage: str, log: logging.Logger, every: float = 5.0) -> None:
        super().__init__()
        self.stage, self.log, self.every = stage, log, every
        self._last_log = time.monotonic()
        self._drop_logged: dict[str, tuple[float, int]] = {}  # kind → (when last logged, count then)

    def drop(self, what: str, why: str, n: int = 1, peer: bytes | str | None = None) -> None:
        self[what] += n
        now = time.monotonic()
        last, count_then = self._drop_logged.get(what, (-1e9, 0))
        if now - last < self.every:
            return
        self._drop_logged[what] = (now, self[what])
        since = self[what] - count_then
        who = f" from {peer_name(peer)}" if peer is not None else ""
        reason = ascii(str(why))[1:-1][:200]
        self.log.warning("dropped %s%s: %s (%d since the last such line, %d in all)", what.replace("_", " "), who,
                         reason, since, self[what])

    def maybe_log(self, extra: str = "") -> None:
        now = time.monotonic()
        if now - self._last_log >= self.every and (extra or self):
            self._last_log = now
            self.log.info("%s%s", extra, " ".join(f"{k}={v}" for k, v in sorted(self.items())))


class Window:
    """The last ``n`` values of a latency (ms), with percentiles."""

    def __init__(self, n: int = 300) -> None:
        self.values: deque[float] = deque(maxlen=n)

    def add(self, v: float) -> None:
        self.values.append(v)

    def summary(self) -> dict[str, float | None]:
        if not self.values:
            return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
        v = sorted(self.values)  # one sort for the three; np.percentile costs ~8x as much on 300 values
        return {"p50": _r(_pct(v, 50)), "p95": _r(_pct(v, 95)), "p99": _r(_pct(v, 99)), "max": _r(v[-1]), "n": len(v)}


def _pct(v: list[float], q: float) -> float:
    """The ``q`` th percentile of sorted ``v``, as ``np.percentile`` (linear) computes it, to the same float."""
    pos = q / 100 * (len(v) - 1)
    lo = int(pos)
    t = pos - lo
    if t == 0.0:
        return v[lo]
    a, b = v[lo], v[lo + 1]
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 2)


def hops(ts: dict[str, float]) -> dict[str, float]:
    """Per-hop latency in ms from a message's stamps, plus the end-to-end ``capture→display``."""
    out = {}
    seen = [s for s in STAGES if s in ts]
    for a, b in zip(seen, seen[1:], strict=False):
        out[f"{a}→{b}"] = 1000.0 * (ts[b] - ts[a])
    if "capture" in ts and "display" in ts:
        out["capture→display"] = 1000.0 * (ts["display"] - ts["capture"])
    return out


class Histogram:
    """A latency histogram in seconds, Prometheus style: cumulative counts under each bound, a sum and a count."""

    BOUNDS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS) + 1)  # the last: above every bound
        self.sum = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.BOUNDS, seconds)] += 1
        self.sum += seconds

    def buckets(self) -> list[tuple[str, int]]:
        """(upper bound, cumulative count), ending with +Inf."""
        out, total = [], 0
        for bound, n in zip([*map(str, self.BOUNDS), "+Inf"], self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Rate:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque()

    def tick(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        self.times.append(t)
        while self.times and t - self.times[0] > self.window_s:
            self.times.popleft()

    def per_second(self, now: float | None = None) -> float:
        """Events per second over the last ``window_s`` seconds up to now: 0 when nothing has come for a while."""
        now = time.monotonic() if now is None else now
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        span = max(now - self.times[0], self.times[-1] - self.times[0])
        return (len(self.times) - 1) / span if span > 0 else 0.0
