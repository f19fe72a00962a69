"""classify: emotion probabilities for batches of face crops.

in       crops jobs from one or more pipeline hosts (DEALER → each host's classify link: the local one, or
         --connect tcp://HOST:PORT, repeatable: one worker, e.g. on a GPU machine, serves a fleet; a HOST name that
         resolves to several addresses is each of them, looked up again every --resolve-s), announcing how
         many jobs it takes at once, the model it runs and its classes; CURVE-encrypted with --curve-dir
how      the jobs waiting on every link, and those that come within --batch-wait-ms (up to --max-batch faces), go
         through the model as one batch: faces of all frames, streams and hosts together
out      one ``emotions`` reply per job, back to the host it came from (it names the job and frees its credit)
Run several (``honcho start -c classify=3``) or on other machines: each host balances its load over them.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import deque

import numpy as np
import zmq

from dogfilter.common import health, options, service
from dogfilter.common.options import Option, non_negative, positive
from dogfilter.common.transport import discovery
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, WorkerLink, poll_links
from dogfilter.common.transport.sockets import Links, worker_identity
from dogfilter.common.transport.wire import Face, Message, Meta
from dogfilter.common.vision.classifier import Classifier, load_classifier

STAGE = "classify"
OPTIONS = (
    Option("model", None, "emotion model: a checkpoint in the tutorial's format (default: the project's FerNet, "
           "common/assets/models/fer4_fernet.pth)", metavar="PATH", launcher=True),
    Option("device", "cpu", "where the model runs", choices=("cpu", "cuda"), launcher=True),
    Option("classify_engine", "auto", "what runs the emotion model (auto: onnxruntime when the model has its own ONNX "
           "export, as the default model does, without loading PyTorch; else torch)",
           choices=("auto", "onnxruntime", "torch")),
    Option("classify_window", 8, "jobs in flight per host", type=positive(int)),
    Option("max_batch", 256, "faces per forward pass, at most", type=positive(int)),
    Option("batch_wait_ms", 2.0, "once a job came, wait this long for more before the forward pass (a batch that "
           "fills up or waits at most this: more faces a pass on a GPU)", type=non_negative(float)),
    Option("threads", 1, "PyTorch CPU threads", type=positive(int)),
    *discovery.OPTIONS,
)
GROUPS = [(STAGE, OPTIONS), ("pipeline", options.PIPELINE), ("links", options.links("classify"))]


class BusyMeter:
    """The fraction of the last ``window_s`` seconds spent in forward passes: the figure to scale classify workers
    on (``/metrics`` of ``--health-port``: ``dogfilter_classify_busy_ratio``; on a GPU the CPU use says nothing).
    One-second buckets, so its state is bounded whatever the batch rate."""

    def __init__(self, window_s: int = 10) -> None:
        self.window_s = window_s
        self.buckets: dict[int, float] = {}

    def add(self, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = int(now)
        self.buckets[key] = self.buckets.get(key, 0.0) + seconds
        for old in [k for k in self.buckets if k <= key - self.window_s]:
            del self.buckets[old]

    def fraction(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        busy = sum(v for k, v in list(self.buckets.items()) if k > now - self.window_s - 1)
        return min(1.0, busy / self.window_s)


class Classify:
    """The stage without its sockets: jobs in, one reply per job out, one forward pass for many jobs.

    ``on_message`` takes a job into the batch; the batch goes through the model once it holds ``max_batch`` faces
    (a job that would overfill it starts the next one) or, at ``tick``, once ``batch_wait_s`` passed since its first
    job came (faces of other frames, streams and hosts batch together).  Replies come out in the order the jobs
    went in."""

    def __init__(self, classifier: Classifier, counters: Counters, worker: str, *, max_batch: int = 256,
                 batch_wait_s: float = 0.0) -> None:
        self.clf, self.counters, self.worker = classifier, counters, worker
        self.max_batch, self.batch_wait_s = max_batch, batch_wait_s
        self.batch: list[Message] = []
        self.faces = 0  # in the batch
        self.since = 0.0  # when the batch's first job came

    def on_message(self, msg: Message, now: float) -> list[Message]:
        out = self._run() if self.batch and self.faces + _faces(msg) > self.max_batch else []
        if not self.batch:
            self.since = now
        self.batch.append(msg)
        self.faces += _faces(msg)
        if self.faces >= self.max_batch:
            out += self._run()
        return out

    def tick(self, now: float) -> list[Message]:
        return self._run() if self.batch and now >= self.since + self.batch_wait_s else []

    def wait_s(self, now: float) -> float:
        return max(0.0, self.since + self.batch_wait_s - now) if self.batch else HEARTBEAT_S

    def _run(self) -> list[Message]:
        """The batch through the model: one reply per job."""
        jobs, self.batch, self.faces = self.batch, [], 0
        probs = self.clf.predict_proba(np.concatenate([j.crops for j in jobs if j.crops is not None]))
        self.counters["batches"] += 1
        self.counters["faces"] += len(probs)
        replies, i = [], 0
        for job in jobs:
            faces = [Face(box=f.box, probs=[round(float(p), 5) for p in probs[i + k]]) for k, f in enumerate(job.faces)]
            i += _faces(job)
            reply = Message("emotions", job.stream, job.frame, job.epoch, faces=faces,
                            meta={"job": job.meta["job"], "worker": self.worker})
            reply.stats(STAGE, self.counters)
            replies.append(reply)
        return replies


def make_handler(o: argparse.Namespace, counters: Counters, worker: str) -> Classify:
    """The stage's handler, from its options (the process below and the one-shot path use it)."""
    return Classify(load_classifier(o.model, o.device, o.classify_engine, o.threads), counters, worker,
                    max_batch=o.max_batch, batch_wait_s=o.batch_wait_ms / 1000)


