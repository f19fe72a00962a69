"""capture: read frames from one or more sources and hand each to a detect worker that asked for one.

in       sources, one stream each (--source, repeatable: demo, a camera index, pipewire:NAME, a video file, an
         image, a folder),
         and browser tabs that come and go (--web-port: the browser camera, common/media/webcam.py)
out      frames → detect (ROUTER bound at the frames link: detect workers connect and announce how many frames
         they take at once); after a stream's last frame, its end of stream; a browser tab's filtered frames,
         from display (PULL bound at the returns link), back to the tab
how      live: the newest frame of each stream waits in a one-frame slot (a reader thread per camera or file;
               the demo scene is rendered on demand) and goes out when a worker is free; a frame overwritten
               before that is dropped and counted, so lag never grows.  Streams take turns (the one that waited
               longest goes first), so under overload every stream loses frames in proportion, none starves.
         file: the next frame is read only when a worker is free: every frame, in order, no drops; a frame whose
               worker died or stalled is sent again to another.
         live: at most --max-in-flight frames are on their way at once (display says when each left: a flow
         limiter, so a busy pipeline takes fewer frames instead of queueing them, and latency stays low).
         Each frame is numbered per stream and sealed with the pipeline's secret (its proof of origin).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import zmq

from dogfilter.common import health, options, service
from dogfilter.common.errors import DogfilterError
from dogfilter.common.media.sources import Source, open_source, parse_size
from dogfilter.common.media.webcam import CameraServer, WebSource, WebTab
from dogfilter.common.options import Option, non_negative, positive
from dogfilter.common.transport import shm, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, Dispatcher, Job, Peer, drain
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.sockets import Links, is_local
from dogfilter.common.transport.wire import STREAM_RE, Message, Meta

STAGE = "capture"
OPTIONS = (
    Option("source", ["demo"], "what to read: demo, a camera index (0), a PipeWire camera (pipewire:NAME; "
           "pipewire: the first one), a video file, an image, or a folder of images; repeatable: each source is a "
           "stream of its own", kind="list", metavar="SOURCE", launcher=True),
    Option("stream", [], "stream ids, one per --source, in order (default: cam0, cam1, ...)", kind="list",
           metavar="ID"),
    Option("fps", 0.0, "live pacing in frames/s (0: the source's own rate, else 30)", type=non_negative(float),
           launcher=True),
    Option("size", None, "resize frames to WIDTHxHEIGHT (the demo renders at this size; default 640x480 for it)",
           metavar="WxH", launcher=True),
    Option("loop", False, "start a file source again at its end", kind="flag", launcher=True),
    Option("frames", 0, "stop each stream after this many frames (0: at its end)", type=non_negative(int),
           launcher=True),
    Option("jpeg", 0, "send frames as JPEG of this quality, for links to other machines (0: raw pixels)",
           type=non_negative(int)),
    Option("job_timeout_s", 0.0, "a detect worker holding a frame longer than this is benched and the frame taken "
           "back (0: 3 s live; 30 s file, half the composite's --file-timeout-s, so a frame taken back from a stalled "
           "worker still arrives in time)", type=non_negative(float)),
    Option("exit_on_eos", False, "exit once every stream has ended and its frames are through detection",
           kind="flag"),
    Option("max_in_flight", 8, "live: frames on their way through the pipeline at once, at most (display says "
           "when each has left it: a flow limiter, so a busy pipeline takes fewer frames instead of queueing "
           "them); 0: no limit", type=non_negative(int), launcher=True),
    Option("web_port", 0, "serve the browser camera on this port (0: off): a page that sends the user's camera as a "
           "stream of its own, one per tab, and shows it filtered", type=non_negative(int), launcher=True),
    Option("web_host", "127.0.0.1", "address the browser camera listens on (beyond loopback: the web token, and "
           "https in front: see deploy/README.md)"),
    Option("max_web_streams", 8, "browser cameras at once; when all are taken, one idle for 2 s makes room, else "
           "a new one is turned away (try again later)", type=non_negative(int)),
    Option("shm", "off", "frames to detect workers on this host through shared memory (a handle on the wire, the "
           "pixels written once into a slot of capture's own, see ARCHITECTURE.md); workers elsewhere get pixels",
           choices=("on", "off"), launcher=True),
    Option("shm_slots", 32, "shared memory: frame slots at most (when all hold frames on their way, a frame goes "
           "as pixels)", type=positive(int)),
    Option("web_idle_s", 10.0, "a browser camera that sends no frame, or takes no filtered frame, for this long is "
           "closed and its stream ended", type=positive(float)),
)
GROUPS = [(STAGE, OPTIONS), ("pipeline", options.PIPELINE), ("links", options.links("frames", "returns"))]


# ----------------------------------------------------------------------------------------------- feeds


class Waker:
    """Wakes capture's loop from other threads (readers, browser tabs): an empty message on an inproc socket, from a
    socket of the calling thread's own (ZeroMQ sockets are not shared between threads)."""

    def __init__(self, ctx: zmq.Context, addr: str) -> None:
        self.ctx, self.addr = ctx, addr
        self.local = threading.local()

    def __call__(self) -> None:
        sock = getattr(self.local, "sock", None)
        if sock is None:
            sock = self.local.sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, 1)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.addr)
        try:
            sock.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # a wake-up is pending already


