"""composite: join each frame with its faces' emotions, paint the masks, pass frames on in order.

connect  PULL bound at DOGFILTER_DETECTIONS_ADDR (detect workers push); ROUTER bound at
         DOGFILTER_CLASSIFY_ADDR (classify workers connect, here or on other machines, and announce credit);
         PUSH → display (DOGFILTER_DISPLAY_ADDR)
loop     frames from detect may arrive out of order (several detect workers): they wait in a small reorder
         buffer keyed by (stream, frame number)
handle   faces → one crops job to the least-loaded classify worker; the emotions come back by job id.  A frame
         is painted when all its faces are classified or its deadline passes (live: --deadline-ms, or the
         shorter --known-deadline-ms when every face is already tracked with a known emotion; a late classifier
         never stalls video: the face's last known emotion is used, from a tracker that matches faces across
         frames, else the neutral default; a late reply still updates the tracked faces).  Probabilities are
         smoothed per tracked face so the mask does not flicker.
send     composited frames, in frame order, to display; eos once the last frame of a stream is out
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq
from dogfilter.common import service
from dogfilter.common.errors import DogfilterError
from dogfilter.common.service import env
from dogfilter.common.transport import sockets, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, Dispatcher, send_with_backpressure
from dogfilter.common.transport.sockets import endpoint
from dogfilter.common.vision import masks


def parse_args():  # noqa: ANN201
    p = service.base_parser("composite", __doc__.splitlines()[0])
    p.add_argument("--mask", action="append", default=[], metavar="EMOTION=PATH",
                   help="use PATH (RGBA, or white background like the tutorial's) for EMOTION; repeatable")
    p.add_argument("--render", choices=["masks", "boxes"], default=env("render", "masks"),
                   help="masks (Steps 4 and 8) or boxes only (Step 2)")
    p.add_argument("--debug", action="store_true", default=env("debug", "0") == "1",
                   help="draw boxes, emotion and probability per face")
    p.add_argument("--deadline-ms", type=float, default=float(env("deadline_ms", 40)),
                   help="live: how long a frame waits for its emotions")
    p.add_argument("--known-deadline-ms", type=float, default=float(env("known_deadline_ms", 5)),
                   help="live: how long a frame waits when every face in it is a tracked face whose emotion is known "
                        "already (the reply, when it comes, still updates those faces)")
    p.add_argument("--reorder-ms", type=float, default=float(env("reorder_ms", 150)),
                   help="live: how long to wait for a missing earlier frame")
    p.add_argument("--file-timeout-s", type=float, default=float(env("file_timeout_s", 20)),
                   help="file mode: how long to wait for a frame's emotions or a missing frame before giving up")
    p.add_argument("--smooth", type=float, default=float(env("smooth", 0.5)),
                   help="0: no smoothing; up to 0.9: heavier smoothing of each face's probabilities")
    p.add_argument("--default-emotion", default=env("default_emotion", "neutral"),
                   help="emotion painted for a face never classified yet")
    return p.parse_args()


@dataclass
class Entry:
    msg: wire.Message
    arrived: float
    deadline: float
    waiting: int  # faces without probabilities yet
    emitted: bool = False
    known: bool = False  # every face already tracked with an emotion: painted without waiting long


@dataclass
class Track:
    id: int
    box: list[float]
    last_frame: int
    probs: np.ndarray | None = None


@dataclass
class Stream:
    epoch: int
    next: int | None = None
    entries: dict[int, Entry] = field(default_factory=dict)
    tracks: list[Track] = field(default_factory=list)
    eos: wire.Message | None = None
    gap_since: float | None = None


@dataclass
class Job:
    entry: Entry
    msg: wire.Message
    worker: bytes | None = None
    sent: float = 0.0


def iou(a: list[float], b: list[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter + 1e-9)


def load_masks(specs: list[str]) -> dict[str, masks.Mask]:
    table = masks.default_masks()
    for spec in specs:
        emotion, sep, path = spec.partition("=")
        if not sep or not emotion or not path:
            raise DogfilterError(f"bad --mask {spec!r}: want EMOTION=PATH, e.g. happy=dog.png")
        table[emotion.strip()] = masks.load_mask(path.strip())
    return table


class Compositor:
    def __init__(self, a: Any, log: Any, pool: Dispatcher, to_display: zmq.Socket) -> None:
        self.a, self.log, self.pool, self.out = a, log, pool, to_display
        self.masks = load_masks(a.mask)
        self.live = a.mode == "live"
        self.deadline = a.deadline_ms / 1000 if self.live else a.file_timeout_s
        self.streams: dict[str, Stream] = {}
        self.jobs: dict[int, Job] = {}
        self.queue: deque[int] = deque()
        self.job_ids = itertools.count()
        self.track_ids = itertools.count()
        self.counters = Counters("composite", log)
        self.worker_faces: dict[str, int] = {}
        self.classes: list[str] = ["happy", "sad", "surprise"]

    # ------------------------------------------------------------------ input
    def on_detections(self, msg: wire.Message) -> None:
        st = self.streams.get(msg.stream)
        if st is None or msg.epoch > st.epoch:
            if st is not None:
                self.log.info("stream %s restarted (new epoch): resetting it", msg.stream)
            st = self.streams[msg.stream] = Stream(msg.epoch, next=0 if not self.live else None)
        elif msg.epoch < st.epoch:
            self.counters["stale_frames"] += 1
            return
        if msg.kind == "eos":
            st.eos = msg
            return
        if msg.kind != "detections" or msg.image is None:
            self.counters.drop("unexpected", f"{msg.kind} message without a frame")
            return
        if st.next is not None and msg.frame < st.next:
            self.counters["stale_frames"] += 1  # its turn has passed
            return
        now = time.monotonic()
        msg.stamp("composite_in")
        entry = Entry(msg, now, now + self.deadline, len(msg.faces))
        if self.live and msg.faces and all(self._known(st, f["box"]) for f in msg.faces):
            entry.deadline, entry.known = min(entry.deadline, now + self.a.known_deadline_ms / 1000), True
        st.entries[msg.frame] = entry
        if msg.faces:
            jid = next(self.job_ids)
            job_msg = wire.Message("crops", msg.stream, msg.frame, msg.epoch,
                                   faces=[{"box": f["box"]} for f in msg.faces], meta={"job": jid}, crops=msg.crops)
            self.jobs[jid] = Job(entry, job_msg)
            self.queue.append(jid)
        if self.live and len(st.entries) > 64:  # never hold more than ~2 s of video
            oldest = min(st.entries)
            del st.entries[oldest]
            self.counters["frames_dropped"] += 1

    def on_worker(self, ident: bytes, msg: wire.Message) -> None:
        if self.pool.handle(ident, msg):
            return
        if msg.kind != "emotions":
            self.counters.drop("unexpected", f"{msg.kind} message from a classify worker")
            return
        self.pool.grant(ident, 1)  # a reply returns its credit
        name = str(msg.meta.get("worker", ident.decode(errors="replace")))
        self.worker_faces[name] = self.worker_faces.get(name, 0) + len(msg.faces)
        classes = msg.meta.get("classes")
        if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
            self.classes = classes
        job = self.jobs.pop(msg.meta.get("job", -1), None)
        if job is None:
            self.counters["late_results"] += 1
            return
        faces = job.entry.msg.faces
        if len(msg.faces) != len(faces) or any(len(f["probs"]) != len(self.classes) for f in msg.faces if "probs" in f):
            self.counters.drop("malformed", "emotions do not match the job's faces")
            return
        for face, res in zip(faces, msg.faces, strict=True):
            face["probs"] = res.get("probs")
        job.entry.waiting = 0
        if job.entry.emitted:  # too late for its frame: still teach the tracker
            # known faces are painted at once by design: their replies update them ("after_paint"); any other
            # reply that missed its frame is late
            self.counters["updated_after_paint" if job.entry.known else "late_results"] += 1
            st = self.streams.get(job.msg.stream)
            for face in faces:
                tr = next((t for t in st.tracks if t.id == face.get("track")), None) if st else None
                if tr is not None and face.get("probs"):
                    self._smooth(tr, np.asarray(face["probs"], np.float32))

    # ------------------------------------------------------------------ dispatch
    def dispatch(self) -> None:
        while self.queue and self.pool.available():
            jid = self.queue[0]
            job = self.jobs.get(jid)
            if job is None or job.entry.emitted:  # its frame has gone out already: not worth a forward pass
                self.queue.popleft()
                self.jobs.pop(jid, None)
                continue
            ident = self.pool.send(job.msg)
            if ident is None:
                break
            self.queue.popleft()
            job.worker, job.sent = ident, time.monotonic()

    def requeue(self, dead: list[bytes]) -> None:
        """A classify worker died: give its unanswered jobs to others."""
        for jid, job in self.jobs.items():
            if job.worker in dead and not job.entry.emitted:
                job.worker = None
                self.queue.appendleft(jid)
        # forget answers that will never come
        cutoff = time.monotonic() - 30
        for jid in [j for j, job in self.jobs.items() if job.entry.emitted and job.sent < cutoff]:
            del self.jobs[jid]

    # ------------------------------------------------------------------ output
    def emit_ready(self) -> None:
        now = time.monotonic()
        for name, st in list(self.streams.items()):
            while True:
                if st.next is None:
                    if not st.entries:
                        break
                    st.next = min(st.entries)
                e = st.entries.get(st.next)
                if e is None:
                    if st.eos is not None and st.next > st.eos.meta.get("last", -1):
                        self._send_eos(st)
                        del self.streams[name]
                        break
                    later = [f for f in st.entries if f > st.next]
                    if not later:
                        st.gap_since = None
                        break
                    st.gap_since = st.gap_since or now
                    wait = self.a.reorder_ms / 1000 if self.live else self.a.file_timeout_s
                    if now - st.gap_since < wait:
                        break
                    skip_to = min(later)
                    lost = skip_to - st.next
                    self.counters["frames_lost"] += lost
                    if not self.live:
                        self.log.error("frames %d..%d never arrived; skipping them", st.next, skip_to - 1)
                    st.next, st.gap_since = skip_to, None
                    continue
                if e.waiting and now < e.deadline:
                    break
                self._emit(st, e)
                del st.entries[st.next]
                st.next += 1
                st.gap_since = None

    def next_timeout_ms(self) -> int:
        t = 1000.0 * HEARTBEAT_S
        now = time.monotonic()
        for st in self.streams.values():
            if st.next in st.entries:
                t = min(t, 1000 * (st.entries[st.next].deadline - now))
            if st.gap_since is not None:
                t = min(t, 1000 * (st.gap_since + self.a.reorder_ms / 1000 - now))
        return max(0, int(t) + 1)

    @staticmethod
    def _known(st: Stream, box: list[float]) -> bool:
        """A tracked face with an emotion already is where this box is."""
        return any(t.probs is not None and iou(t.box, box) >= 0.3 for t in st.tracks)

    def _smooth(self, tr: Track, p: np.ndarray) -> None:
        a = min(max(self.a.smooth, 0.0), 0.95)
        tr.probs = p if tr.probs is None or len(tr.probs) != len(p) else a * tr.probs + (1 - a) * p

    def _assign_tracks(self, st: Stream, frame: int, faces: list[dict]) -> list[Track]:
        pairs = sorted(((iou(t.box, f["box"]), ti, fi) for ti, t in enumerate(st.tracks)
                        for fi, f in enumerate(faces)), reverse=True)
        taken_t: set[int] = set()
        out: dict[int, Track] = {}
        for score, ti, fi in pairs:
            if score < 0.3:
                break
            if ti in taken_t or fi in out:
                continue
            taken_t.add(ti)
            out[fi] = st.tracks[ti]
        for fi, f in enumerate(faces):
            if fi not in out:
                out[fi] = Track(next(self.track_ids), f["box"], frame)
                st.tracks.append(out[fi])
        for fi, f in enumerate(faces):
            out[fi].box, out[fi].last_frame = f["box"], frame
        st.tracks = [t for t in st.tracks if frame - t.last_frame <= 15]
        return [out[i] for i in range(len(faces))]

    def _emit(self, st: Stream, e: Entry) -> None:
        e.emitted = True
        msg = e.msg
        image = np.array(msg.image)  # our own writable copy of the received pixels
        for face, tr in zip(msg.faces, self._assign_tracks(st, msg.frame, msg.faces), strict=True):
            face["track"] = tr.id
            if face.get("probs"):
                self._smooth(tr, np.asarray(face["probs"], np.float32))
            if tr.probs is not None:
                k = int(np.argmax(tr.probs))
                face["emotion"], face["p"] = self.classes[k], round(float(tr.probs[k]), 3)
                if not face.get("probs"):
                    face["stale"] = True
            else:
                face["emotion"], face["stale"] = self.a.default_emotion, True
                self.counters["faces_unclassified"] += 1
            if self.a.render == "masks":
                mask = self.masks.get(face["emotion"]) or self.masks.get(self.a.default_emotion)
                if mask is not None:
                    masks.paint(image, face["box"], mask, roll_deg=masks.roll_from_keypoints(face.get("kp")))
            if self.a.debug or self.a.render == "boxes":
                masks.draw_debug(image, face)
        out = wire.Message("composited", msg.stream, msg.frame, msg.epoch, ts=msg.ts, faces=msg.faces,
                           meta=msg.meta, image=image)
        out.stamp("composite")
        self.counters["frames"] += 1
        out.stats("composite", self.counters)
        out.meta["workers"] = dict(self.worker_faces)
        if not send_with_backpressure(self.out, out, block=not self.live, timeout_s=0.05):
            self.counters["display_dropped"] += 1

    def _send_eos(self, st: Stream) -> None:
        eos = st.eos
        assert eos is not None
        eos.stats("composite", self.counters)
        eos.meta["workers"] = dict(self.worker_faces)
        send_with_backpressure(self.out, eos, block=True)
        self.log.info("stream %s finished at frame %s", eos.stream, eos.meta.get("last"))


def main() -> int:
    a = parse_args()
    log = service.setup_logging("composite", a.log_level)
    ctx = zmq.Context.instance()
    pull = sockets.make_socket(ctx, zmq.PULL)
    sockets.bind(pull, endpoint("detections"), "detections")
    router = sockets.make_socket(ctx, zmq.ROUTER, hwm=1000)
    auth = sockets.curve_server(router, a.curve_dir, ctx)
    sockets.bind(router, endpoint("classify"), "classify")
    push = sockets.make_socket(ctx, zmq.PUSH)
    push.connect(endpoint("display"))
    comp = Compositor(a, log, Dispatcher(router, "composite"), push)
    log.info("detections on %s, classify workers on %s%s, display at %s", endpoint("detections"),
             endpoint("classify"), " (CURVE)" if auth else "", endpoint("display"))
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    pull_registered = False
    while True:
        # file mode back-pressure: stop reading detections while too many frames wait here
        want_pull = comp.live or sum(len(s.entries) for s in comp.streams.values()) < 32
        if want_pull != pull_registered:
            (poller.register(pull, zmq.POLLIN) if want_pull else poller.unregister(pull))
            pull_registered = want_pull
        events = dict(poller.poll(comp.next_timeout_ms()))
        if pull in events:
            for _ in range(64):
                if not pull.poll(0):
                    break
                try:
                    comp.on_detections(wire.recv(pull))
                except wire.WireError as e:
                    comp.counters.drop("malformed", str(e))
        if router in events:
            while router.poll(0):
                ident, *frames = router.recv_multipart(copy=False)
                try:
                    comp.on_worker(ident.bytes, wire.decode(frames))
                except wire.WireError as e:
                    comp.counters.drop("malformed", str(e))
        comp.dispatch()
        comp.emit_ready()
        comp.requeue(comp.pool.expire())
        comp.counters.maybe_log(f"workers={len(comp.pool.workers)} ")


def cli() -> None:
    """Console-script entry point: errors as one line, exit codes as documented."""
    service.run_service("composite", main)


if __name__ == "__main__":
    cli()
