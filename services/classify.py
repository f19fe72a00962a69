"""classify: emotion probabilities for batches of face crops.

connect  DEALER → the composite's classify endpoint (DOGFILTER_CLASSIFY_ADDR, or --connect tcp://HOST:PORT from
         another machine), announcing how many jobs it accepts; optionally CURVE-encrypted (--curve-dir)
loop     wait for jobs; take every job already queued (up to --max-batch faces) as one batch
handle   one forward pass of the model over the whole batch (CPU or CUDA)
send     one ``emotions`` reply per job (each reply also returns one credit); heartbeat when idle
Run several (``honcho start -c classify=3``) or on other machines: the composite balances the load.
"""

from __future__ import annotations

import numpy as np
import zmq
from dogfilter.common import service
from dogfilter.common.service import env
from dogfilter.common.transport import sockets, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, CreditLink
from dogfilter.common.transport.sockets import endpoint
from dogfilter.common.vision.models import DEFAULT_MODEL, EmotionClassifier


def parse_args():  # noqa: ANN201
    p = service.base_parser("classify", __doc__.splitlines()[0])
    p.add_argument("--model", default=env("model", str(DEFAULT_MODEL)),
                   help="checkpoint in the tutorial's format (default: the project's FER2013-trained tutorial CNN)")
    p.add_argument("--device", default=env("device", "cpu"), choices=["cpu", "cuda"])
    p.add_argument("--connect", default=None, help="the pipeline host's classify endpoint, e.g. tcp://HOST:5553")
    p.add_argument("--window", type=int, default=int(env("classify_window", 8)), help="jobs in flight per worker")
    p.add_argument("--max-batch", type=int, default=int(env("max_batch", 256)), help="faces per forward pass")
    p.add_argument("--threads", type=int, default=int(env("threads", 1)), help="torch CPU threads")
    return p.parse_args()


def main() -> int:
    a = parse_args()
    log = service.setup_logging("classify", a.log_level)
    import torch

    torch.set_num_threads(max(1, a.threads))
    clf = EmotionClassifier(a.model, a.device)
    clf.predict_proba(np.zeros((1, 48, 48), np.uint8))  # warm up before announcing
    ctx = zmq.Context.instance()
    sock = sockets.make_socket(ctx, zmq.DEALER, hwm=max(4, a.window * 2))
    ident = sockets.worker_identity("classify")
    sock.setsockopt(zmq.ROUTING_ID, ident)
    sockets.curve_client(sock, a.curve_dir)
    addr = a.connect or endpoint("classify")
    sock.connect(addr)
    link = CreditLink(sock, window=a.window,
                      info={"model": clf.name, "classes": clf.classes, "device": a.device})
    link.announce()
    counters = Counters("classify", log)
    log.info("model %s (%s) on %s, jobs from %s", clf.name, "/".join(clf.classes), a.device, addr)

    while True:
        if not sock.poll(int(1000 * HEARTBEAT_S)):
            link.tick()
            continue
        jobs: list[wire.Message] = []
        n_faces = 0
        while n_faces < a.max_batch and sock.poll(0):
            try:
                msg = wire.recv(sock)
            except wire.WireError as e:
                counters.drop("malformed", str(e))
                link.grant(1)
                continue
            if msg.kind == "reset":
                link.announce()
            elif msg.kind != "crops" or msg.crops is None or "job" not in msg.meta:
                counters.drop("unexpected", f"{msg.kind} message is not a crops job")
                link.grant(1)
            else:
                jobs.append(msg)
                n_faces += len(msg.crops)
        if not jobs:
            continue
        probs = clf.predict_proba(np.concatenate([j.crops for j in jobs]))
        counters["batches"] += 1
        counters["faces"] += len(probs)
        i = 0
        for job in jobs:
            n = len(job.crops)
            faces = [{"box": f["box"], "probs": [round(float(p), 5) for p in probs[i + k]]}
                     for k, f in enumerate(job.faces)]
            i += n
            reply = wire.Message("emotions", job.stream, job.frame, job.epoch, faces=faces,
                                 meta={"job": job.meta["job"], "classes": clf.classes, "worker": ident.decode(),
                                       "handled": counters["faces"]})
            reply.stats("classify", counters)
            try:
                wire.send(sock, reply, flags=zmq.NOBLOCK)
            except zmq.Again:  # the composite is gone: the result is stale by the time it is back
                counters["replies_dropped"] += 1
            link.sent_something()
        counters.maybe_log()


def cli() -> None:
    """Console-script entry point: errors as one line, exit codes as documented."""
    service.run_service("classify", main)


if __name__ == "__main__":
    cli()