@dataclass
class Feed:
    """One stream as capture sees it: where its frames come from, how far it is, what it dropped."""

    stream: str
    source: Source
    epoch: int
    limit: int = 0  # frames to send at most (0: all)
    sent: int = 0  # frames handed out = the next frame number
    last_turn: float = 0.0  # when this stream last had a frame sent: the one waiting longest goes first
    ended: bool = False  # the source has no more frames
    eos_sent: bool = False
    counts: Counter[str] = field(default_factory=Counter)

    def ready(self, now: float) -> bool:
        """A frame can go out now."""
        raise NotImplementedError

    def take(self, now: float) -> np.ndarray | None:
        """The frame to send (None: the source ended)."""
        raise NotImplementedError

    def wait_s(self, now: float) -> float:
        """How long until this feed may become ready by itself (reader threads wake the loop instead)."""
        return HEARTBEAT_S

    def at_limit(self) -> bool:
        return bool(self.limit) and self.sent >= self.limit

    def meta(self) -> Meta:
        """What this stream's frames carry besides the frame (a browser tab: its clock)."""
        return {}


class FileFeed(Feed):
    """File mode: the next frame is read when a worker is free."""

    def ready(self, now: float) -> bool:
        return not self.ended

    def take(self, now: float) -> np.ndarray | None:
        return None if self.at_limit() else self.source.read()


class DemoFeed(Feed):
    """Live demo: the frame of the instant that is due, rendered only when a worker can take it."""

    def __init__(self, stream: str, source: Source, epoch: int, limit: int = 0, *, fps: float,
                 offset_s: float = 0.0) -> None:
        super().__init__(stream, source, epoch, limit)
        self.fps, self.last_due = fps, -1
        self.t0: float | None = None  # the first time the loop looked (its clock)
        self.first = int(offset_s * fps)  # several demo streams start at other moments of the scene

    def due(self, now: float) -> int:
        if self.t0 is None:
            self.t0 = now
        return int((now - self.t0) * self.fps)

    def ready(self, now: float) -> bool:
        return not self.ended and self.due(now) > self.last_due

    def take(self, now: float) -> np.ndarray | None:
        if self.at_limit():
            return None
        due = self.due(now)
        self.counts["frames_dropped"] += max(0, due - self.last_due - 1)  # instants nobody was free to take
        self.last_due = due
        return self.source.render_at(self.first + due)

    def wait_s(self, now: float) -> float:
        return max(0.0, (now if self.t0 is None else self.t0) + (self.last_due + 1) / self.fps - now)


class ReaderFeed(Feed):
    """Live camera or file: a thread reads at the source's pace into a one-frame slot (the newest frame wins)."""

    def __init__(self, stream: str, source: Source, epoch: int, limit: int = 0, *, fps: float,
                 wake: Callable[[], None]) -> None:
        super().__init__(stream, source, epoch, limit)
        self.period, self.wake = 1.0 / fps, wake
        self.lock = threading.Lock()
        self.slot: np.ndarray | None = None
        self.error: str | None = None
        self.finished = False
        threading.Thread(target=self._read, daemon=True, name=f"reader-{self.stream}").start()

    def _read(self) -> None:
        n, next_t = 0, time.monotonic()
        paced = not self.source.paces_itself
        try:
            while not self.limit or n < self.limit:
                if paced:
                    time.sleep(max(0.0, next_t - time.monotonic()))
                    next_t = max(next_t + self.period, time.monotonic() - self.period)
                img = self.source.read()
                if img is None:
                    break
                n += 1
                with self.lock:
                    if self.slot is not None:
                        self.counts["frames_dropped"] += 1  # newest frame wins
                    self.slot = img
                self.wake()
        except DogfilterError as e:
            self.error = str(e)
        self.finished = True
        self.wake()

    def ready(self, now: float) -> bool:
        return self.slot is not None or (self.finished and not self.ended)

    def take(self, now: float) -> np.ndarray | None:
        with self.lock:
            img, self.slot = self.slot, None
        return img


