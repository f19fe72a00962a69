"""The browser view: a page with each stream's live video (MJPEG) and statistics, served from a thread.

Routes: ``/`` the page, ``/stats.json``, ``/stream/<id>.mjpg`` and ``/frame/<id>.jpg`` per stream (``/stream.mjpg``
and ``/frame.jpg``: the first stream), plus any extra routes a caller adds (``/metrics``).

Made for hostile clients too, checked in this order: the ``Host`` and ``Origin`` headers must name this server
(:func:`foreign_request`: localhost names, IP addresses, the configured ``--web-hosts``; a page of another site and a
DNS rebinding are refused, 403); beyond loopback the token (``?token=`` once, then a cookie, or an
``Authorization: Bearer`` header; 401); only then a connection slot (at most ``max_clients`` served at once, more get
503), so clients without the token cannot keep a token holder out.  Connections still sending their request are
bounded apart (``max_pending``), and a request's whole time is bounded (``timeout_s``, not each read: a client that
trickles bytes is cut off too); a video stream, once granted, only has each write bounded.  Client errors are counted,
never logged as tracebacks.  Frames are JPEG-encoded only while someone watches their stream (asked within
``WATCHED_S``; an unwatched stream is listed, not encoded, not even its first frame), and a frame older than
``FRESH_S`` is never served as the current one (the next is awaited instead).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
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
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
WATCHED_S = 3.0  # a stream's frames are encoded while a viewer asked for one this recently
FRESH_S = 1.0  # a stored frame older than this is not served as the current one: the next is awaited


def _host_name(netloc: str) -> str:
    """``name`` of ``name:port`` / ``[v6]:port``, lower case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _known_host(name: str, names: frozenset[str]) -> bool:
    if name in LOCAL_NAMES or name in names or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True  # an address is no DNS name: no rebinding through it
    except ValueError:
        return False


def foreign_request(host: str | None, origin: str | None, names: frozenset[str]) -> str | None:
    """Why a request must be refused before anything else, or None.  ``Host`` must name this server: localhost
    names, an IP address, or one of ``names`` (a name an attacker's DNS points at us, DNS rebinding, is not);
    ``Origin``, when a browser sends it, must be this very server (a script of another site is refused)."""
    if host is not None and not _known_host(_host_name(host), names):
        return f"this server does not answer to the name {host[:100]!r} (add it to --web-hosts)"
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or host is None or parts.netloc.lower() != host.strip().lower():
            return "requests from pages of other sites are refused"
    return None


class _Frame:
    __slots__ = ("at", "jpeg", "seq", "wanted")

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.seq = 0
        self.wanted = 0.0
        self.at = 0.0  # when the jpeg was published (monotonic)


