"""display: show, record and serve the composited frames; measure fps, per-stage latency and drops.

connect  PULL bound at DOGFILTER_DISPLAY_ADDR (composite pushes)
loop     take each composited frame as it comes (they arrive in order)
handle   latency per hop from the frame's stage timestamps; fps; every stage's drop counters
send     to the sinks: an OpenCV window (--window; q quits), a file (--output: video .mp4/.avi/.mkv, or an image
         .png/.jpg, or a folder/ of numbered images), and a browser view (--http PORT: MJPEG + a page with live
         fps, latency and drops). Exits at end of stream.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq
from dogfilter.common import service
from dogfilter.common.errors import DogfilterError
from dogfilter.common.service import env
from dogfilter.common.transport import sockets, wire
from dogfilter.common.transport.metrics import Counters, Rate, Window, hops
from dogfilter.common.transport.sockets import endpoint

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp"}


def parse_args():  # noqa: ANN201
    p = service.base_parser("display", __doc__.splitlines()[0])
    p.add_argument("--window", action="store_true", default=env("window", "0") == "1", help="OpenCV window")
    p.add_argument("--output", default=env("output"), help="record to a video, an image, or a folder/")
    p.add_argument("--http", type=int, default=int(env("http_port", 0) or 0), help="browser view port (0: off)")
    p.add_argument("--http-host", default=env("http_host", "127.0.0.1"))
    p.add_argument("--stats-out", default=env("stats_out"), help="write the statistics as JSON here")
    p.add_argument("--keep-running", action="store_true", help="do not exit at end of stream")
    return p.parse_args()


class Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.rate = Rate()
        self.latency: dict[str, Window] = {}
        self.stages: dict[str, dict[str, int]] = {}
        self.workers: dict[str, int] = {}
        self.emotions: Counter[str] = Counter()
        self.faces = 0
        self.started = time.monotonic()
        self.size: list[int] = []

    def add(self, msg: wire.Message) -> None:
        self.frames += 1
        self.rate.tick()
        for hop, ms in hops(msg.ts).items():
            self.latency.setdefault(hop, Window()).add(ms)
        self.absorb(msg)
        self.faces += len(msg.faces)
        self.emotions.update(str(f.get("emotion")) for f in msg.faces)
        if msg.image is not None:
            self.size = list(msg.image.shape[:2][::-1])

    def absorb(self, msg: wire.Message) -> None:
        st = msg.meta.get("stats")
        if isinstance(st, dict):
            for stage, counts in st.items():
                if isinstance(counts, dict):
                    self.stages[str(stage)] = {str(k): v for k, v in counts.items() if isinstance(v, int)}
        w = msg.meta.get("workers")
        if isinstance(w, dict):
            self.workers = {str(k): v for k, v in w.items() if isinstance(v, int)}

    def as_dict(self, own: Counter) -> dict[str, Any]:
        return {
            "frames": self.frames, "fps": round(self.rate.per_second(), 2), "size": self.size,
            "elapsed_s": round(time.monotonic() - self.started, 2),
            "latency_ms": {k: w.summary() for k, w in self.latency.items()},
            "counters": {**self.stages, "display": dict(own)},
            "classify_workers": self.workers, "faces": self.faces, "emotions": dict(self.emotions),
        }


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.n = 0
        self.folder = path.endswith(("/", os.sep)) or self.path.is_dir()
        ext = self.path.suffix.lower()
        if not self.folder and ext not in VIDEO_CODECS and ext not in IMAGE_EXTS:
            raise DogfilterError(f"--output {path}: unknown kind (use {', '.join(sorted(VIDEO_CODECS))}, "
                                 f"{', '.join(sorted(IMAGE_EXTS))} or a folder/)")
        parent = self.path if self.folder else self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DogfilterError(f"--output {path}: cannot create {parent}: {e.strerror}") from None

    def write(self, img: np.ndarray, fps: float) -> None:
        ext = self.path.suffix.lower()
        if self.folder:
            cv2.imwrite(str(self.path / f"frame_{self.n:06d}.png"), img)
        elif ext in IMAGE_EXTS:
            if not cv2.imwrite(str(self.path), img):
                raise DogfilterError(f"cannot write {self.path}")
        else:
            if self.writer is None:
                self.size = (img.shape[1], img.shape[0])
                self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[ext]),
                                              fps, self.size)
                if not self.writer.isOpened():
                    raise DogfilterError(f"cannot open {self.path} for writing")
            if (img.shape[1], img.shape[0]) != self.size:
                img = cv2.resize(img, self.size)
            self.writer.write(img)
        self.n += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>dogfilter</title><style>
body{font:14px system-ui,sans-serif;background:#111;color:#eee;margin:0;display:flex;gap:16px;padding:16px}
img{max-width:75vw;border-radius:8px;background:#000} table{border-collapse:collapse}
td,th{padding:2px 8px;text-align:right} th{text-align:left;color:#aaa;font-weight:normal} h1{font-size:18px}
.big{font-size:28px;font-weight:bold}</style></head><body>
<img id="v" src="/stream.mjpg" alt="live view">
<div><h1>dogfilter</h1><div><span class="big" id="fps">–</span> frames/s</div>
<div><span id="nframes">0</span> frames, <span id="faces">0</span> faces</div>
<h3>latency (ms)</h3><table id="lat"></table><h3>counters</h3><table id="cnt"></table>
<h3>classify workers (faces)</h3><table id="wk"></table></div><script>
const $=id=>document.getElementById(id);
function rows(t,obj,f){$(t).innerHTML=Object.entries(obj).map(([k,v])=>'<tr><th>'+k+'</th>'+f(v)+'</tr>').join('')}
async function tick(){try{const s=await (await fetch('/stats.json')).json();
$('fps').textContent=s.fps.toFixed(1);$('nframes').textContent=s.frames;$('faces').textContent=s.faces;
rows('lat',s.latency_ms,v=>'<td>p50 '+(v.p50??'–')+'</td><td>p95 '+(v.p95??'–')+'</td>');
const c={};for(const[st,o]of Object.entries(s.counters))for(const[k,v]of Object.entries(o))c[st+'.'+k]=v;
rows('cnt',c,v=>'<td>'+v+'</td>');rows('wk',s.classify_workers,v=>'<td>'+v+'</td>');}catch(e){}}
setInterval(tick,1000);tick();;</script></body></html>"""