class WebFeed(Feed):
    """A browser tab (common/media/webcam.py): its newest frame, and the tab's clock with it."""

    def __init__(self, tab: WebTab, epoch: int) -> None:
        super().__init__(tab.stream, WebSource(), epoch)
        self.tab = tab
        self.client_ts = 0.0

    def ready(self, now: float) -> bool:
        return not self.ended and (self.tab.frame is not None or self.tab.closed)

    def take(self, now: float) -> np.ndarray | None:
        got = self.tab.take_frame()
        if got is None:
            return None  # closed: the stream ends
        img, self.client_ts = got
        return img

    def meta(self) -> Meta:
        return {"client_ts": self.client_ts, "fps": 30.0}


# ----------------------------------------------------------------------------------------------- the stage


class Capture:
    """The stage without its sockets: which stream's frame goes next, and the message that carries it.

    ``tick(now, room)``: the frames (and ends of stream) due, at most ``room`` (the detect workers' free credit);
    ``on_message(msg, now)``: what display returns (a frame left the pipeline, a browser tab's filtered frame); the
    detect workers those frames prove real collect in ``proven`` for the loop's dispatcher."""

    def __init__(self, feeds: list[Feed], sealer: Sealer, counters: Counters, *, mode: Literal["live", "file"],
                 fps: dict[str, float], size: tuple[int, int] | None, max_in_flight: int = 0,
                 max_age_s: float = 0.2) -> None:
        self.feeds = {f.stream: f for f in feeds}
        self.sealer, self.counters, self.mode, self.fps, self.size = sealer, counters, mode, fps, size
        self.max_in_flight, self.max_age_s = max_in_flight if mode == "live" else 0, max_age_s
        self.in_flight: dict[tuple[str, int, int], float] = {}  # frames sent, until display says they left
        self.worker_of: dict[tuple[str, int, int], bytes] = {}  # and the detect worker each went to
        self.flow_seen = False  # display speaks the flow protocol (else: no limit, rather than a stall)
        self.proven: list[bytes] = []  # detect workers whose frames reached the display, since the loop looked

    def admit(self, now: float) -> bool:
        """Live: may one more frame go in?  Frames not heard of within --max-age-ms were dropped on the way."""
        if not self.max_in_flight:
            return True
        for key in [k for k, t in self.in_flight.items() if now - t > self.max_age_s + 0.05]:
            del self.in_flight[key]
            self.worker_of.pop(key, None)
        return not self.flow_seen or len(self.in_flight) < self.max_in_flight

    def sent_to(self, msg: Message, worker: bytes | None) -> None:
        """Live: the detect worker a frame went to (its frames that reach the display prove it a real one)."""
        if msg.key in self.in_flight and worker is not None:
            self.worker_of[msg.key] = worker

    def on_message(self, msg: Message, now: float) -> list[Message]:
        """From display: a frame that left the pipeline (done: the worker it went to joins ``proven``), or a
        browser tab's filtered frame (back to its tab).  Nothing to send because of it."""
        if msg.kind == "done":
            if self.in_flight.pop(msg.key, None) is not None:
                self.flow_seen = True
                worker = self.worker_of.pop(msg.key, None)
                if worker is not None:
                    self.proven.append(worker)
            else:
                self.counters["unknown_acks"] += 1
        elif msg.kind == "composited":
            self.on_result(msg)
        else:
            self.counters.drop("unexpected", f"{msg.kind} message on the returns link")
        return []

    def tick(self, now: float, room: int = 1) -> list[Message]:
        """The messages to send now, at most ``room``: frames of the streams that waited longest, or ends of
        stream; live, no more than the flow limiter admits."""
        out: list[Message] = []
        while len(out) < room and self.admit(now):
            msg = self._next(now)
            if msg is None:
                break
            out.append(msg)
        return out

    def _next(self, now: float) -> Message | None:
        """The next message to send: a frame of the stream that waited longest, or an end of stream."""
        for feed in sorted(self.feeds.values(), key=lambda f: f.last_turn):
            if feed.ended:
                if not feed.eos_sent:
                    return self._eos(feed)
                continue
            if not feed.ready(now):
                continue
            img = feed.take(now)
            if img is None:
                feed.ended = True
                return self._eos(feed)
            feed.last_turn = now
            return self._frame(feed, img, now)
        return None

    def _frame(self, feed: Feed, img: np.ndarray, now: float) -> Message:
        if self.size is not None and not feed.source.own_size and (img.shape[1], img.shape[0]) != self.size:
            import cv2

            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        msg = Message("frame", feed.stream, feed.sent, feed.epoch, image=img,
                      meta={"fps": self.fps.get(feed.stream, 30.0), "mode": self.mode, **feed.meta()})
        if feed.source.still:
            msg.meta["still"] = True  # photos, not video: detect must not carry faces from one to the next
        msg.stamp("capture")  # when the frame was made (a measurement, after rendering or resizing): the seal
        # covers it, and every stage's age of the frame counts from it
        if self.max_in_flight:
            self.in_flight[msg.key] = now
        feed.sent += 1
        feed.counts["frames"] += 1
        self._stats(msg, feed)
        return self.sealer.seal(msg)

    def _eos(self, feed: Feed) -> Message:
        feed.eos_sent = True
        msg = Message("eos", feed.stream, feed.sent, feed.epoch, meta={"last": feed.sent - 1})
        self._stats(msg, feed)
        self.counters.log.info("stream %s finished after %d frames (%d dropped)", feed.stream, feed.sent,
                               feed.counts["frames_dropped"])
        return self.sealer.seal(msg)

    def _stats(self, msg: Message, feed: Feed) -> None:
        """capture's own counters, and this stream's source's ("source": frames, drops, skipped files...)."""
        tab = Counter(feed.tab.counts) if isinstance(feed, WebFeed) else Counter()
        msg.stats(STAGE, self.counters)
        msg.stats("source", feed.counts + feed.source.counts + tab)

    def finished(self) -> bool:
        return all(f.eos_sent for f in self.feeds.values())

    def add(self, feed: Feed) -> None:
        self.feeds[feed.stream] = feed

    def forget_ended(self) -> None:
        """Streams that came and went (browser tabs) are forgotten once their end went out."""
        for name in [n for n, f in self.feeds.items() if isinstance(f, WebFeed) and f.eos_sent]:
            del self.feeds[name]

    def on_result(self, msg: Message) -> None:
        """A filtered frame of a browser tab's stream, from the display: back to its tab."""
        feed = self.feeds.get(msg.stream)
        if not isinstance(feed, WebFeed) or not self.sealer.check(msg) or msg.jpeg is None:
            self.counters.drop("unexpected", f"a result for {msg.stream}, which is not an open browser camera")
            return
        feed.tab.put_result(msg.jpeg, float(msg.meta.get("client_ts", 0.0)))

    def wait_s(self, now: float) -> float:
        return min((f.wait_s(now) for f in self.feeds.values() if not f.ended), default=HEARTBEAT_S)


