"""The browser view: a page with each stream's live video (MJPEG) and statistics, served from a thread.

Routes: ``/`` the page, ``/stats.json``, ``/stream/<id>.mjpg`` and ``/frame/<id>.jpg`` per stream (``/stream.mjpg``
and ``/frame.jpg``: the first stream), plus any extra routes a caller adds (``/metrics``).

Made for hostile clients too: beyond loopback it needs a token (``?token=`` once, then a cookie, or an
``Authorization: Bearer`` header); at most ``max_clients`` connections at once (more get 503); a client that stalls
is dropped after ``timeout_s``; client errors are counted, never logged as tracebacks.  Frames are JPEG-encoded only
while someone watches their stream.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport.wire import STREAM_RE

PAGE = Path(__file__).with_name("webview.html")
Route = Callable[[], tuple[bytes, str]]


class _Frame:
    __slots__ = ("jpeg", "seq", "wanted")

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.seq = 0
        self.wanted = 0.0


class WebView:
    def __init__(self, host: str, port: int, stats: Callable[[], dict[str, Any]], token: str | None = None,
                 routes: dict[str, Route] | None = None, max_clients: int = 32, timeout_s: float = 10.0,
                 max_streams: int = 64) -> None:
        self.stats, self.token, self.routes = stats, token, dict(routes or {})
        self.cond = threading.Condition()
        self.frames: dict[str, _Frame] = {}
        self.max_streams = max_streams
        self.slots = threading.BoundedSemaphore(max_clients)
        self.client_errors = 0
        self.refused = 0
        # a client that stalls while sending its request, or while we write to it, is dropped after timeout_s
        handler = type("ViewHandler", (Handler,), {"view": self, "timeout": timeout_s})

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(server, request: Any, client_address: Any) -> None:  # noqa: N805
                self.client_errors += 1  # a client that went away or sent junk: counted, never a traceback

        try:
            self.server = Server((host, port), handler)
        except OSError as e:
            raise DogfilterError(f"cannot serve the browser view on {host}:{port}: {e.strerror}") from None
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="http").start()

    def wanted(self, stream: str) -> bool:
        f = self.frames.get(stream)
        return f is None or f.jpeg is None or time.monotonic() - f.wanted < 3.0

    def publish(self, stream: str, img: np.ndarray) -> None:
        if stream not in self.frames and len(self.frames) >= self.max_streams:
            return
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            with self.cond:
                f = self.frames.setdefault(stream, _Frame())
                f.jpeg, f.seq = buf.tobytes(), f.seq + 1
                self.cond.notify_all()

    def forget(self, stream: str) -> None:
        with self.cond:
            self.frames.pop(stream, None)

    def wait_frame(self, stream: str, seen: int, timeout: float) -> tuple[bytes | None, int]:
        with self.cond:
            f = self.frames.get(stream)
            if f is None or f.seq == seen:
                self.cond.wait(timeout)
                f = self.frames.get(stream)
            if f is None:
                return None, seen
            f.wanted = time.monotonic()
            return (f.jpeg, f.seq) if f.seq != seen else (None, seen)

    def first_stream(self) -> str | None:
        return next(iter(self.frames), None)

    def authorized(self, query: dict[str, list[str]], headers: Any) -> tuple[bool, bool]:
        """(allowed, set the cookie): the token from the query (first visit), a cookie, or a bearer header."""
        if not self.token:
            return True, False
        given = (query.get("token") or [""])[0]
        if given and hmac.compare_digest(given, self.token):
            return True, True
        cookie = headers.get("Cookie", "")
        for part in cookie.split(";"):
            k, _, v = part.strip().partition("=")
            if k == "dogfilter_token" and hmac.compare_digest(v, self.token):
                return True, False
        auth = headers.get("Authorization", "")
        return auth.startswith("Bearer ") and hmac.compare_digest(auth[7:], self.token), False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Handler(BaseHTTPRequestHandler):
    """One client request (a thread each); ``view`` is set on the subclass a :class:`WebView` makes."""

    view: WebView
    server_version = "dogfilter"
    sys_version = ""

    def log_message(self, *args: Any) -> None:
        pass

    def handle(self) -> None:
        if not self.view.slots.acquire(blocking=False):
            self.view.refused += 1
            try:
                self.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            return
        try:
            super().handle()
        except OSError:
            self.view.client_errors += 1
        finally:
            self.view.slots.release()

    def _send(self, body: bytes, ctype: str, status: HTTPStatus = HTTPStatus.OK,
              cookie: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if cookie:
            self.send_header("Set-Cookie", f"dogfilter_token={self.view.token}; HttpOnly; SameSite=Strict; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        ok, cookie = self.view.authorized(parse_qs(url.query), self.headers)
        if not ok:
            self._send(b"a token is needed: open the address printed by the display, with ?token=...\n",
                       "text/plain; charset=utf-8", HTTPStatus.UNAUTHORIZED)
            return
        path = url.path
        if path in ("/", "/index.html"):
            self._send(PAGE.read_bytes(), "text/html; charset=utf-8", cookie=cookie)
        elif path == "/stats.json":
            self._send(json.dumps(self.view.stats()).encode(), "application/json")
        elif path in self.view.routes:
            body, ctype = self.view.routes[path]()
            self._send(body, ctype)
        elif path in ("/stream.mjpg", "/frame.jpg") or (path.startswith(("/stream/", "/frame/"))):
            self._video(path)
        else:
            self._send(b"not found\n", "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND)

    def _video(self, path: str) -> None:
        name = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        stream = self.view.first_stream() if name in ("stream", "frame") else name
        if stream is None or not STREAM_RE.fullmatch(stream):
            self._send(b"no such stream\n", "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND)
            return
        if path.endswith(".jpg"):
            jpeg, _ = self.view.wait_frame(stream, -1, 2.0)
            if jpeg is None:
                self._send(b"no frame yet\n", "text/plain; charset=utf-8", HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                self._send(jpeg, "image/jpeg")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen, idle = -1, 0
        while idle < 30:  # a stream that stopped for 30 s ends its response (and frees the slot)
            jpeg, seen = self.view.wait_frame(stream, seen, 1.0)
            idle = 0 if jpeg is not None else idle + 1
            if jpeg is None:
                continue
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
