"""detect: find every face in a frame, cut a 48×48 grey crop of each, pass frame + boxes + crops on.

in       frame (a job from capture: DEALER → the frames link, announcing how many frames it takes at once)
out      detections (frame pixels forwarded untouched, zero-copy; an empty face list still says "no face in this
         frame") → composite (DEALER → the detections link); then ``done``, so capture knows the frame is through
         and may send another (file mode: once composite confirmed it has the frame); live: a frame already older
         than --max-age-ms is not worked on: a ``skip`` says so
how      BlazeFace follows the faces of each stream between spread-out scans (photos: a full scan each); frames
         bigger than --detect-size are scaled down for detection only
Run several (``honcho start -c detect=2``): the composite puts frames back in order.  One worker serves several
pipeline hosts with --connect tcp://HOST:5551 (repeatable; a HOST name resolving to several addresses is each of
them, looked up again every --resolve-s): frames from each host's frames link, detections to the same host.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import zmq

from dogfilter.common import health, options, service
from dogfilter.common.errors import DogfilterError
from dogfilter.common.options import Option, positive
from dogfilter.common.stage import too_old
from dogfilter.common.transport import discovery, shm, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, Confirmations, WorkerLink, poll_links, send
from dogfilter.common.transport.seal import load_or_create_secret
from dogfilter.common.transport.sockets import Links, is_local, stats_key, worker_identity
from dogfilter.common.transport.wire import Message
from dogfilter.common.vision.crops import face_crops
from dogfilter.common.vision.detectors import DETECTORS, Detector, create_detector, detect_at_most

STAGE = "detect"
OPTIONS = (
    Option("detector", "blazeface", "face detector: blazeface (fast, finds turned and small faces, gives keypoints) "
           "or haar (the tutorial's cascade)", choices=sorted(DETECTORS), launcher=True),
    Option("min_face", 30.0, "smallest face to find, in pixels of the picture detection looks at (blazeface; larger "
           "is faster: 60 costs about 40%% of 30)", type=positive(float), launcher=True),
    Option("detect_engine", "auto", "what runs BlazeFace (auto: onnxruntime when installed, the faster here; torch "
           "loads PyTorch)", choices=("auto", "onnxruntime", "torch")),
    Option("rescan", 8, "blazeface: spread the full scan for new faces over this many frames of a stream and follow "
           "known faces in between (1 = a full scan of every frame)", type=positive(int)),
    Option("scan_pixels", 200_000, "blazeface: a pass of the spread-out scan bigger than this many network input "
           "pixels is cut into overlapping parts, each run on a frame of its own, so no frame waits long for "
           "detection (the default cuts 1280×720's finest pass in four; 640×480's passes fit whole)",
           type=positive(int)),
    Option("landmarks", "on", "blazeface: each face's face mesh (468 landmarks, ~2 ms a face on one core) every frame, "
           "for its 3-D head pose and named points (the 3-D dog, aligned crops); a face is then followed by its "
           "landmarks, also turned further than the detector sees (off: boxes and 6 keypoints only, as before)",
           choices=("on", "off"), launcher=True),
    Option("mesh_every", 1, "blazeface, --landmarks on: run a followed face's mesh on one frame in this many (faces "
           "take turns; in between its landmarks move with the face): 2 halves the mesh's cost, at some liveliness",
           type=positive(int)),
    Option("detect_size", 1920, "longest side, in pixels, of the picture detection looks at: bigger frames are "
           "scaled down for detection (masks are still painted on the full frame)", type=positive(int),
           launcher=True),
    *discovery.OPTIONS,
)
GROUPS = [(STAGE, OPTIONS), ("pipeline", options.PIPELINE), ("links", options.links("frames", "detections"))]


class Detect:
    """The stage without its sockets: a frame (or end of stream) in, the message for the composite out."""

    def __init__(self, detector: Detector, counters: Counters, *, live: bool, max_age_s: float,
                 detect_size: int) -> None:
        self.detector, self.counters = detector, counters
        self.live, self.max_age_s, self.detect_size = live, max_age_s, detect_size
        self.stats_key = STAGE  # one of several processes: detect@worker (the display adds them up)

    def on_message(self, msg: Message, now: float, host: str | None = None) -> list[Message]:
        """A frame (or end of stream) in, the one message for the composite out.  ``host``: the pipeline host the
        frame came from, when this worker serves several (each host's streams are followed apart, though two hosts
        may both name a stream cam0)."""
        video = (msg.stream, msg.epoch) if host is None else (host, msg.stream, msg.epoch)  # the tracker's key
        if msg.kind == "eos":
            out = msg.derive("eos")
            tracker = getattr(self.detector, "tracker", None)
            if tracker is not None:  # the stream ended: its faces are forgotten now, not when pushed out
                tracker.streams.pop(video, None)
        elif self.live and too_old(msg, now, self.max_age_s):
            self.counters["stale_frames"] += 1  # it waited too long to be worth a look: say so, do not wait for it
            out = msg.derive("skip", image=None, meta={**msg.meta, "reason": "stale"})
        else:
            msg.stamp("detect_in")
            assert msg.image is not None  # a frame carries one (wire.PARTS)
            faces = detect_at_most(self.detector, msg.image, self.detect_size,
                                   None if msg.meta.get("still") else video, msg.frame)  # photos: each on its own
            crops = face_crops(msg.image, [f.box for f in faces])
            if wire.image_intact(msg):
                out = msg.derive("detections", faces=faces, crops=crops)
                self.counters["frames"] += 1
                self.counters["faces"] += len(faces)
                self._tracking_counts()
                out.stamp("detect")
            else:  # capture reused the frame's shared-memory slot meanwhile: what we saw is not this frame
                self.counters.drop("shm_stale", f"frame {msg.stream}:{msg.frame} changed in shared memory")
                out = msg.derive("skip", image=None, meta={**msg.meta, "reason": "stale"})
        if self.live:
            out.meta.pop("job", None)  # capture's job id: only file mode asks composite to confirm it
        out.stats(self.stats_key, self.counters)
        return [out]

    def tick(self, now: float) -> list[Message]:
        return []  # nothing waits in detect: every frame is answered at once

    def wait_s(self, now: float) -> float:
        return HEARTBEAT_S

    def _tracking_counts(self) -> None:
        """The tracker's own figures (full scans of a stream, scan passes run and skipped), beside the stage's."""
        tracker = getattr(self.detector, "tracker", None)
        if tracker is not None:
            for k in ("full_scans", "scan_passes", "scans_skipped", "meshed", "mesh_rejected",
                      "mesh_carried"):
                self.counters[k] = tracker.counts[k]


def make_handler(o: argparse.Namespace, counters: Counters) -> Detect:
    """The stage's handler, from its options (the process below and the one-shot path use it)."""
    extra = {"min_face": o.min_face, "engine": o.detect_engine, "rescan": o.rescan, "scan_pixels": o.scan_pixels,
             "landmarks": o.landmarks == "on", "mesh_every": o.mesh_every} if o.detector == "blazeface" else {}
    return Detect(create_detector(o.detector, **extra), counters, live=o.mode == "live", max_age_s=o.max_age_ms / 1000,
                  detect_size=o.detect_size)