def open_feeds(o: argparse.Namespace, wake: Callable[[], None] | None) -> tuple[list[Feed], dict[str, float]]:
    ids = o.stream or ([f"cam{i}" for i in range(len(o.source))] if len(o.source) > 1 else ["cam0"])
    if len(ids) != len(o.source):
        raise DogfilterError(f"{len(o.source)} sources but {len(ids)} stream ids: give one --stream per --source")
    if len(set(ids)) != len(ids) or not all(STREAM_RE.fullmatch(s) for s in ids):
        raise DogfilterError(f"stream ids must be distinct short names (letters, digits, . _ : @ -): {ids}")
    size, epoch = parse_size(o.size), int(time.time() * 1000)
    feeds: list[Feed] = []
    rates: dict[str, float] = {}
    for stream, spec in zip(ids, o.source, strict=True):
        src = open_source(spec, size, o.fps or 30.0, o.loop, o.max_pixels)
        fps = rates[stream] = o.fps or src.fps or 30.0
        if o.mode == "file":
            feeds.append(FileFeed(stream, src, epoch, o.frames))
        elif src.on_demand:
            feeds.append(DemoFeed(stream, src, epoch, o.frames, fps=fps, offset_s=7.3 * len(feeds)))
        else:
            assert wake is not None  # live: the loop's waker
            feeds.append(ReaderFeed(stream, src, epoch, o.frames, fps=fps, wake=wake))
    return feeds, rates


