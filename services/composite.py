"""composite: join each frame with its faces' emotions, paint the masks, pass frames on in order.

in       detections and skips from detect (ROUTER bound at the detections link; several detect workers: frames
         may arrive out of order; file mode: each is confirmed to its worker), emotions from classify workers
         (ROUTER bound at the classify link: workers here or on other machines connect and announce credit, their
         model and its classes)
out      composited frames, in frame order per stream, and each stream's end → display (PUSH → the display link)
how      a frame's faces go out as one crops job to the least-loaded classify worker (live: a followed face whose
         emotion is known only every --reclassify-ms; in between its mask keeps its last reading, as a followed
         face keeps its box between detect's scans); the frame is painted when
         its emotions are back or its deadline passes (live: --deadline-ms, or --known-deadline-ms when every face
         in it is a followed face whose emotion is known; file: --file-timeout-s), so a late classifier never
         stalls video: the face keeps its last known emotion, else --default-emotion; the job of a frame that
         left without its emotions is dropped (counted: jobs_dropped), so no queue grows while no worker is there.
         Per stream, frames wait in a reorder buffer (live: a missing frame is waited for --reorder-ms, then
         skipped).  Only frames, skips and ends sealed by capture are accepted (a JPEG frame's seal is checked
         before it is decoded); live frames older than --max-age-ms are not sent on.
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from dogfilter.common import health, options, service
from dogfilter.common.options import Option, non_negative, positive
from dogfilter.common.stage import Busy, epoch_order, too_old
from dogfilter.common.transport import shm, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, Dispatcher, Job, Peer, drain_confirming, send
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.sockets import Links
from dogfilter.common.transport.wire import Face, Message
from dogfilter.common.vision.dog3d import Live
from dogfilter.common.vision.identity import FaceIdentities
from dogfilter.common.vision.masks import RENDERS, Painter, load_masks

STAGE = "composite"
OPTIONS = (
    Option("mask", [], "paint PATH (RGBA, or white background like the tutorial's) for EMOTION", kind="list",
           metavar="EMOTION=PATH", launcher=True),
    Option("render", "3d", "3d: each dog posed with the head, hidden behind it, its tongue, ears and eyelids moved by "
           "the face (a face without a pose, or an emotion given --mask, gets the flat mask); flat: the mask laid on "
           "the face's box (the tutorial's Steps 4 and 8); boxes: the tutorial's green boxes only (Step 2)",
           choices=RENDERS, launcher=True),
    Option("debug", False, "draw each face's box, emotion and probability", kind="flag", launcher=True),
    Option("deadline_ms", 40.0, "live: how long a frame waits for its emotions", type=non_negative(float)),
    Option("known_deadline_ms", 5.0, "live: how long a frame waits when every face in it is a followed face whose "
           "emotion is known (the reply, when it comes, still updates those faces)", type=non_negative(float)),
    Option("reclassify_ms", 100.0, "live: how often a followed face whose emotion is known is read again (0: every "
           "frame); its mask keeps its last reading in between (file mode reads every face of every frame)",
           type=non_negative(float)),
    Option("reorder_ms", 150.0, "live: how long to wait for a missing earlier frame", type=non_negative(float)),
    Option("file_timeout_s", 60.0, "file mode: how long to wait for a frame's emotions or a missing frame before "
           "giving up on it", type=positive(float)),
    Option("smooth", 0.5, "0: no smoothing; up to 0.95: heavier smoothing of each face's probabilities over frames",
           type=non_negative(float)),
    Option("default_emotion", "neutral", "emotion painted for a face never classified yet", launcher=True),
    Option("max_streams", 64, "streams followed at once; more are refused (counted)", type=positive(int)),
)
GROUPS = [(STAGE, OPTIONS), ("pipeline", options.PIPELINE),
          ("links", options.links("detections", "classify", "display"))]
MAX_BUFFERED = 64  # live: frames held per stream (about 2 s of video); more and the oldest goes
FILE_WINDOW = 32  # file mode: frames a stream may run ahead of the next one due (back-pressure)
MAX_QUEUED = 1024  # live: crops jobs waiting for a classify worker, all streams together (each holds its frame)
IDLE_STREAM_S = 60.0  # a stream not heard from this long is forgotten (a capture that died, a closed browser tab)


@dataclass
class Entry:
    """A frame waiting to be painted (``msg`` None: a skip, nothing to paint)."""

    msg: Message | None
    deadline: float
    waiting: bool = False  # its emotions are not back yet
    known: bool = False  # every face already followed with an emotion: painted without waiting long
    emitted: bool = False
    asked: list[int] = field(default_factory=list)  # the faces (indices) sent to the classifier
    asked_at: float = 0.0
    readings: dict[int, tuple[list[str], list[float]]] = field(default_factory=dict)  # face → (classes, probs)


class Reorder:
    """One stream's frames back in frame order.  A frame leaves when it is ready (its emotions are back, or its
    deadline passed); a missing frame is waited for ``gap_s``, then skipped and counted lost."""

    def __init__(self, first: int | None, gap_s: float) -> None:
        self.next, self.gap_s = first, gap_s
        self.entries: dict[int, Entry] = {}
        self.gap_since: float | None = None
        self.lost = 0
        self.lost_frames: list[tuple[int, int]] = []  # (first, last) of each run of frames given up on

    def add(self, frame: int, entry: Entry) -> bool:
        """False: a duplicate, or a frame whose turn has passed."""
        if frame in self.entries or (self.next is not None and frame < self.next):
            return False
        self.entries[frame] = entry
        return True

    def pop_ready(self, now: float, last: int | None = None) -> list[Entry]:
        """Frames ready to leave, in order; ``last``: the stream's last frame, when its end is known (frames
        missing before it are waited for like any gap)."""
        out: list[Entry] = []
        while True:
            if self.next is None:
                if not self.entries:
                    return out
                self.next = min(self.entries)
            e = self.entries.get(self.next)
            if e is None:
                later = [f for f in self.entries if f > self.next] or ([last + 1] if last is not None
                                                                      and self.next <= last else [])
                if not later:
                    self.gap_since = None
                    return out
                self.gap_since = self.gap_since or now
                if now - self.gap_since < self.gap_s:
                    return out
                skip_to = min(later)
                self.lost += skip_to - self.next
                self.lost_frames.append((self.next, skip_to - 1))
                self.next, self.gap_since = skip_to, None
                continue
            if e.waiting and now < e.deadline:
                return out
            out.append(self.entries.pop(self.next))
            self.next += 1
            self.gap_since = None

    def drop_oldest(self) -> None:
        self.entries.pop(min(self.entries)).emitted = True  # gone: its job, if still queued, is not worth doing

    def forget(self) -> None:
        """Every frame still held is given up (a restarted stream): their queued jobs go with them."""
        for e in self.entries.values():
            e.emitted = True
        self.entries.clear()

    def wait_s(self, now: float) -> float:
        t = HEARTBEAT_S
        if self.next in self.entries:
            t = min(t, self.entries[self.next].deadline - now)
        if self.gap_since is not None:
            t = min(t, self.gap_since + self.gap_s - now)
        return max(0.0, t)


@dataclass
class StreamState:
    epoch: int
    reorder: Reorder
    faces: FaceIdentities
    last_heard: float
    eos: Message | None = None


@dataclass
class Settings:
    """The composite's options, typed (what :class:`Composite` needs, without argparse)."""

    live: bool = True
    deadline_s: float = 0.040
    known_deadline_s: float = 0.005
    reclassify_s: float = 0.100
    reorder_s: float = 0.150
    file_timeout_s: float = 60.0
    max_age_s: float = 0.2
    smooth: float = 0.5
    max_streams: int = 64

    @classmethod
    def from_options(cls, o: argparse.Namespace) -> Settings:
        return cls(o.mode == "live", o.deadline_ms / 1000, o.known_deadline_ms / 1000, o.reclassify_ms / 1000,
                   o.reorder_ms / 1000, o.file_timeout_s, o.max_age_ms / 1000, o.smooth, o.max_streams)