def run(o: argparse.Namespace, log: logging.Logger) -> int:
    counters = Counters(STAGE, log)
    ident = worker_identity(STAGE)
    handler = make_handler(o, counters, ident.decode())
    clf = handler.clf
    clf.predict_proba(np.zeros((1, 48, 48), np.uint8))  # warm up before announcing
    info: Meta = {"model": clf.name[:64], "classes": clf.classes, "device": o.device}
    links = Links(o.curve_dir, o.allow_plaintext)

    def open_link(addr: str) -> WorkerLink:
        sock = links.connect(zmq.DEALER, addr, routing_id=ident, hwm=max(4, 2 * o.classify_window))
        link = WorkerLink(sock, o.classify_window, info, counters, accepts=("crops",))
        link.announce()
        return link

    wanted = o.connect or [o.classify_addr]
    hosts = discovery.Hosts(discovery.Resolver(wanted, o.resolve_s, log, counters).start(), open_link,
                            lambda link: links.discard(link.sock), lambda addr, link: [(addr, link.sock)], log,
                            counters)
    try:
        busy = BusyMeter()
        health.gauge("classify_busy_ratio", "fraction of the last 10 s this worker spent in forward passes",
                     busy.fraction)
        health.gauge("classify_faces_total", "faces this worker classified", lambda: counters["faces"],
                     "counter")
        health.ready()
        log.info("model %s (%s) on %s (%s), jobs from %s", clf.name, "/".join(clf.classes), o.device, clf.engine,
                 ", ".join(wanted))
        origin: deque[WorkerLink] = deque()  # the link each job in the batch came from, in order

        def deliver(replies: list[Message], t0: float) -> None:
            if replies:
                busy.add(time.monotonic() - t0)
            for reply in replies:
                link = origin.popleft()
                try:
                    sent = link.reply(reply)
                except zmq.ZMQError:  # its host was let go (discovery) while the batch waited
                    sent = False
                if not sent:
                    counters["replies_dropped"] += 1  # that host is gone: the result would be stale anyway

        while True:
            health.beat()
            hosts.refresh()
            serving = list(hosts.links.values())
            if not serving:  # no host (yet): a name that resolves to nothing
                time.sleep(min(HEARTBEAT_S, 0.2))
                continue
            # whole milliseconds, rounded up (poll's unit): a batch's last fraction of a millisecond is slept, not spun
            wait = math.ceil(1000 * min(HEARTBEAT_S, handler.wait_s(time.time()))) / 1000
            for link, job in poll_links(serving, wait):
                origin.append(link)
                t0 = time.monotonic()
                deliver(handler.on_message(job, time.time()), t0)
            t0 = time.monotonic()
            deliver(handler.tick(time.time()), t0)
            counters.maybe_log(f"hosts={len(hosts.links)} ")
    finally:
        hosts.close()
        links.close()


def _faces(job: Message) -> int:
    """How many faces a job asks about (a crops message carries its crops: wire.PARTS)."""
    return 0 if job.crops is None else len(job.crops)


def cli() -> None:
    service.cli(STAGE, __doc__, GROUPS, run)


if __name__ == "__main__":
    cli()