def run(o: argparse.Namespace, log: logging.Logger) -> int:
    live = o.mode == "live"
    counters = Counters(STAGE, log)
    links = Links(o.curve_dir, o.allow_plaintext)
    camera = None
    shared: Shared | None = None
    try:
        router = links.bind(zmq.ROUTER, o.frames_addr, "frames")
        wake_addr = f"inproc://wake-{id(links)}"
        wake = links.bind(zmq.PULL, wake_addr, "wake", recv_limit=False)
        waker = Waker(links.ctx, wake_addr)
        feeds, rates = open_feeds(o, waker)
        timeout = o.job_timeout_s or (3.0 if live else 30.0)
        sealer = Sealer.from_file(o.secret_file)
        shared = Shared.open(o, sealer.key, log)
        # live with the flow limiter: a detect worker is proven by its frames reaching the display, not its word
        pool = Dispatcher(router, STAGE, counters, max_window=4, job_timeout_s=timeout, jpeg_quality=o.jpeg or None,
                          done_proves=not (live and o.max_in_flight),
                          handles=shared.maps if shared is not None else None)
        capture = Capture(feeds, sealer, counters, mode=o.mode, fps=rates, size=parse_size(o.size),
                          max_in_flight=o.max_in_flight, max_age_s=o.max_age_ms / 1000)
        log.info("%s at %s fps, %s mode, frames on %s", ", ".join(f"{f.stream}={f.source.kind}" for f in feeds),
                 "/".join(f"{v:g}" for v in rates.values()), o.mode, o.frames_addr)
        returns = links.bind(zmq.PULL, o.returns_addr, "returns")  # display: frames that left; tabs' results
        if o.web_port:
            token = sealer.web_token(o.web_token, o.web_host)
            camera = CameraServer(o.web_host, o.web_port, token, waker, max_streams=o.max_web_streams,
                                  max_pixels=min(o.max_pixels, 4_000_000), idle_s=o.web_idle_s,
                                  hosts=(*o.web_hosts, o.web_host))
            log.info("browser camera at http://%s:%d/%s", o.web_host, camera.port, f"?token={token}" if token else "")
        health.ready()
        return loop(capture, pool, Sockets(router, wake, returns), camera, live, o.exit_on_eos, shared)
    finally:
        if camera is not None:
            camera.close()
        if shared is not None:
            shared.pool.close()
        links.close()


@dataclass
class Shared:
    """Frames to the detect workers of this host through shared memory (``transport/shm.py``): capture's slots, and
    who maps them (a worker announcing this pipeline's and this host's shared memory)."""

    pool: shm.Pool
    domain: str

    @classmethod
    def open(cls, o: argparse.Namespace, secret: bytes, log: logging.Logger) -> Shared | None:
        if o.shm != "on":
            return None
        dom = shm.domain(secret)
        why = ("frames go as JPEG (--jpeg)" if o.jpeg else "the frames link reaches beyond this host"
               if not is_local(o.frames_addr) else "no shared memory here (/dev/shm)" if dom is None else None)
        if why or dom is None:
            log.info("shared memory off: %s", why)
            return None
        pool = shm.Pool(secret, o.shm_slots)
        log.info("shared memory on: up to %d frame slots (%d segments of dead captures removed)", o.shm_slots,
                 pool.cleaned)
        return cls(pool, dom)

    def maps(self, peer: Peer) -> bool:
        """The worker maps our segments: it said it sees this host's shared memory as this pipeline."""
        return peer.info.get("shm") == self.domain

    def put(self, frame: Message, pool: Dispatcher, counters: Counters) -> None:
        """The frame's pixels into a slot, when a worker that maps them is there (else they go on the wire)."""
        img = frame.image
        if img is None or img.dtype != np.uint8 or img.ndim != 3 or not any(self.maps(p) for p in pool.peers.values()):
            return
        got = self.pool.put(img, frame)
        if got is None:
            counters["shm_full"] += 1  # every slot holds a frame on its way: this one goes as pixels
            return
        wire.share(frame, *got)
        counters["frames_shared"] += 1

    def release(self, pool: Dispatcher, redo: list[Job], capture: Capture) -> None:
        """Slots whose frame is through: no worker holds it and it is not to be sent again; live, also not before
        the display said it left (or the flow limiter gave up on it)."""
        held = {id(j.msg) for j in pool.held()} | {id(j.msg) for j in redo}
        for frame in self.pool.held_by():
            if id(frame) not in held and frame.key not in capture.in_flight:
                self.pool.release(frame)