class Composite:
    """The stage without its sockets: detections and emotions in, painted frames (and ends of stream) out."""

    def __init__(self, painter: Painter, sealer: Sealer, counters: Counters, settings: Settings) -> None:
        self.painter, self.sealer, self.counters, self.s = painter, sealer, counters, settings
        self.streams: OrderedDict[str, StreamState] = OrderedDict()
        self.queue: deque[Job] = deque()  # crops jobs waiting for a classify worker

    # -------------------------------------------------------------- input
    def on_message(self, msg: Message, now: float) -> list[Message]:
        """A frame, a skip or an end of stream from detect: held until its turn (frames leave from :meth:`tick`).
        Raises :class:`Busy` when this stream's buffer is full (file mode: a frame more than ``FILE_WINDOW`` ahead
        of the next one due; its sender sends it again shortly)."""
        if not self.sealer.check(msg):
            self.counters.drop("unsealed", f"{msg.kind} of stream {msg.stream} without capture's seal")
            return []
        st = self._stream(msg, now)
        if st is None:
            return []
        if msg.kind == "eos":
            st.eos = msg
            return []
        if msg.kind not in ("detections", "skip"):
            self.counters.drop("unexpected", f"{msg.kind} message on the detections link")
            return []
        nxt = st.reorder.next
        if not self.s.live and nxt is not None and msg.frame >= nxt + FILE_WINDOW:
            self.counters["busy"] += 1
            raise Busy(msg.stream)
        entry = Entry(None if msg.kind == "skip" else msg,
                      now + (self.s.deadline_s if self.s.live else self.s.file_timeout_s))
        if not st.reorder.add(msg.frame, entry):
            self.counters["stale_frames"] += 1  # a duplicate (a frame sent again), or its turn has passed
            return []
        if entry.msg is not None:
            msg.stamp("composite_in")
            entry.asked, entry.asked_at = self._to_ask(st, msg.faces, now), now
            self.counters["faces_read_earlier"] += len(msg.faces) - len(entry.asked)
        if entry.asked:
            assert msg.crops is not None  # detections carry their faces' crops (wire.PARTS)
            entry.waiting = True
            if self.s.live and all(st.faces.known(f.box) for f in msg.faces):
                entry.deadline, entry.known = min(entry.deadline, now + self.s.known_deadline_s), True
            some = len(entry.asked) < len(msg.faces)
            crops = Message("crops", msg.stream, msg.frame, msg.epoch,
                            faces=[Face(box=msg.faces[i].box) for i in entry.asked],
                            crops=msg.crops[entry.asked] if some else msg.crops)
            self.queue.append(Job(crops, entry))
        if self.s.live and len(st.reorder.entries) > MAX_BUFFERED:  # never hold more than ~2 s of video
            st.reorder.drop_oldest()
            self.counters["frames_dropped"] += 1
        return []

    def _to_ask(self, st: StreamState, faces: list[Face], now: float) -> list[int]:
        """The faces of a frame to send to the classifier: every one, but in live mode not a followed face whose
        emotion is known and was asked about less than ``reclassify_s`` ago."""
        if not self.s.live or self.s.reclassify_s <= 0:
            return list(range(len(faces)))
        out = []
        for i, f in enumerate(faces):
            track = st.faces.match(f.box)
            if track is not None and track.probs and now - track.asked < self.s.reclassify_s:
                continue
            if track is not None:
                track.asked = now
            out.append(i)
        return out

    def _stream(self, msg: Message, now: float) -> StreamState | None:
        """The stream's state; a new one for a new stream or a newer epoch (a restarted capture)."""
        st = self.streams.get(msg.stream)
        order = epoch_order(None if st is None else st.epoch, msg.epoch)
        if order == "old":
            self.counters["stale_frames"] += 1  # from before capture restarted
            return None
        if st is None or order == "new":
            if st is None and len(self.streams) >= self.s.max_streams:
                self.counters.drop("too_many_streams", f"{self.s.max_streams} streams already; not {msg.stream}")
                return None
            if st is not None:
                self.counters.log.info("stream %s restarted (new epoch): resetting it", msg.stream)
                st.reorder.forget()
            gap = self.s.reorder_s if self.s.live else self.s.file_timeout_s
            st = StreamState(msg.epoch, Reorder(None if self.s.live else 0, gap), FaceIdentities(self.s.smooth), now)
            self.streams[msg.stream] = st
        st.last_heard = now
        self.streams.move_to_end(msg.stream)
        return st

    def on_reply(self, peer: Peer, job: Job, reply: Message, now: float) -> list[Message]:
        """A classify worker's answer to one of our jobs (the dispatcher checked the job is this worker's, and
        :func:`check_reply` its shape): ``on_message`` for a reply, with the job it answers.  The frame it is for
        leaves from :meth:`tick`."""
        entry: Entry = job.ctx
        classes = peer.info["classes"]
        why = check_reply(peer, job, reply)
        if why:
            self.counters.drop("bad_reply", why, peer=peer.ident)
            return []
        faces = [(i, entry.msg.faces[i]) for i in entry.asked] if entry.msg is not None else []
        st = self.streams.get(job.msg.stream)
        for (i, face), res in zip(faces, reply.faces, strict=True):
            entry.readings[i] = classes, res.probs or []  # check_reply: one set of probabilities a face
            track = face.track
            if entry.emitted and st is not None and track is not None:
                st.faces.learn(track, classes, res.probs or [])  # too late for its frame: still teach the face
        if entry.emitted:
            # known faces are painted at once by design: their replies update them; any other reply missed its frame
            self.counters["updated_after_paint" if entry.known else "late_results"] += 1
        entry.waiting = False
        return []

    def job_lost(self, job: Job) -> None:
        """A classify worker died or stalled holding this job: another gets it, if its frame still waits."""
        if not job.ctx.emitted:
            self.queue.appendleft(job)

    # -------------------------------------------------------------- output
    def next_job(self) -> Job | None:
        """The next job to hand out (one whose frame has gone out already is not worth a forward pass)."""
        while self.queue:
            job = self.queue.popleft()
            if not job.ctx.emitted:
                return job
        return None

    def tick(self, now: float) -> list[Message]:
        """Painted frames and ends of stream, in order, for every stream: those whose emotions are back or whose
        deadline passed at ``now``."""
        out: list[Message] = []
        for name, st in list(self.streams.items()):
            for e in st.reorder.pop_ready(now, None if st.eos is None else st.eos.meta["last"]):
                e.emitted = True
                if e.msg is not None:
                    frame = self._paint(st, e, now)
                    if frame is not None:
                        out.append(frame)
            self.counters["frames_lost"] += st.reorder.lost
            if st.reorder.lost_frames and not self.s.live:
                for a, b in st.reorder.lost_frames:
                    self.counters.log.error("stream %s: frames %d..%d never arrived; going on without them", name, a, b)
            st.reorder.lost, st.reorder.lost_frames = 0, []
            done = st.eos is not None and st.reorder.next is not None and st.reorder.next > st.eos.meta["last"]
            if st.eos is not None and (done or (not st.reorder.entries and st.reorder.next is None)):
                out.append(st.eos.derive("eos"))
                del self.streams[name]
                self.counters.log.info("stream %s finished at frame %s", name, st.eos.meta["last"])
            elif now - st.last_heard > IDLE_STREAM_S and not st.reorder.entries:
                del self.streams[name]  # gone quiet without an end: forget it (bounded state)
        self._prune_queue()
        for m in out:
            m.stats(STAGE, self.counters)
        return out

    def _prune_queue(self) -> None:
        """Jobs whose frame has left (painted by its deadline with its faces' last known emotions, or dropped) are
        not worth a forward pass: they go, counted, so a queue for workers that are not there stays bounded by the
        frames still held (and by ``MAX_QUEUED`` whatever happens)."""
        if not self.queue:
            return
        cap = MAX_QUEUED if self.s.live else None  # file mode: bounded by FILE_WINDOW frames a stream, all wanted
        if self.queue[0].ctx.emitted or self.queue[-1].ctx.emitted or (cap and len(self.queue) > cap):
            keep = deque(j for j in self.queue if not j.ctx.emitted)
            self.counters["jobs_dropped"] += len(self.queue) - len(keep)
            while cap and len(keep) > cap:  # the oldest first: its frame is the nearest to its deadline
                keep.popleft()
                self.counters["jobs_dropped"] += 1
            self.queue = keep

    def _paint(self, st: StreamState, entry: Entry, now: float) -> Message | None:
        msg = entry.msg
        assert msg is not None
        if self.s.live and too_old(msg, now, self.s.max_age_s):
            self.counters["stale_frames"] += 1  # too old to show: live means live
            return None
        image = np.array(msg.image)  # the one copy: the received pixels are ZeroMQ's, read-only; painted in place
        tracks = st.faces.assign(msg.frame, [f.box for f in msg.faces])
        t = msg.frame / float(msg.meta.get("fps") or 30.0)  # the video's own time: frames painted in order
        lives: list[Live] | None = [] if self.painter.render == "3d" else None  # what moves each 3-D dog
        for i, (face, track) in enumerate(zip(msg.faces, tracks, strict=True)):
            face.track = track.id
            if lives is not None:
                lives.append(track.reactions(face, t))  # from this frame's openings: a mouth opening shows now
            track.motion(face, t)
            if i in entry.asked:  # a face seen first in this frame was asked about then
                track.asked = max(track.asked, entry.asked_at)
            reading = entry.readings.get(i)
            if reading is not None:
                st.faces.teach(track, *reading)
            best = track.emotion
            if best is not None:
                face.emotion, face.p = best[0], round(best[1], 3)
                face.stale = reading is None and i in entry.asked  # asked, and the answer missed this frame
                if face.stale:
                    self.counters["faces_late"] += 1  # painted with its last reading
            else:
                face.emotion, face.stale = self.painter.default_emotion, True
                self.counters["faces_unclassified"] += 1
        self.painter.paint(image, msg.faces, lives)
        out = msg.derive("composited", image=image, crops=None)
        out.stamp(STAGE)
        self.counters["frames"] += 1
        return out

    def wait_s(self, now: float) -> float:
        return min((st.reorder.wait_s(now) for st in self.streams.values()), default=HEARTBEAT_S)

    def buffered(self) -> int:
        return sum(len(st.reorder.entries) for st in self.streams.values())


