"""capture: read frames from a source and hand each to a detect worker that asked for one.

connect  ROUTER bound at DOGFILTER_FRAMES_ADDR; detect workers connect and announce credit (protocol.py)
loop     live: a reader thread paces the source; the newest frame waits in a one-frame slot and is sent as soon
               as a worker has credit; a frame overwritten before it could be sent is dropped and counted, so
               lag never grows.
         file: the next frame is read only when a worker has credit: every frame, in order, no drops.
handle   number each sent frame (stream, epoch, frame number, capture timestamp)
send     frame → detect; after the last frame, eos (carrying the last frame number)
"""

from __future__ import annotations

import threading
import time

import zmq
from dogfilter.common import service
from dogfilter.common.errors import DogfilterError
from dogfilter.common.media.sources import DemoSource, Source, open_source, parse_size
from dogfilter.common.service import env
from dogfilter.common.transport import sockets, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import HEARTBEAT_S, Dispatcher
from dogfilter.common.transport.sockets import endpoint


def parse_args():  # noqa: ANN201
    p = service.base_parser("capture", __doc__.splitlines()[0])
    p.add_argument("--source", default=env("source", "demo"),
                   help="demo | camera index (0) | video file | image file | folder of images")
    p.add_argument("--fps", type=float, default=float(env("fps", 0) or 0),
                   help="live pacing (default: the source's own rate, else 30)")
    p.add_argument("--size", default=env("size"), help="resize frames to WIDTHxHEIGHT (demo: render size)")
    p.add_argument("--loop", action="store_true", default=env("loop", "0") == "1", help="loop a file source")
    p.add_argument("--frames", type=int, default=int(env("frames", 0) or 0), help="stop after N frames")
    p.add_argument("--jpeg", type=int, default=int(env("jpeg", 0) or 0),
                   help="send frames as JPEG of this quality (for remote links); 0 = raw")
    p.add_argument("--exit-on-eos", action="store_true", help="exit once the source is done (default: stay up)")
    return p.parse_args()


class Reader(threading.Thread):
    """Live mode: reads the source at its pace and passes each frame to the main loop over an inproc socket."""

    def __init__(self, ctx: zmq.Context, src: Source, fps: float, limit: int, stream: str, epoch: int) -> None:
        super().__init__(daemon=True, name="reader")
        self.src, self.period, self.limit, self.stream, self.epoch = src, 1.0 / fps, limit, stream, epoch
        self.out = ctx.socket(zmq.PAIR)
        self.out.setsockopt(zmq.SNDHWM, 2)
        self.out.bind("inproc://frames")
        self.error: str | None = None

    def run(self) -> None:
        i, next_t = 0, time.monotonic()
        paced = self.src.kind != "camera"  # a camera paces itself
        while not self.limit or i < self.limit:
            if paced:
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_t = max(next_t + self.period, time.monotonic() - self.period)
            try:
                img = self.src.read()
            except DogfilterError as e:
                self.error = str(e)
                break
            if img is None:
                break
            msg = wire.Message("frame", self.stream, i, self.epoch, image=img)
            msg.stamp("capture")
            self.out.send_multipart(wire.encode(msg), copy=False)
            i += 1
        self.out.send_multipart(wire.encode(wire.Message("eos", self.stream, 0, self.epoch, meta={"read": i})))


def main() -> int:
    a = parse_args()
    log = service.setup_logging("capture", a.log_level)
    src = open_source(a.source, parse_size(a.size), a.fps or 30.0, a.loop)
    fps = a.fps or src.fps or 30.0
    ctx = zmq.Context.instance()
    router = sockets.make_socket(ctx, zmq.ROUTER)
    sockets.bind(router, endpoint("frames"), "frames")
    pool = Dispatcher(router, "capture")
    counters = Counters("capture", log)
    epoch = int(time.time() * 1000)
    jpeg = a.jpeg or None
    log.info("source %s (%s) at %.1f fps, %s mode, frames on %s", a.source, src.kind, fps, a.mode, endpoint("frames"))

    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    reader = None
    # live + the demo scene: render on demand the instant that is due when a detector is free (no thread, no
    # frames rendered only to be dropped); a camera or a file must be read as it comes: a reader thread does that
    on_demand = a.mode == "live" and isinstance(src, DemoSource)
    t_start, last_due = time.monotonic(), -1
    if a.mode == "live" and not on_demand:
        reader = Reader(ctx, src, fps, a.frames, a.stream, epoch)
        pair = ctx.socket(zmq.PAIR)
        pair.connect("inproc://frames")
        poller.register(pair, zmq.POLLIN)
        reader.start()

    sent = 0  # frames handed to detect = the next frame number
    slot: wire.Message | None = None  # live: the newest frame not yet sent
    source_done = eos_sent = False

    def finish_frame(msg: wire.Message) -> wire.Message:
        msg.frame = sent
        msg.meta.update({"fps": fps, "mode": a.mode})
        if src.kind == "images":
            msg.meta["still"] = True  # photos, not video: detect must not carry faces from one to the next
        msg.stats("capture", counters)
        return msg

    while True:
        timeout = 1000 * HEARTBEAT_S
        if on_demand and pool.available():
            timeout = max(0.0, 1000 * (t_start + (last_due + 1) / fps - time.monotonic()))
        events = dict(poller.poll(int(timeout) + (0 if timeout == 0 else 1)))
        if router in events:
            while router.poll(0):
                ident, *frames = router.recv_multipart(copy=False)
                try:
                    pool.handle(ident.bytes, wire.decode(frames))
                except wire.WireError as e:
                    counters.drop("malformed", str(e))
        if reader is not None and pair in events:
            while pair.poll(0):
                msg = wire.decode(pair.recv_multipart(copy=False))
                if msg.kind == "eos":
                    source_done = True
                    if reader.error:
                        log.error("%s", reader.error)
                    continue
                if slot is not None:
                    counters["frames_dropped"] += 1  # newest frame wins
                slot = msg
            if slot is not None and pool.available():
                pool.send(finish_frame(slot), jpeg)
                slot, sent = None, sent + 1
        if on_demand:
            due = int((time.monotonic() - t_start) * fps)
            if a.frames and due >= a.frames:
                source_done = True
            elif due > last_due and pool.available():
                counters["frames_dropped"] += due - last_due - 1  # instants nobody was free to take
                msg = wire.Message("frame", a.stream, sent, epoch, image=src.render_at(due))
                msg.stamp("capture")
                pool.send(finish_frame(msg), jpeg)
                sent, last_due = sent + 1, due
        elif reader is None:  # file mode: read only what a worker asked for
            while not source_done and pool.available():
                try:
                    img = src.read() if not a.frames or sent < a.frames else None
                except DogfilterError as e:
                    log.error("%s", e)
                    img = None
                if img is None:
                    source_done = True
                    break
                msg = wire.Message("frame", a.stream, sent, epoch, image=img)
                msg.stamp("capture")
                pool.send(finish_frame(msg), jpeg)
                sent += 1
        if source_done and slot is None and not eos_sent and pool.available():
            eos = wire.Message("eos", a.stream, sent, epoch, meta={"last": sent - 1})
            eos.stats("capture", counters)
            pool.send(eos)
            eos_sent = True
            log.info("source finished after %d frames (%d dropped)", sent, counters["frames_dropped"])
            if a.exit_on_eos:
                return 0
        pool.expire()
        counters.maybe_log(f"sent={sent} workers={len(pool.workers)} ")


def cli() -> None:
    """Console-script entry point: errors as one line, exit codes as documented."""
    service.run_service("capture", main)


if __name__ == "__main__":
    cli()
