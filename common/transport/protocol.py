"""Credit-based flow control between a dispatcher (ROUTER, binds) and its workers (DEALER, connect).

The ZeroMQ guide's load-balancing pattern with heartbeats, in both directions of need:

* a worker announces ``ready{credit: n}``: it will accept n more messages; it grants 1 more each time it is done
  with one (a classify worker's ``emotions`` reply counts as that grant);
* an idle worker sends ``heartbeat`` every second; a dispatcher that does not know it (it restarted, or expired
  the worker) answers ``reset`` and the worker announces its full window again;
* a dispatcher forgets a worker silent for ``EXPIRY_S`` and hands its credits to no one.

So a dispatcher only ever sends to a worker that asked for work: nothing queues behind a slow or dead worker, a
source with no credit left knows at once that it must drop (live) or wait (file), and either side can die and
restart without the other hanging.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import zmq
from dogfilter.common.transport import wire

log = logging.getLogger("flow")
HEARTBEAT_S = 1.0  # a worker says it is alive this often when idle
EXPIRY_S = 3.5  # a dispatcher forgets a worker silent for this long


def _name(ident: bytes) -> str:
    return ident.decode(errors="replace")


@dataclass
class WorkerState:
    credit: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    info: dict[str, Any] = field(default_factory=dict)
    sent: int = 0
    last_sent: float = 0.0


class Dispatcher:
    """ROUTER side: which workers exist and how much each may still take. Work goes to the worker with the
    most free credit (the least loaded), the least recently used among equals."""

    def __init__(self, sock: zmq.Socket, name: str, expiry: float = EXPIRY_S) -> None:
        self.sock, self.name, self.expiry = sock, name, expiry
        self.workers: dict[bytes, WorkerState] = {}

    def grant(self, ident: bytes, n: int) -> None:
        w = self.workers.get(ident)
        if w is None:
            w = self.workers[ident] = WorkerState()
            log.info("%s: worker %s joined", self.name, _name(ident))
        w.last_seen = time.monotonic()
        w.credit = min(w.credit + max(0, int(n)), 64)

    def handle(self, ident: bytes, msg: wire.Message) -> bool:
        """Account for a message from a worker. Returns True when it was a control message (nothing else to do)."""
        w = self.workers.get(ident)
        if msg.kind == "ready":
            credit = msg.meta.get("credit", 1)
            self.grant(ident, credit if isinstance(credit, int) else 1)
            self.workers[ident].info.update({k: v for k, v in msg.meta.items() if k != "credit"})
            return True
        if w is None:
            self._send_raw(ident, wire.Message("reset"))
            return msg.kind == "heartbeat"
        w.last_seen = time.monotonic()
        return msg.kind == "heartbeat"

    def available(self) -> bool:
        return any(w.credit > 0 for w in self.workers.values())

    def send(self, msg: wire.Message, jpeg_quality: int | None = None) -> bytes | None:
        """Send to the least recently used worker with credit. Returns its identity, or None if none can take it."""
        while True:
            ready = [(w.credit, -w.last_sent, i) for i, w in self.workers.items() if w.credit > 0]
            if not ready:
                return None
            ident = max(ready)[2]
            w = self.workers[ident]
            try:
                self.sock.send_multipart([ident, *wire.encode(msg, jpeg_quality)], copy=False)
            except zmq.ZMQError as e:  # EHOSTUNREACH: the worker went away
                log.warning("%s: worker %s unreachable (%s), forgetting it", self.name, _name(ident), e)
                self.forget(ident)
                continue
            w.credit -= 1
            w.sent += 1
            w.last_sent = time.monotonic()
            return ident

    def forget(self, ident: bytes) -> None:
        self.workers.pop(ident, None)

    def expire(self) -> list[bytes]:
        """Forget workers not heard from in ``expiry`` seconds; returns them."""
        now = time.monotonic()
        dead = [i for i, w in self.workers.items() if now - w.last_seen > self.expiry]
        for ident in dead:
            log.warning("%s: worker %s silent for %.1fs, expired", self.name, _name(ident), self.expiry)
            self.forget(ident)
        return dead

    def _send_raw(self, ident: bytes, msg: wire.Message) -> None:
        try:
            self.sock.send_multipart([ident, *wire.encode(msg)])
        except zmq.ZMQError:
            pass


class CreditLink:
    """DEALER side: announce credit, give it back as work is done, heartbeat when idle, re-announce on reset."""

    def __init__(self, sock: zmq.Socket, window: int, info: dict[str, Any] | None = None) -> None:
        self.sock, self.window, self.info = sock, window, info or {}
        self._last_sent = 0.0

    def announce(self) -> None:
        self._send(wire.Message("ready", meta={"credit": self.window, **self.info}))

    def grant(self, n: int = 1) -> None:
        self._send(wire.Message("ready", meta={"credit": n}))

    def sent_something(self) -> None:
        """A reply that implies a grant was sent: it also proves we are alive."""
        self._last_sent = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last_sent >= HEARTBEAT_S:
            self._send(wire.Message("heartbeat"))

    def _send(self, msg: wire.Message) -> None:
        try:
            self.sock.send_multipart(wire.encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # dispatcher not connected yet: the next heartbeat gets a reset and we announce again
        self._last_sent = time.monotonic()


def send_with_backpressure(sock: zmq.Socket, msg: wire.Message, *, block: bool, timeout_s: float = 1.0,
                           on_wait: Any = None, jpeg_quality: int | None = None) -> bool:
    """Send on a PUSH socket. Live (block=False): wait at most ``timeout_s`` for room, else give up (the caller
    counts a drop). File (block=True): wait as long as it takes, calling ``on_wait()`` every second (heartbeats)."""
    frames = wire.encode(msg, jpeg_quality)
    deadline = time.monotonic() + timeout_s
    while True:
        if sock.poll(int(1000 * min(HEARTBEAT_S, timeout_s)), zmq.POLLOUT):
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                return True
            except zmq.Again:
                pass
        if on_wait is not None:
            on_wait()
        if not block and time.monotonic() >= deadline:
            return False