#: the labels a classify worker may announce: FER2013's seven expressions, and any emotion given a mask (--mask) or
#: painted by default (a fixed vocabulary: a face's probabilities are kept by label, so invented labels would grow it)
EMOTIONS = frozenset({"happy", "sad", "surprise", "neutral", "angry", "disgust", "fear"})


def check_worker(info: dict[str, Any], vocabulary: frozenset[str] = EMOTIONS) -> str | None:
    """A classify worker must say which classes its probabilities are for, each a label of the vocabulary."""
    classes = info.get("classes")
    if not isinstance(classes, list):
        return "a classify worker must announce its classes"
    unknown = [c for c in classes if c not in vocabulary]
    if unknown:
        return f"classes {unknown[:3]} are not emotions this composite knows (give them a --mask)"
    return None


def check_reply(peer: Peer, job: Job, reply: Message) -> str | None:
    """A reply must carry one set of probabilities per face of its job, each over the worker's classes."""
    classes = peer.info["classes"]
    if len(reply.faces) != len(job.msg.faces) or any(len(f.probs or ()) != len(classes)
                                                      for f in reply.faces):
        return "emotions do not match the job's faces or the worker's classes"
    return None


def make_handler(o: argparse.Namespace, sealer: Sealer, counters: Counters) -> Composite:
    """The stage's handler, from its options (the process below and the one-shot path use it)."""
    painter = Painter(load_masks(o.mask), o.default_emotion, o.render, o.debug)
    return Composite(painter, sealer, counters, Settings.from_options(o))


