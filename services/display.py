"""display: show, record and serve the composited frames; measure fps, per-stage latency and drops, per stream.

in       composited frames and ends of stream from composite (PULL bound at the display link), sealed by capture
out      an OpenCV window per stream (--window; q quits), recordings (--output: a video, an image or a folder/;
         STREAM=PATH for one of several streams; written aside and renamed onto PATH only once complete: a file
         run cut short or a write failure leaves nothing there), a browser view (--http-port: each stream's video
         and statistics, and Prometheus metrics at /metrics; beyond loopback behind a token), statistics as JSON
         (--stats-out), a virtual camera other apps open (--virtual-camera [STREAM]: PipeWire or v4l2loopback,
         common/media/vcam.py; it keeps sending the last frame through stalls, and a still frame once its stream
         ended)
how      live: a frame older than --max-age-ms is not shown (after a stall, the backlog is dropped, not replayed);
         exits once every stream has ended (--exit-after: these streams), with code 3 when frames were lost.
         Streams that ended are kept for the view (the last KEEP_ENDED), then forgotten everywhere (statistics,
         browser view, /metrics); a new stream takes the slot of an ended one, or of one silent for IDLE_STREAM_S
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import cv2
import zmq

from dogfilter.common import health, options, service
from dogfilter.common.errors import DogfilterError
from dogfilter.common.media.sinks import Recorder, StreamStats, finish
from dogfilter.common.media.vcam import BACKENDS, FIRST, VirtualCamera
from dogfilter.common.options import Option, non_negative
from dogfilter.common.stage import epoch_order, too_old
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, drain, send
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.sockets import Links
from dogfilter.common.transport.wire import Message

STAGE = "display"
OPTIONS = (
    Option("output", [], "record to a video (.mp4 .avi .mkv ...), an image (.png .jpg) or a folder/; "
           "STREAM=PATH records one stream of several", kind="list", metavar="PATH", launcher=True),
    Option("http_port", 0, "serve the browser view on this port (0: off)", type=non_negative(int), launcher=True),
    Option("http_host", "127.0.0.1", "address the browser view listens on; beyond loopback it needs a token"),
    Option("window", False, "show each stream in an OpenCV window (needs a screen; q quits)", kind="flag"),
    Option("stats_out", None, "write the statistics as JSON to this file, four times a second", metavar="FILE",
           launcher=True),
    Option("keep_running", False, "stay up after the streams end", kind="flag"),
    Option("exit_after", [], "exit once these streams have ended (default: once every stream seen has ended)",
           kind="list", metavar="ID"),
    Option("virtual_camera", None, "publish this stream (no STREAM: the first one) as a camera named \"dogfilter\" "
           "that video-call apps can pick (PipeWire or v4l2loopback); the display then stays up after the stream "
           "ends, showing a still frame (unless --exit-after)", metavar="STREAM", const=FIRST, launcher=True),
    Option("virtual_camera_backend", "auto", "the virtual camera's backend (auto: PipeWire if it runs, else a "
           "v4l2loopback /dev/videoN)", choices=BACKENDS, launcher=True),
)
GROUPS = [(STAGE, OPTIONS), ("pipeline", options.PIPELINE), ("links", options.links("display", "returns"))]
MAX_STREAMS = 64
KEEP_ENDED = 8  # ended streams still shown (statistics, view, /metrics); older ones are forgotten
IDLE_STREAM_S = 60.0  # a stream silent this long (a capture that died without an end) gives its slot to a new one


class Display:
    """The stage without its sockets: which frames to show, and what is known of each stream."""

    def __init__(self, sealer: Sealer, counters: Counters, *, live: bool, max_age_s: float,
                 exit_after: list[str]) -> None:
        self.sealer, self.counters, self.live, self.max_age_s = sealer, counters, live, max_age_s
        self.exit_after = set(exit_after)
        self.streams: OrderedDict[str, StreamStats] = OrderedDict()
        self.epochs: dict[str, int] = {}
        self.ended: OrderedDict[str, int] = OrderedDict()  # streams that ended (→ their epoch), the last 1024
        self.forgotten: list[str] = []  # streams forgotten since the loop last looked (it drops their view)
        self.total = StreamStats()
        self.workers: dict[str, int] = {}
        self.lost: dict[str, int] = {}
        self.vcam: VirtualCamera | None = None

    def on_message(self, msg: Message, now: float) -> list[Message]:
        """The frame to show ([]: nothing to show: an end of stream, or a frame that is dropped)."""
        if msg.kind not in ("composited", "eos"):
            self.counters.drop("unexpected", f"{msg.kind} message on the display link")
            return []
        if not self.sealer.check(msg):
            self.counters.drop("unsealed", f"{msg.kind} of stream {msg.stream} without capture's seal")
            return []
        st = self._stream(msg, now)
        if st is None:
            return []
        self.workers = msg.meta.get("workers", self.workers)
        if msg.kind == "eos":
            st.absorb(msg)
            st.ended = msg.meta["last"]
            if st.frames < st.ended + 1 and not self.live:
                self.lost[msg.stream] = st.ended + 1 - st.frames
            self.counters.log.info("end of stream %s after %d frames", msg.stream, st.frames)
            self.ended[msg.stream] = msg.epoch
            self.ended.move_to_end(msg.stream)
            while len(self.ended) > 1024:
                self.ended.popitem(last=False)
            ended = [name for name, s in self.streams.items() if s.ended is not None]
            for name in ended[:max(0, len(ended) - KEEP_ENDED)]:
                self._forget(name)
            return []
        if self.live and too_old(msg, now, self.max_age_s):
            self.counters["stale_frames"] += 1  # live means live: a backlog after a stall is not replayed
            return []
        msg.stamp(STAGE)
        st.add(msg)
        self.total.add(msg)
        return [msg]

    def tick(self, now: float) -> list[Message]:
        return []  # nothing waits in the display: a frame is shown when it comes

    def wait_s(self, now: float) -> float:
        return HEARTBEAT_S

    def _stream(self, msg: Message, now: float) -> StreamStats | None:
        order = epoch_order(self.epochs.get(msg.stream, self.ended.get(msg.stream)), msg.epoch)
        if order == "old" or (order == "same" and msg.stream not in self.streams):
            self.counters["stale_frames"] += 1  # from before a restart, or of a run that ended and was forgotten
            return None
        if order == "new":
            if msg.stream not in self.streams and len(self.streams) >= MAX_STREAMS and not self._make_room(now):
                self.counters.drop("too_many_streams", f"{MAX_STREAMS} streams already; not {msg.stream}")
                return None
            self.streams[msg.stream], self.epochs[msg.stream] = StreamStats(), msg.epoch
            self.ended.pop(msg.stream, None)
        st = self.streams[msg.stream]
        st.last_heard = now
        return st

    def _make_room(self, now: float) -> bool:
        """Every slot taken: forget the stream that ended first, else the one silent the longest (IDLE_STREAM_S)."""
        ended = [name for name, s in self.streams.items() if s.ended is not None]
        silent = sorted((s.last_heard, name) for name, s in self.streams.items() if now - s.last_heard > IDLE_STREAM_S)
        victim = ended[0] if ended else silent[0][1] if silent else None
        if victim is None:
            return False
        self._forget(victim)
        return True

    def _forget(self, name: str) -> None:
        """A stream leaves every statistic (and, through the loop, the browser view and /metrics)."""
        self.streams.pop(name, None)
        self.epochs.pop(name, None)
        self.forgotten.append(name)
        self.counters["streams_forgotten"] += 1

    def finished(self) -> bool:
        """Every stream waited for has ended."""
        wanted = self.exit_after or set(self.streams)
        return bool(wanted) and all(s in self.ended and (s not in self.streams or self.streams[s].ended is not None)
                                    for s in wanted)

    def _sources(self) -> dict[str, int]:
        """Every stream's source counters, added up (each stage's own counters are the same in every stream)."""
        total: Counter[str] = Counter()
        for s in self.streams.values():
            total.update(s.stages.get("source", {}))
        return dict(total)

    def as_dict(self) -> dict[str, Any]:
        out = self.total.as_dict()
        out["counters"] = {**{k: v for s in self.streams.values() for k, v in s.stages.items()},
                           "source": self._sources(), STAGE: dict(self.counters)}
        out.update(classify_workers=self.workers, streams={k: s.as_dict() for k, s in self.streams.items()},
                   frames_lost=dict(self.lost), elapsed_s=round(time.monotonic() - self.total.started, 2))
        if self.vcam is not None:
            out["virtual_camera"] = self.vcam.stats()
        return out


def outputs(specs: list[str]) -> dict[str | None, Recorder]:
    """``--output`` specs: PATH (every stream, or the only one) or STREAM=PATH."""
    out: dict[str | None, Recorder] = {}
    for spec in specs:
        stream, sep, path = spec.partition("=")
        key = stream if sep and "/" not in stream and os.sep not in stream else None
        out[key] = Recorder(path if key is not None else spec)
    return out


def _web(o: argparse.Namespace, log: logging.Logger, display: Display) -> Any:
    if not o.http_port:
        return None
    from dogfilter.common.media.webview import WebView

    token = display.sealer.web_token(o.web_token, o.http_host)
    from dogfilter.common.media.prometheus import metrics_route

    view = WebView(o.http_host, o.http_port, display.as_dict, token=token, routes={"/metrics": metrics_route(display)},
                   hosts=o.web_hosts)
    log.info("browser view at http://%s:%d/%s", o.http_host, view.port, f"?token={token}" if token else "")
    return view


def run(o: argparse.Namespace, log: logging.Logger) -> int:
    if o.window and os.name == "posix" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise DogfilterError("--window needs a screen (DISPLAY is not set): use --http-port PORT or --output FILE")
    if not (o.window or o.output or o.http_port or o.stats_out or o.virtual_camera):
        raise DogfilterError("nothing to display to: give --window, --output FILE, --http-port PORT and/or "
                             "--virtual-camera")
    recorders = outputs(o.output)
    counters = Counters(STAGE, log)
    display = Display(Sealer.from_file(o.secret_file), counters, live=o.mode == "live", max_age_s=o.max_age_ms / 1000,
                      exit_after=o.exit_after)
    if o.virtual_camera:
        display.vcam = VirtualCamera(o.virtual_camera_backend, o.virtual_camera, logger=log)
    view = _web(o, log, display)
    links = Links(o.curve_dir, o.allow_plaintext)
    complete = False  # recordings are renamed onto their paths only when complete (a cut-short file run: none)
    try:
        pull = links.bind(zmq.PULL, o.display_addr, "display")
        returns = links.connect(zmq.PUSH, o.returns_addr, hwm=64)  # to capture: frames that left, tabs' results
        log.info("frames on %s%s%s", o.display_addr, f", recording to {', '.join(o.output)}" if o.output else "",
                 ", window" if o.window else "")
        health.ready()
        code = loop(o, display, pull, returns, recorders, view)
        complete = True
        return code
    except KeyboardInterrupt:
        complete = display.live  # live: a stop is how a recording ends; file: the run was cut short
        raise
    finally:
        try:
            with service.uninterrupted():  # a second stop (Ctrl-C and honcho's SIGTERM) must not cut a commit short
                finish(recorders.values(), complete)
        finally:
            if view is not None:
                view.close()
            if display.vcam is not None:
                display.vcam.close()
            links.close()
            write_stats(o.stats_out, display)


def loop(o: argparse.Namespace, display: Display, pull: zmq.Socket, returns: zmq.Socket,
         recorders: dict[str | None, Recorder], view: Any) -> int:
    last_write = 0.0
    while True:
        health.beat()
        if time.monotonic() - last_write > 0.25:
            write_stats(o.stats_out, display)
            last_write = time.monotonic()
            display.counters.maybe_log(f"frames={display.total.frames} fps={display.total.rate.per_second():.1f} ")
        if not pull.poll(30 if o.window else 250):
            if o.window and cv2.waitKey(1) & 0xFF == ord("q"):  # keep the window alive while no frame comes
                return 0
            continue
        for msg in drain(pull, display.counters, limit=8, admit=display.sealer.admit):
            if display.live and msg.kind == "composited":  # the frame left the pipeline: capture may send another
                send(returns, Message("done", msg.stream, msg.frame, msg.epoch), timeout_s=0.0)
            shown = next(iter(display.on_message(msg, time.time())), None)
            vcam = display.vcam
            if vcam is not None and msg.kind == "eos" and msg.stream == vcam.stream and display.sealer.check(msg):
                vcam.end()
            while display.forgotten:
                gone = display.forgotten.pop()
                if view is not None:
                    view.forget(gone)
            if shown is not None:
                assert shown.image is not None  # a painted frame carries one (wire.PARTS)
                if vcam is not None and vcam.wants(msg.stream):
                    vcam.put(shown.image, float(shown.meta.get("fps", 30.0)))
                record(recorders, shown)
                if "client_ts" in shown.meta and not send(returns, shown, timeout_s=0.0, jpeg_quality=80):
                    display.counters["results_not_returned"] += 1  # a browser tab's frame: back to it (JPEG)
                if view is not None and view.offer(msg.stream, shown.image):  # a JPEG only while watched
                    display.counters["jpeg_encoded"] += 1
                if o.window:
                    cv2.imshow(f"dogfilter {msg.stream}", shown.image)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        return 0
        # a camera stays up, showing its still frame, unless told which streams to wait for
        if display.finished() and not o.keep_running and (display.vcam is None or o.exit_after):
            for stream, n in display.lost.items():
                display.counters.log.error("stream %s: %d frames lost", stream, n)
            return 3 if display.lost else 0


def record(recorders: dict[str | None, Recorder], msg: Message) -> None:
    """Write a shown frame to its stream's recording (or the one recording of every stream)."""
    rec = recorders.get(msg.stream) or recorders.get(None)
    if rec is not None:
        assert msg.image is not None  # a painted frame carries one (wire.PARTS)
        # a live recording is committed at a stop: a stop between the writer's write and the count would leave it
        # one frame more than counted, and the commit's check would throw it away
        with service.uninterrupted():
            rec.write(msg.image, float(msg.meta.get("fps", 30.0)))


def write_stats(path: str | None, display: Display) -> None:
    """The statistics as JSON, replaced whole (a reader never sees half a file)."""
    if not path:
        return
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(display.as_dict()))  # compact: the C encoder (an indent makes it pure Python)
        tmp.replace(path)
    except OSError as e:
        display.counters.drop("stats_not_written", f"{path}: {e.strerror}")


def read_stats(path: str | Path, default: dict[str, Any], wait_s: float = 1.0) -> dict[str, Any]:
    """What :func:`write_stats` wrote (whole, as it replaces the file), waiting up to ``wait_s`` for a display that
    has not written it yet; ``default`` when it never does."""
    end = time.monotonic() + wait_s
    while True:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):
            if time.monotonic() >= end:
                return default
            time.sleep(0.025)


def cli() -> None:
    service.cli(STAGE, __doc__, GROUPS, run)


if __name__ == "__main__":
    cli()