@dataclass
class Sockets:
    router: zmq.Socket
    wake: zmq.Socket
    returns: zmq.Socket | None


def loop(capture: Capture, pool: Dispatcher, s: Sockets, camera: CameraServer | None, live: bool,
         exit_on_eos: bool, shared: Shared | None = None) -> int:
    poller = zmq.Poller()
    for sock in (s.router, s.wake, s.returns):
        if sock is not None:
            poller.register(sock, zmq.POLLIN)
    redo: list[Job] = []
    while True:
        health.beat()
        wait = capture.wait_s(time.time()) if pool.free() else HEARTBEAT_S
        events = dict(poller.poll(int(1000 * min(wait, HEARTBEAT_S)) + 1))
        if s.wake in events:
            while s.wake.poll(0):
                s.wake.recv()
        if camera is not None:
            _tabs(capture, camera)
        if s.returns is not None and s.returns in events:
            for msg in drain(s.returns, capture.counters, limit=256, keep_jpeg=True):
                capture.on_message(msg, time.time())
            while capture.proven:
                pool.proved(capture.proven.pop())
        pool.receive()
        taken = pool.take_back()  # from workers that died or stalled, or that gave them back
        if live:
            capture.counters["frames_lost_in_workers"] += len(taken)  # stale by now: not worth sending again
        elif taken:
            capture.counters.log.info("sending again frames %s", ", ".join(f"{j.msg.stream}:{j.msg.frame}"
                                                                           for j in taken))
            redo = sorted(redo + taken, key=lambda j: (j.msg.frame, j.msg.stream))  # the oldest frames first
        hand_out(capture, pool, redo, live, time.time(), shared)
        if shared is not None:
            shared.release(pool, redo, capture)
        capture.forget_ended()
        if exit_on_eos and capture.finished() and not redo and next(pool.held(), None) is None:
            return 0
        capture.counters.maybe_log(f"workers={len(pool.peers)} ")


def hand_out(capture: Capture, pool: Dispatcher, redo: list[Job], live: bool, now: float,
             shared: Shared | None = None) -> None:
    """Frames to the detect workers: those to send again first (``redo``, oldest first), then new ones.  A frame
    no worker took after all (the worker with room was found gone as it was sent) waits in ``redo`` (file mode:
    nothing is lost) or is counted lost (live)."""
    while redo and pool.free() > 0 and capture.admit(now):
        job = redo.pop(0)
        if not pool.submit(job):
            redo.insert(0, job)
            return
    for frame in capture.tick(now, room=pool.free()) if not redo else []:
        job = Job(frame)
        if shared is not None:
            shared.put(frame, pool, capture.counters)  # its pixels into a slot, for the workers that map them
        if frame.kind == "eos":  # the stream's last word: capture's counts as it leaves, its last frames' included
            frame.stats(STAGE, capture.counters)
        if pool.submit(job):
            capture.sent_to(frame, job.worker)
        elif live:
            capture.counters["frames_lost_in_workers"] += 1
        else:
            redo.append(job)


def _tabs(capture: Capture, camera: CameraServer) -> None:
    """Browser tabs that opened become streams (a tab that closes ends its stream through its feed)."""
    while not camera.events.empty():
        kind, tab = camera.events.get()
        if kind == "open":
            capture.add(WebFeed(tab, int(time.time() * 1000)))
    if camera.timed_out:
        capture.counters["tabs_timed_out"] = camera.timed_out


def cli() -> None:
    service.cli(STAGE, __doc__, GROUPS, run)


if __name__ == "__main__":
    cli()
