"""The browser as a camera: a page that opens the user's camera and a WebSocket that carries its frames in and the
filtered frames back (the ``websockets`` library's threaded server: no hand-rolled framing).

Each browser tab is a stream of its own (``web-1``, ``web-2`` ...), fed by :class:`WebFeed` into capture like any
source: the newest frame waits in a one-frame slot until a detect worker is free (the tab never builds a queue).
The filtered frame comes back (JPEG, from the display) on the same WebSocket with the tab's own timestamp, so the
page shows the round trip.  Closing the tab ends the stream: capture sends its end of stream, and every stage
forgets it.

Messages, binary both ways: ``[8-byte big-endian float64: the tab's clock, ms][JPEG]``.  A frame that is not a JPEG
of at most ``max_frame_bytes`` and ``max_pixels`` is dropped and counted (its pixels read from its own header,
before it is decoded); a tab that sends faster than the pipeline
takes frames simply replaces its waiting frame.

                 max_frame_bytes: int = 4 << 20, max_pixels: int = 4_000_000, idle_s: float = 10.0,
                 hosts: tuple[str, ...] | list[str] = ()) -> None:
"""

from __future__ import annotations

import hmac
import itertools
import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from dogfilter.common.errors import DogfilterError
from dogfilter.common.media.sources import Source
from dogfilter.common.transport import imagehead

PAGE = Path(__file__).with_name("camera.html")
HEADER = struct.Struct(">d")
SEND_BUFFER = 64 * 1024  # bytes of filtered frames the kernel holds for a tab
ROOM_S = 2.0  # every slot taken: a tab idle (no frame in, or none taken out) this long makes room for a new tab
log = logging.getLogger("webcam")


class WebTab:
    """One browser tab: its newest frame in (for capture), its newest filtered frame out (for the tab)."""

    def __init__(self, stream: str, connection: Any) -> None:
        self.stream, self.connection = stream, connection
        self.lock = threading.Condition()
        self.frame: tuple[np.ndarray, float] | None = None  # (BGR, the tab's clock)
        self.result: bytes | None = None
        self.closed = False
        self.last_in = time.monotonic()  # when its last frame came (or it opened)
        self.unread_since: float | None = None  # since when a filtered frame waits for the tab to take it
        self.counts = {"frames_in": 0, "frames_replaced": 0, "bad_frames": 0, "results_out": 0,
                       "results_replaced": 0}

    def put_frame(self, img: np.ndarray, client_ts: float) -> None:
        with self.lock:
            if self.frame is not None:
                self.counts["frames_replaced"] += 1  # the newest frame wins
            self.frame = (img, client_ts)
            self.counts["frames_in"] += 1
            self.last_in = time.monotonic()

    def take_frame(self) -> tuple[np.ndarray, float] | None:
        with self.lock:
            got, self.frame = self.frame, None
            return got

    def put_result(self, jpeg: bytes, client_ts: float) -> None:
        with self.lock:
            if self.result is not None:
                self.counts["results_replaced"] += 1
            self.result = HEADER.pack(client_ts) + jpeg
            self.unread_since = self.unread_since or time.monotonic()
            self.lock.notify_all()

    def send_results(self) -> None:
        """The tab's sender thread: the newest result, as soon as the tab can take it (a slow tab skips frames)."""
        while True:
            with self.lock:
                while self.result is None and not self.closed:
                    self.lock.wait(1.0)
                if self.closed:
                    return
                data, self.result = self.result, None
            try:
                self.connection.send(data)  # blocks while the tab does not read
                self.counts["results_out"] += 1
            except Exception:  # the tab went away: its receiving side ends the stream
                return
            with self.lock:
                self.unread_since = time.monotonic() if self.result is not None else None

    def idle_s(self, now: float) -> float:
        """How long the tab has been sending no frame, or taking no filtered frame (the longer)."""
        unread = now - self.unread_since if self.unread_since is not None else 0.0
        return max(now - self.last_in, unread)

    def cut(self) -> None:
        """End the tab's connection now, from any thread (a send blocked on a tab that does not read included)."""
        try:
            self.connection.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify_all()


def decode_frame(data: Any, max_frame_bytes: int, max_pixels: int) -> tuple[np.ndarray, float] | None:
    """A tab's message → (BGR frame, the tab's clock), or None when it is not a sane JPEG frame."""
    if not isinstance(data, bytes | bytearray) or not HEADER.size + 4 <= len(data) <= max_frame_bytes:
        return None
    (client_ts,) = HEADER.unpack_from(data)
    jpeg = memoryview(data)[HEADER.size:]
    if client_ts != client_ts:  # NaN clock
        return None
    # the JPEG's own size, from its frame header, before it is decoded: a few bytes may claim gigapixels
    if imagehead.over_limit(imagehead.jpeg_size(jpeg), max_pixels, min_side=16):
        return None
    try:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if img is None or img.shape[0] * img.shape[1] > max_pixels or min(img.shape[:2]) < 16:
        return None
    return img, float(client_ts)


class WebSource(Source):
    """What capture knows of a tab as a source (its frames come through :class:`WebTab`)."""

    kind = "browser"
    own_size = True  # the tab's own camera size