def run(o: argparse.Namespace, log: logging.Logger) -> int:
    counters = Counters(STAGE, log)
    comp = make_handler(o, Sealer.from_file(o.secret_file), counters)
    # frames whose pixels capture put in shared memory (transport/shm.py): copied out as they are taken
    wire.SHM.reader = shm.Reader(shm.token(comp.sealer.key), copy=True)
    links = Links(o.curve_dir, o.allow_plaintext)
    try:
        pull = links.bind(zmq.ROUTER, o.detections_addr, "detections")
        router = links.bind(zmq.ROUTER, o.classify_addr, "classify", hwm=1000)
        push = links.connect(zmq.PUSH, o.display_addr)
        timeout = 3.0 if comp.s.live else 60.0
        vocabulary = EMOTIONS | set(comp.painter.masks) | {comp.painter.default_emotion}
        pool = Dispatcher(router, STAGE, counters, max_window=64, job_timeout_s=timeout, replies=("emotions",),
                          check_info=functools.partial(check_worker, vocabulary=vocabulary), check_reply=check_reply)
        log.info("detections on %s, classify workers on %s%s, display at %s", o.detections_addr, o.classify_addr,
                 " (CURVE)" if links.curve_dir else "", o.display_addr)
        health.gauge("classify_jobs_waiting", "crops jobs waiting for a classify worker's credit",
                     lambda: len(comp.queue))
        health.gauge("classify_jobs_in_flight", "crops jobs the classify workers hold",
                     lambda: sum(len(p.jobs) for p in pool.peers.values()))
        health.gauge("classify_workers_joined", "classify workers joined", lambda: len(pool.peers))
        health.ready()
        loop(comp, pool, pull, router, push)
    finally:
        links.close()
    return 0


