"""detect: find every face in a frame, cut a 48×48 grey crop of each, pass frame + boxes + crops on.

connect  DEALER → capture (DOGFILTER_FRAMES_ADDR), announcing credit; PUSH → composite (DOGFILTER_DETECTIONS_ADDR)
loop     take a frame, detect, send, give the credit back; heartbeat when idle
handle   detector.detect(frame, stream, frame number) → boxes (an empty list still says "no face in this frame"):
         BlazeFace follows the faces of each stream between spread-out scans; crops for classify
send     detections (the frame's pixels forwarded untouched, zero-copy)
Run several (``honcho start -c detect=2``): the composite puts frames back in order.
"""

from __future__ import annotations

import numpy as np
import zmq
from dogfilter.common import service
from dogfilter.common.service import env
from dogfilter.common.transport import sockets, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, CreditLink, send_with_backpressure
from dogfilter.common.transport.sockets import endpoint
from dogfilter.common.vision.detectors import DETECTORS, create_detector
from dogfilter.common.vision.models import CROP, face_crop


def parse_args():  # noqa: ANN201
    p = service.base_parser("detect", __doc__.splitlines()[0])
    p.add_argument("--detector", default=env("detector", "blazeface"), choices=sorted(DETECTORS),
                   help="blazeface (default: fast, finds turned and small faces, gives keypoints) or haar (the "
                        "tutorial's cascade)")
    p.add_argument("--min-face", type=float, default=float(env("min_face", 30)),
                   help="blazeface: smallest face to find, in pixels (default 30, Haar's minimum); larger is faster "
                        "(it sets the scale of the frame the network sees: 60 costs about 40%% of 30)")
    p.add_argument("--engine", default=env("engine", "auto"), choices=["auto", "onnxruntime", "torch"],
                   help="blazeface: what runs the network (auto: onnxruntime when installed, the faster here)")
    p.add_argument("--rescan", type=int, default=int(env("rescan", 8)),
                   help="blazeface: spread the full scan for new faces over this many frames of a stream and follow "
                        "known faces in between (default 8; 1 = a full scan of every frame)")
    return p.parse_args()


def main() -> int:
    a = parse_args()
    log = service.setup_logging("detect", a.log_level)
    options = {"min_face": a.min_face, "engine": a.engine, "rescan": a.rescan} if a.detector == "blazeface" else {}
    detector = create_detector(a.detector, **options)
    ctx = zmq.Context.instance()
    frames = sockets.make_socket(ctx, zmq.DEALER)
    frames.setsockopt(zmq.ROUTING_ID, sockets.worker_identity("detect"))
    frames.connect(endpoint("frames"))
    out = sockets.make_socket(ctx, zmq.PUSH)
    out.connect(endpoint("detections"))
    link = CreditLink(frames, window=1 if a.mode == "live" else 2, info={"detector": detector.name})
    link.announce()
    counters = Counters("detect", log)
    block = a.mode == "file"
    log.info("%s detector, frames from %s, detections to %s", detector.name, endpoint("frames"), endpoint("detections"))

    while True:
        if not frames.poll(int(1000 * HEARTBEAT_S)):
            link.tick()
            continue
        try:
            msg = wire.recv(frames)
        except wire.WireError as e:
            counters.drop("malformed", str(e))
            link.grant(1)
            continue
        if msg.kind == "reset":
            link.announce()
            continue
        if msg.kind == "eos":
            msg.stats("detect", counters)
            send_with_backpressure(out, msg, block=True, on_wait=link.tick)
            link.grant(1)
            continue
        if msg.kind != "frame" or msg.image is None:
            counters.drop("unexpected", f"{msg.kind} message without a frame")
            link.grant(1)
            continue

        msg.stamp("detect_in")
        video = None if msg.meta.get("still") else (msg.stream, msg.epoch)  # photos: each on its own
        faces = detector.detect(msg.image, stream=video, frame=msg.frame)
        crops = (np.stack([face_crop(msg.image, f.box) for f in faces]) if faces
                 else np.zeros((0, CROP, CROP), np.uint8))
        det = wire.Message("detections", msg.stream, msg.frame, msg.epoch, ts=msg.ts,
                           faces=[f.to_wire() for f in faces], meta=msg.meta, image=msg.image, crops=crops)
        det._image_src = msg._image_src  # forward the pixels as received
        counters["frames"] += 1
        counters["faces"] += len(faces)
        det.stamp("detect")
        det.stats("detect", counters)
        if not send_with_backpressure(out, det, block=block, timeout_s=0.5, on_wait=link.tick):
            counters["frames_dropped"] += 1  # live: composite is gone or stuck; the frame is stale anyway
        link.grant(1)
        counters.maybe_log()


def cli() -> None:
    """Console-script entry point: errors as one line, exit codes as documented."""
    service.run_service("detect", main)


if __name__ == "__main__":
    cli()