class WebView:
    def __init__(self, host: str, port: int, stats: Callable[[], dict[str, Any]], token: str | None = None,
                 routes: dict[str, Route] | None = None, max_clients: int = 32, timeout_s: float = 10.0,
                 max_streams: int = 64, hosts: list[str] | tuple[str, ...] = (), max_pending: int = 256) -> None:
        self.stats, self.token, self.routes = stats, token, dict(routes or {})
        self.names = frozenset(h.lower() for h in (*hosts, host))
        self.cond = threading.Condition()
        self.frames: dict[str, _Frame] = {}
        self.max_streams = max_streams
        self.slots = threading.BoundedSemaphore(max_clients)  # requests that passed every check, being served
        self.pending = threading.BoundedSemaphore(max_pending)  # connections still sending their request
        self.timeout_s = timeout_s
        self.client_errors = 0
        self.refused = 0
        self.foreign = 0
        # each read and write is bounded by timeout_s, and so is a request's whole time (but a granted video stream's)
        handler = type("ViewHandler", (Handler,), {"view": self, "timeout": timeout_s})

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

            def handle_error(server, request: Any, client_address: Any) -> None:
                self.client_errors += 1  # a client that went away or sent junk: counted, never a traceback

        try:
            self.server = Server((host, port), handler)
        except OSError as e:
            raise DogfilterError(f"cannot serve the browser view on {host}:{port}: {e.strerror}") from None
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="http").start()

    def wanted(self, stream: str) -> bool:
        """Someone asked for this stream's video in the last WATCHED_S: its frames are worth a JPEG."""
        f = self.frames.get(stream)
        return f is not None and time.monotonic() - f.wanted < WATCHED_S

    def offer(self, stream: str, img: np.ndarray) -> bool:
        """A frame of ``stream``: published (encoded as JPEG) only while someone watches it; otherwise the stream is
        only listed, so that a viewer can ask for it and get its next frame.  True: it was encoded."""
        if self.wanted(stream):
            return self.publish(stream, img)
        if stream not in self.frames and len(self.frames) < self.max_streams:
            with self.cond:
                self.frames.setdefault(stream, _Frame())
        return False

    def publish(self, stream: str, img: np.ndarray) -> bool:
        if stream not in self.frames and len(self.frames) >= self.max_streams:
            return False
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            with self.cond:
                f = self.frames.setdefault(stream, _Frame())
                f.jpeg, f.seq, f.at = buf.tobytes(), f.seq + 1, time.monotonic()
                self.cond.notify_all()
        return bool(ok)

    def forget(self, stream: str) -> None:
        with self.cond:
            self.frames.pop(stream, None)

    def wait_frame(self, stream: str, seen: int, timeout: float) -> tuple[bytes | None, int]:
        """The stream's newest frame if it is not ``seen`` and fresh (published within ``FRESH_S``), else the next
        one within ``timeout`` (None if none came).  Asking marks the stream watched, so the display publishes it:
        after nobody watched for a while, the stored frame is old and the next is awaited, never served stale."""
        end = time.monotonic() + timeout
        with self.cond:
            f = self.frames.get(stream)
            if f is not None:
                f.wanted = time.monotonic()
                if f.jpeg is not None and f.seq != seen and time.monotonic() - f.at > FRESH_S:
                    seen = f.seq  # stale: wait for the next
            while f is None or f.seq == seen or f.jpeg is None:
                left = end - time.monotonic()
                if left <= 0 or not self.cond.wait(left):
                    break
                f = self.frames.get(stream)
            if f is None or f.seq == seen or f.jpeg is None:
                return None, seen
            f.wanted = time.monotonic()
            return f.jpeg, f.seq

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
        view = self.view
        if not view.pending.acquire(blocking=False):  # connections still sending their request: bounded apart
            view.refused += 1
            self._refuse()
            return
        self._pending, self._slot = True, False
        # the whole request is bounded, not each read: a client that trickles its request is cut off at the deadline
        self._deadline = threading.Timer(view.timeout_s, self._cut)
        self._deadline.daemon = True
        self._deadline.start()
        try:
            super().handle()
        except OSError:
            view.client_errors += 1
        finally:
            self._deadline.cancel()
            if self._pending:
                view.pending.release()
            if self._slot:
                view.slots.release()

    def _refuse(self) -> None:
        try:
            self.wfile.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass

    def _cut(self) -> None:
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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

    def do_GET(self) -> None:  # http.server's name
        view = self.view
        why = foreign_request(self.headers.get("Host"), self.headers.get("Origin"), view.names)
        if why:  # first: a DNS rebinding or a page of another site learns nothing, not even whether a token is set
            view.foreign += 1
            self._send(why.encode() + b"\n", "text/plain; charset=utf-8", HTTPStatus.FORBIDDEN)
            return
        url = urlsplit(self.path)
        ok, cookie = view.authorized(parse_qs(url.query), self.headers)
        if not ok:
            self._send(b"a token is needed: open the address printed by the display, with ?token=...\n",
                       "text/plain; charset=utf-8", HTTPStatus.UNAUTHORIZED)
            return
        if not view.slots.acquire(blocking=False):  # a slot only for a request that passed every check
            view.refused += 1
            self._send(b"too many clients: try again later\n", "text/plain; charset=utf-8",
                       HTTPStatus.SERVICE_UNAVAILABLE)
            return
        self._slot = True
        view.pending.release()
        self._pending = False
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
                self._send(b"no fresh frame: the stream is not sending\n", "text/plain; charset=utf-8",
                           HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                self._send(jpeg, "image/jpeg")
            return
        self._deadline.cancel()  # a granted video stream lasts while it is watched: each write is still bounded
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