def loop(comp: Composite, pool: Dispatcher, pull: zmq.Socket, router: zmq.Socket, push: zmq.Socket) -> None:
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(pull, zmq.POLLIN)

    def take(msg: Message) -> bool:
        try:
            comp.on_message(msg, now)  # frames leave from tick, in order
        except Busy:
            return False
        return True

    while True:
        health.beat()
        poller.poll(int(1000 * comp.wait_s(time.time())) + 1)
        now = time.time()
        drain_confirming(pull, comp.counters, take, admit=comp.sealer.admit)
        for peer, job, reply in pool.receive():
            comp.on_reply(peer, job, reply, now)
        for job in pool.take_back():
            comp.job_lost(job)
        while pool.free() > 0:
            nxt = comp.next_job()
            if nxt is None:
                break
            if not pool.submit(nxt):
                comp.queue.appendleft(nxt)
                break
        workers = pool.summary()
        for out in comp.tick(time.time()):
            out.meta["workers"] = workers
            if not send(push, out, block=not comp.s.live or out.kind == "eos", timeout_s=0.05):
                comp.counters["display_dropped"] += 1
        comp.counters.maybe_log(f"workers={len(pool.peers)} ")


def cli() -> None:
    service.cli(STAGE, __doc__, GROUPS, run)


if __name__ == "__main__":
    cli()