class CameraServer:
    """Serves the camera page and its WebSocket from a thread.  What happens — a tab opened or closed — is queued
    in ``events`` (("open" | "close", tab)), and ``notify()`` is called for that and for every frame (capture wakes
    its loop with it)."""

    def __init__(self, host: str, port: int, token: str | None, notify: Callable[[], None], max_streams: int = 8,
                 max_frame_bytes: int = 4 << 20, max_pixels: int = 4_000_000, idle_s: float = 10.0,
                 hosts: tuple[str, ...] | list[str] = ()) -> None:
        from websockets.sync.server import serve

        self.token, self.notify = token, notify
        self.names = frozenset(h.lower() for h in hosts)
        self.foreign = 0
        self.events: queue.SimpleQueue[tuple[str, WebTab]] = queue.SimpleQueue()
        self.max_streams, self.max_frame_bytes, self.max_pixels = max_streams, max_frame_bytes, max_pixels
        self.idle_s = idle_s
        self.tabs: dict[str, WebTab] = {}
        self.tabs_lock = threading.Lock()
        self.refused = 0
        self.timed_out = 0  # tabs closed for sending or taking nothing for idle_s, or to make room
        self._stop = threading.Event()
        self._ids = itertools.count(1)
        ws_log = logging.getLogger("webcam.ws")  # websockets logs each HTTP request, and a broken handshake's
        ws_log.setLevel(logging.WARNING)         # traceback, at INFO: our own counters and lines say what matters
        try:
            self.server = serve(self._handle, host, port, process_request=self._http, compression=None,
                                max_size=max_frame_bytes, max_queue=4, open_timeout=10, ping_interval=20,
                                server_header="dogfilter", logger=ws_log)
        except OSError as e:
            raise DogfilterError(f"cannot serve the browser camera on {host}:{port}: {e.strerror}") from None
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="webcam").start()
        threading.Thread(target=self._watch, daemon=True, name="webcam-idle").start()

    def _watch(self) -> None:
        """Close the tabs idle for ``idle_s`` (sending nothing, or reading nothing)."""
        while not self._stop.wait(min(0.5, self.idle_s / 4)):
            now = time.monotonic()
            with self.tabs_lock:
                idle = [t for t in self.tabs.values() if t.idle_s(now) > self.idle_s]
            for tab in idle:
                self._cut(tab, f"idle for {self.idle_s:g}s")

    def _cut(self, tab: WebTab, why: str) -> None:
        with self.tabs_lock:
            if self.tabs.pop(tab.stream, None) is None:
                return  # gone already
            self.timed_out += 1
        log.info("browser camera %s closed: %s", tab.stream, why)
        tab.cut()

    def _admit(self, tab: WebTab) -> bool:
        """A slot for a new tab: a free one, or the one of the tab idle the longest (at least ``ROOM_S``)."""
        now = time.monotonic()
        with self.tabs_lock:
            idlest = None
            if len(self.tabs) >= self.max_streams:
                idlest = max(self.tabs.values(), key=lambda t: t.idle_s(now), default=None)
                if idlest is None or idlest.idle_s(now) < min(ROOM_S, self.idle_s):
                    return False
                del self.tabs[idlest.stream]
                self.timed_out += 1
            self.tabs[tab.stream] = tab
        if idlest is not None:
            log.info("browser camera %s closed: idle for %.1fs, %s takes its place", idlest.stream,
                     idlest.idle_s(now), tab.stream)
            idlest.cut()
        return True

    def _authorized(self, request: Any) -> tuple[bool, bool]:
        if not self.token:
            return True, False
        given = (parse_qs(urlsplit(request.path).query).get("token") or [""])[0]
        if given and hmac.compare_digest(given, self.token):
            return True, True
        for part in request.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == "dogfilter_token" and hmac.compare_digest(v, self.token):
                return True, False
        return False, False

    def _http(self, connection: Any, request: Any) -> Any:
        """Plain HTTP: the page; the WebSocket: checked (token, same origin) before it opens."""
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        from dogfilter.common.media.webview import foreign_request

        why = foreign_request(request.headers.get("Host"), request.headers.get("Origin"), self.names)
        if why:  # first of all: a DNS rebinding or a page of another site (cross-site WebSocket) is refused
            self.foreign += 1
            return connection.respond(403, why + "\n")
        path = urlsplit(request.path).path
        ok, cookie = self._authorized(request)
        if not ok:
            return connection.respond(401, "a token is needed: open the address the pipeline logged, with ?token=\n")
        if path == "/ws":
            return None  # go on with the WebSocket handshake
        if path in ("/", "/index.html"):
            headers = Headers({"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
            if cookie:
                headers["Set-Cookie"] = f"dogfilter_token={self.token}; HttpOnly; SameSite=Strict; Path=/"
            return Response(200, "OK", headers, PAGE.read_bytes())
        return connection.respond(404, "not found\n")

    def _handle(self, connection: Any) -> None:
        tab = WebTab(f"web-{next(self._ids)}", connection)
        try:  # a small send buffer: a tab that does not read blocks its sender soon (and is found idle), and a
            connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)  # slow one gets the
        except OSError:  # newest frame, not a queue of old ones in the kernel
            pass
        if not self._admit(tab):
            self.refused += 1
            connection.close(1013, f"{self.max_streams} cameras already: try again later")
            return
        sender = threading.Thread(target=tab.send_results, daemon=True, name=f"{tab.stream}-out")
        sender.start()
        self.events.put(("open", tab))
        self.notify()
        log.info("browser camera %s opened from %s", tab.stream, connection.remote_address[0])
        try:
            connection.send(f'{{"stream": "{tab.stream}"}}')  # tell the page its stream's name
            for data in connection:
                got = decode_frame(data, self.max_frame_bytes, self.max_pixels)
                if got is None:
                    tab.counts["bad_frames"] += 1
                    continue
                tab.put_frame(*got)
                self.notify()
        except Exception:  # a tab that drops the connection ends its stream like a closed one
            pass
        finally:
            tab.close()
            with self.tabs_lock:
                self.tabs.pop(tab.stream, None)
            self.events.put(("close", tab))
            self.notify()
            log.info("browser camera %s closed (%s)", tab.stream, tab.counts)

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
