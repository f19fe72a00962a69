"""Finding pipeline hosts by name: a worker's ``--connect`` addresses, looked up again and again.

``--connect tcp://NAME:PORT`` where NAME resolves to several addresses (several A records, several lines of a hosts
file, a Kubernetes headless Service) is every one of them: libzmq alone would connect to one.  :class:`Resolver`
looks each name up every ``--resolve-s`` seconds in a thread of its own (a slow DNS never holds up the worker's
heartbeats); :class:`Hosts` opens a link to each new address and closes the link to each vanished one, so a fleet
grows by adding pipeline hosts, never by editing every worker.  A name that does not resolve is logged once (and
again when it resolves) and looked up again: never a crash; a temporary DNS failure keeps the addresses last known,
a name that no longer exists drops them.  An IP literal or an ``ipc://`` address is used as it is.

Every link is watched (a ZeroMQ socket monitor): a peer that does not speak ZeroMQ (not a dogfilter host) or
refuses our keys is said in one line and counted (``hosts_not_dogfilter``, ``hosts_refused_keys``), never a hang.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import zmq
from zmq.utils.monitor import recv_monitor_message

from dogfilter.common.options import Option, positive
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.sockets import HANDSHAKE_S

CONNECT = Option("connect", [], "pipeline host(s) to take jobs from (classify: the host's classify link, "
                 "tcp://HOST:5553; detect: its frames link, tcp://HOST:5551, detections going to the same host at the "
                 "port of --detections-addr; default: the link addresses as given); repeatable: one worker serves "
                 "several hosts; a HOST name that resolves to several addresses serves each of them, looked up again "
                 "every --resolve-s", kind="list", metavar="ADDR")
RESOLVE = Option("resolve_s", 5.0, "how often each --connect name is looked up again: a new address is joined, a "
                 "vanished one dropped", type=positive(float))
OPTIONS = (CONNECT, RESOLVE)
MAX_ADDRESSES = 64  # addresses per name, at most (a name resolving to more: the first 64, counted)

T = TypeVar("T")


def name_of(addr: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``tcp://NAME:PORT`` address whose host is a name to look up; None for an IP literal,
    ``*``, or a non-TCP address (used as it is)."""
    if not addr.startswith("tcp://"):
        return None
    host, sep, port = addr[len("tcp://"):].rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    if host in ("*", "") or ";" in host:  # wildcard, or a source-address form: libzmq's business
        return None
    return host, int(port)


def endpoint(ip: str, port: int) -> str:
    return f"tcp://[{ip}]:{port}" if ":" in ip else f"tcp://{ip}:{port}"


def with_port(addr: str, port: int) -> str:
    """The same host at another port (a detect worker's detections link beside its frames link)."""
    host = addr[len("tcp://"):].rpartition(":")[0]
    return f"tcp://{host}:{port}"


def port_of(addr: str) -> int | None:
    tail = addr.rpartition(":")[2]
    return int(tail) if addr.startswith("tcp://") and tail.isdigit() else None


class Resolver:
    """The addresses ``--connect`` stands for now: IP literals as they are, names looked up every ``every_s``."""

    def __init__(self, addrs: Iterable[str], every_s: float, log: logging.Logger, counters: Counters,
                 lookup: Callable[[str, int], list[str]] | None = None) -> None:
        self.every_s, self.log, self.counters = every_s, log, counters
        self.lookup = lookup or _lookup
        self.addrs = list(dict.fromkeys(addrs))
        self.names = {a: n for a in self.addrs if (n := name_of(a)) is not None}
        self.found: dict[str, list[str]] = {a: [] for a in self.names}
        self.failing: dict[str, str] = {}  # name → the reason it was last logged as not resolving
        self.generation = 0  # goes up each time an address comes or goes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resolve_all()  # the first look-up before the worker starts: its first links at once

    def start(self) -> Resolver:
        if self.names and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="resolver", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def endpoints(self) -> list[str]:
        """Every address to connect to now (names expanded), in a stable order, without repeats."""
        out: list[str] = []
        with self._lock:
            for a in self.addrs:
                out += self.found.get(a, []) if a in self.names else [a]
        return list(dict.fromkeys(out))

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.resolve_all()

    def resolve_all(self) -> None:
        for addr, (host, port) in self.names.items():
            try:
                got = self.lookup(host, port)
            except socket.gaierror as e:
                gone = e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
                self._failed(addr, host, e.strerror or str(e), keep=not gone)
                continue
            except (OSError, UnicodeError) as e:
                self._failed(addr, host, str(e), keep=True)
                continue
            if len(got) > MAX_ADDRESSES:
                self.counters["addresses_ignored"] += len(got) - MAX_ADDRESSES
                got = got[:MAX_ADDRESSES]
            eps = [endpoint(ip, port) for ip in got]
            if host in self.failing:
                del self.failing[host]
                self.log.info("%s resolves again", host)
            self._set(addr, host, eps)

    def _failed(self, addr: str, host: str, why: str, keep: bool) -> None:
        self.counters["unresolved_names"] += 1
        what = "keeping its last addresses" if keep and self.found.get(addr) else "no hosts from it for now"
        if self.failing.get(host) != why + what:  # said once, and again only when it changes
            self.failing[host] = why + what
            self.log.warning("cannot resolve %s (%s): %s; looking it up again every %gs", host, why, what,
                             self.every_s)
        if not keep:
            self._set(addr, host, [])

    def _set(self, addr: str, host: str, eps: list[str]) -> None:
        with self._lock:
            old = self.found.get(addr, [])
            if set(old) == set(eps):
                return
            self.found[addr] = eps
            self.generation += 1
        added, gone = sorted(set(eps) - set(old)), sorted(set(old) - set(eps))
        self.log.info("%s: %d address%s%s%s", host, len(eps), "" if len(eps) == 1 else "es",
                      f", joined {' '.join(added)}" if added else "", f", dropped {' '.join(gone)}" if gone else "")