@dataclass
class Host:
    """One pipeline host this worker serves: its frames link (jobs) and its detections link."""

    addr: str
    link: WorkerLink
    out: zmq.Socket
    sent: Confirmations


FLEET_DETECTIONS_PORT = 5552


def run(o: argparse.Namespace, log: logging.Logger) -> int:
    live = o.mode == "live"
    out_port = discovery.port_of(o.detections_addr)
    if o.connect and out_port is None and not o.detections_addr.startswith("tcp://"):
        out_port = FLEET_DETECTIONS_PORT  # the default link is ipc:// on one host: a fleet's hosts listen on 5552
    if o.connect and (out_port is None or any(discovery.port_of(a) is None for a in o.connect)):
        raise DogfilterError("--connect takes tcp://HOST:PORT (a host's frames link), and --detections-addr must be "
                             "tcp://...:PORT: detections go to the same host at that port")

    def out_of(addr: str) -> str:
        """Where the detections of the frames from ``addr`` go."""
        if not o.connect:
            return o.detections_addr
        assert out_port is not None  # checked above
        return discovery.with_port(addr, out_port)

    counters = Counters(STAGE, log)
    handler = make_handler(o, counters)
    detector = handler.detector
    info: wire.Meta = {"detector": detector.name}
    shared = share_memory(o, log)
    if shared is not None:
        info["shm"] = shared
    links = Links(o.curve_dir, o.allow_plaintext)
    me = worker_identity(STAGE)
    handler.stats_key = stats_key(STAGE, me)

    def open_host(addr: str) -> Host:
        frames = links.connect(zmq.DEALER, addr, routing_id=me)
        out = links.connect(zmq.DEALER, out_of(addr), routing_id=me)
        link = WorkerLink(frames, 1 if live else 2, info, counters, accepts=("frame", "eos"))
        link.announce()
        # file mode: capture hears "done" once the composite has the frame
        return Host(addr, link, out, Confirmations(out, counters, handles=shared is not None))

    def close_host(h: Host) -> None:
        links.discard(h.link.sock)
        links.discard(h.out)

    def sockets_of(addr: str, h: Host) -> list[tuple[str, zmq.Socket]]:
        return [(addr, h.link.sock), (out_of(addr), h.out)]

    wanted = o.connect or [o.frames_addr]
    hosts = discovery.Hosts(discovery.Resolver(wanted, o.resolve_s, log, counters).start(), open_host, close_host,
                            sockets_of, log, counters)
    try:
        health.ready()
        log.info("%s detector, frames from %s, detections to %s", detector.name, ", ".join(wanted),
                 f"each host's port {out_port}" if o.connect else o.detections_addr)
        while True:
            health.beat()
            hosts.refresh()
            serving = list(hosts.links.values())
            if not serving:  # a name that resolves to nothing (yet)
                time.sleep(0.2)
                continue
            by_link = {id(h.link): h for h in serving}
            now = time.monotonic()
            wait = min(HEARTBEAT_S, *(h.sent.wait_s(now) for h in serving))
            for link, job in poll_links([h.link for h in serving], wait, also=tuple(h.out for h in serving)):
                h = by_link[id(link)]
                (result,) = handler.on_message(job, time.time(), h.addr if o.connect else None)
                if not live:
                    h.sent.send(result, job, on_wait=link.tick)
                elif not send(h.out, result, block=result.kind == "eos", timeout_s=0.5, on_wait=link.tick,
                              handles=shared is not None):
                    counters["frames_dropped"] += 1  # live: composite is gone or stuck; the frame is stale anyway
                if live:
                    link.done(job)
            for h in serving:
                for job, delivered in h.sent.settle(on_wait=h.link.tick):
                    h.link.done(job, give_back=not delivered)  # composite full for a while: capture sends it later
            counters.maybe_log(f"hosts={len(serving)} " if o.connect else "")
    finally:
        hosts.close()
        links.close()


def share_memory(o: argparse.Namespace, log: logging.Logger) -> str | None:
    """Frames from capture through shared memory (``transport/shm.py``), where capture and the composite are on
    this host (links on ipc or loopback, no --connect): maps this pipeline's segments (read-only), and returns what
    to announce (capture then sends handles; a handle is forwarded to the composite as it came).  None: pixels."""
    if o.connect or not (is_local(o.frames_addr) and is_local(o.detections_addr)):
        return None
    try:
        secret = load_or_create_secret(o.secret_file)
    except DogfilterError as e:
        log.info("shared memory off: %s", e)
        return None
    dom = shm.domain(secret)
    if dom is not None:
        wire.SHM.reader = shm.Reader(shm.token(secret), copy=False)
    return dom


def cli() -> None:
    service.cli(STAGE, __doc__, GROUPS, run)


if __name__ == "__main__":
    cli()
