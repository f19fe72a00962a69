"""The one-shot path: the five stages' own handlers, chained in one process, for a picture or a short clip.

Starting five processes (and their models) costs a few seconds, which is all the time a photo needs.  Since every
stage is a pure handler (message in, messages out), ``dogfilter image`` and short ``dogfilter file`` jobs run the
same handlers (``Capture``, ``Detect``, ``Classify``, ``Composite``, ``Display``) one after the other in this
process, with the same options and the same messages (sealed, checked), and no sockets.  Streaming and long files
keep the five processes.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import time
from typing import Any

from dogfilter.common import options, stage
from dogfilter.common.media.sinks import finish
from dogfilter.common.media.sources import source_class
from dogfilter.common.transport import wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import Peer
from dogfilter.common.transport.seal import Sealer

MAX_FRAMES = 150  # "short": at most this many frames in all (5 s of 30 frames/s video)
log = logging.getLogger("dogfilter")


def frames_in(spec: str) -> int | None:
    """How many frames a file input has (None: unknown, or not a file: a camera, the demo): its kind says."""
    return source_class(spec).frames_in(spec)


def short(sources: list[str]) -> bool:
    counts = [frames_in(s) for s in sources]
    known = [n for n in counts if n is not None]
    return len(known) == len(counts) and sum(known) <= MAX_FRAMES


def stage_options(name: str, values: dict[str, Any]) -> argparse.Namespace:
    """The options a stage process would get from the launcher: its declared defaults, then ``values``."""
    from dogfilter.commands.run import to_args

    st = stage.stage(name)
    groups = st.groups()
    declared = {o.name: o for _, g in groups for o in g}
    argv = [a for opt, v in values.items() if opt in declared for a in to_args(declared[opt], v)]
    return options.parse(st.script, "", groups, argv)


def run(values: dict[str, Any], exit_after: list[str], progress: Any = None) -> int:
    from dogfilter.services import capture, classify, composite, detect, display

    values = {**values, "mode": "file"}
    # one batch per job: nothing else would join it here (classify's batch wait is for jobs of other processes)
    o = {s: stage_options(s, {**values, "batch_wait_ms": 0.0}) for s in stage.NAMES}
    wire.configure(o["capture"].max_pixels)
    sealer = Sealer(secrets.token_bytes(32))
    count = {s: Counters(s, logging.getLogger(s)) for s in o}

    feeds, rates = capture.open_feeds(o["capture"], wake=None)
    cap = capture.Capture(feeds, sealer, count["capture"], mode="file", fps=rates, size=None)
    det = detect.make_handler(o["detect"], count["detect"])
    cls = classify.make_handler(o["classify"], count["classify"], "inline")
    peer = Peer(b"inline", 1 << 30, {"classes": cls.clf.classes}, time.monotonic())
    comp = composite.make_handler(o["composite"], sealer, count["composite"])
    dp = o["display"]
    disp = display.Display(sealer, count["display"], live=False, max_age_s=dp.max_age_ms / 1000,
                           exit_after=exit_after)
    recorders = display.outputs(dp.output)
    complete = False
    try:
        code = _loop(cap, det, cls, peer, comp, disp, recorders, dp.stats_out, progress)
        complete = True
        return code
    finally:
        try:
            finish(recorders.values(), complete)  # only a complete output is renamed onto its path
        finally:
            display.write_stats(dp.stats_out, disp)


def _loop(cap: Any, det: Any, cls: Any, peer: Peer, comp: Any, disp: Any, recorders: dict, stats_out: Any,
          progress: Any = None) -> int:
    from dogfilter.services.display import record

    while not disp.finished():
        now = time.time()
        sent = cap.tick(now)  # at most one: the next frame or end of stream
        for msg in sent:
            msg.meta["job"] = 0  # as a dispatcher's job would be (detect keeps it in file mode)
            for out in det.on_message(msg, now):
                comp.on_message(wire.decode(wire.encode(out)), now)  # checked as on the wire
        while (job := comp.next_job()) is not None:
            job.msg.meta["job"] = 0
            for reply in cls.on_message(job.msg, now) + cls.tick(now):
                comp.on_reply(peer, job, reply, now)
        for out in comp.tick(time.time()):
            for shown in disp.on_message(out, time.time()):
                record(recorders, shown)
        if progress is not None:
            progress.update(disp.total.frames)
        if not sent and cap.finished() and not comp.streams:
            break
    for stream, n in disp.lost.items():
        log.error("stream %s: %d frames lost", stream, n)
    return 3 if disp.lost else 0