def _lookup(host: str, port: int) -> list[str]:
    """Every address ``host`` has now (IPv4 and IPv6), in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# ------------------------------------------------------------------------------------------- watching a link

HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class Watch:
    """What the handshakes of one socket say: a peer that is not dogfilter, or refuses our keys, in one line."""

    def __init__(self, sock: zmq.Socket, addr: str, log: logging.Logger, counters: Counters) -> None:
        self.addr, self.log, self.counters = addr, log, counters
        self.mon = sock.get_monitor_socket(HANDSHAKE_EVENTS)
        self.sock = sock
        self.state = ""  # the last thing said about this peer

    def check(self) -> None:
        while True:
            try:
                ev = recv_monitor_message(self.mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            kind = ev["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if self.state:
                    self.log.info("%s answers now", self.addr)
                self.state = ""
                continue
            if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL or (
                    kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and ev["value"] == errno.EAGAIN):
                key, why = "hosts_not_dogfilter", (f"does not speak dogfilter's protocol (no ZeroMQ handshake within "
                                                   f"{HANDSHAKE_S:g}s: not a dogfilter host?)")
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                key, why = "hosts_refused_keys", "refused our CURVE key (give this worker the fleet's keys)"
            else:
                key, why = "handshakes_failed", ("closed the link during the handshake (other CURVE keys than the "
                                                 "host's, or not a dogfilter host)")
            self.counters[key] += 1
            if self.state != key:
                self.state = key
                self.log.warning("%s %s; trying again", self.addr, why)

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.mon.close(linger=0)


class Hosts(Generic[T]):
    """The links of a worker, one per address, kept in step with its :class:`Resolver`; each link's sockets
    watched (:class:`Watch`)."""

    def __init__(self, resolver: Resolver, open_link: Callable[[str], T], close_link: Callable[[T], None],
                 sockets_of: Callable[[str, T], Iterable[tuple[str, zmq.Socket]]], log: logging.Logger,
                 counters: Counters) -> None:
        self.resolver, self.open_link, self.close_link = resolver, open_link, close_link
        self.sockets_of, self.log, self.counters = sockets_of, log, counters
        self.links: dict[str, T] = {}
        self.watches: dict[str, list[Watch]] = {}
        self._generation = -1

    def refresh(self) -> bool:
        """Open links to new addresses, close those to vanished ones; say what the handshakes said. True: the
        links changed."""
        for watches in self.watches.values():
            for w in watches:
                w.check()
        if self.resolver.generation == self._generation:
            return False
        self._generation = self.resolver.generation
        now = self.resolver.endpoints()
        changed = False
        for addr in [a for a in self.links if a not in now]:
            self._close(addr)
            self.log.info("left %s (its name no longer gives it)", addr)
            changed = True
        for addr in now:
            if addr not in self.links:
                link = self.links[addr] = self.open_link(addr)
                self.watches[addr] = [Watch(s, a, self.log, self.counters) for a, s in self.sockets_of(addr, link)]
                changed = True
        return changed

    def _close(self, addr: str) -> None:
        for w in self.watches.pop(addr, []):
            w.close()
        self.close_link(self.links.pop(addr))

    def close(self) -> None:
        self.resolver.stop()
        for addr in list(self.links):
            self._close(addr)