class BrowserView:
    """MJPEG stream + stats page, served from a thread; frames are JPEG-encoded only while someone watches."""

    def __init__(self, host: str, port: int, stats: Any) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.last_wanted = 0.0
        self.stats = stats
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                view.last_wanted = time.monotonic()
                if self.path in ("/", "/index.html"):
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif self.path == "/stats.json":
                    self._send(json.dumps(view.stats()).encode(), "application/json")
                elif self.path == "/frame.jpg":
                    jpeg = view.wait_frame(-1, 2.0)
                    if jpeg is None:
                        self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                    else:
                        self._send(jpeg, "image/jpeg")
                elif self.path == "/stream.mjpg":
                    self.send_response(HTTPStatus.OK)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    seen = -1
                    try:
                        while True:
                            view.last_wanted = time.monotonic()
                            jpeg = view.wait_frame(seen, 1.0)
                            if jpeg is None:
                                continue
                            seen = view.seq
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        return
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise DogfilterError(f"cannot serve the browser view on {host}:{port}: {e.strerror}") from None
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="http").start()

    def wanted(self) -> bool:
        return time.monotonic() - self.last_wanted < 3.0 or self.jpeg is None

    def publish(self, img: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            with self.cond:
                self.jpeg, self.seq = buf.tobytes(), self.seq + 1
                self.cond.notify_all()

    def wait_frame(self, seen: int, timeout: float) -> bytes | None:
        with self.cond:
            if self.seq == seen or self.jpeg is None:
                self.cond.wait(timeout)
            return self.jpeg if self.seq != seen else None


def main() -> int:
    a = parse_args()
    log = service.setup_logging("display", a.log_level)
    if a.window and os.name == "posix" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise DogfilterError("--window needs a screen (DISPLAY is not set): use --http PORT or --output FILE")
    if not (a.window or a.output or a.http or a.stats_out):
        raise DogfilterError("nothing to display to: give --window, --output FILE and/or --http PORT")
    recorder = Recorder(a.output) if a.output else None
    stats = Stats()
    counters = Counters("display", log)
    view = BrowserView(a.http_host, a.http, lambda: stats.as_dict(counters)) if a.http else None
    ctx = zmq.Context.instance()
    pull = sockets.make_socket(ctx, zmq.PULL)
    sockets.bind(pull, endpoint("display"), "display")
    log.info("frames on %s%s%s%s", endpoint("display"), f", recording to {a.output}" if a.output else "",
             f", browser view at http://{a.http_host}:{a.http}/" if view else "", ", window" if a.window else "")

    last_write = 0.0

    def write_stats() -> None:
        if a.stats_out:
            tmp = Path(a.stats_out + ".tmp")
            tmp.write_text(json.dumps(stats.as_dict(counters), indent=1))
            tmp.replace(a.stats_out)

    try:
        while True:
            if time.monotonic() - last_write > 0.25:
                write_stats()
                last_write = time.monotonic()
                counters.maybe_log(f"frames={stats.frames} fps={stats.rate.per_second():.1f} "
                                   f"latency_p50={(stats.latency.get('capture→display') or Window()).pct(50)} ")
            if not pull.poll(30 if a.window else 250):
                if a.window and cv2.waitKey(1) & 0xFF == ord("q"):  # keep the window alive while no frame comes
                    return 0
                continue
            try:
                msg = wire.recv(pull)
            except wire.WireError as e:
                counters.drop("malformed", str(e))
                continue
            if msg.kind == "eos":
                stats.absorb(msg)
                log.info("end of stream %s after %d frames", msg.stream, stats.frames)
                if not a.keep_running:
                    return 0
                continue
            if msg.kind != "composited" or msg.image is None:
                counters.drop("unexpected", f"{msg.kind} message without a frame")
                continue
            msg.stamp("display")
            stats.add(msg)
            img = msg.image
            if recorder is not None:
                recorder.write(img, float(msg.meta.get("fps", 30.0)))
            if view is not None and view.wanted():
                view.publish(img)
            if a.window:
                cv2.imshow("dogfilter", img)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    return 0
    finally:
        if recorder is not None:
            recorder.close()
        write_stats()


def cli() -> None:
    """Console-script entry point: errors as one line, exit codes as documented."""
    service.run_service("display", main)


if __name__ == "__main__":
    cli()
