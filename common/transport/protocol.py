"""The protocol every stage speaks, in one place: credit, jobs, heartbeats, reset, sending, receiving, drops.

Between a dispatcher (ROUTER, binds: capture for frames, composite for crops) and its workers (DEALER, connect:
detect, classify) — the ZeroMQ guide's load-balancing broker with heartbeats both ways:

* a worker announces ``ready{credit: n}``: it takes up to n jobs at once (capped by the dispatcher);
* every job the dispatcher hands out carries a job id it issued (``meta.job``); the worker names it when the job is
  finished, in a ``done`` or in its reply; a reply naming a job this worker was not given is dropped and counted;
* an idle worker sends ``heartbeat`` every second; a dispatcher that does not know it (it restarted, or expired
  the worker) answers ``reset`` and the worker announces itself again;
* a dispatcher forgets a worker silent for ``EXPIRY_S``, and *benches* one that holds a job longer than the job
  timeout (a worker that does it again without finishing a job in between waits 2, 4 ... 60 s before it may
  announce itself again) or whose reply fails the caller's checks (``check_reply``: it waits 2, 4 ... 60 s at
  once): the jobs either held come back to the caller, who sends them again (file mode: nothing is lost when a
  worker dies) or counts them lost (live mode);
* dispatch is fair whatever credit a worker claims: the next job goes to a worker that finished a job lately
  (*proven*) or a newcomer (never sent a job), the one holding the fewest jobs, then the one that waited longest;
  workers sent jobs that finished none lately (identities that take jobs and hand them back among them) share one
  trial job every ``TRIAL_S`` between them, however many they are, and get work freely only while no other worker
  has room.  Credit only lets a worker take more while the others are full;
* worker slots are recycled: when all ``max_workers`` are taken, a newcomer takes the slot of a worker that has not
  finished a job for ``PROVEN_S`` (never, or not lately), unless every such worker joined in the last
  ``GRACE_S``, so identities that announce and do no work cannot lock a genuine worker out.

So work only goes to a worker that asked for it, nothing queues behind a slow, dead or hostile worker, the number
of workers and the jobs each holds are bounded, and any process can die and restart without the others hanging.

Everything else flows one way: :func:`send` is the one way to send (back-pressure in file mode, a bounded wait in
live mode), :func:`drain` the one way to read.  Where a message must not be lost when its sender dies (a detect
worker's frame, file mode), the sender waits for the receiver's confirmation before it reports the job done
(:class:`Confirmations`, :func:`drain_confirming`).  Every reader (those two, the dispatcher's and the worker's)
takes its messages from one receive loop, :func:`received`: every message goes through the wire's checks; what
fails is dropped and counted by kind of fault (:class:`~.metrics.Counters`), never raised.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq

from dogfilter.common.transport import wire
from dogfilter.common.transport.metrics import Counters, peer_name
from dogfilter.common.transport.wire import Message, WireError

HEARTBEAT_S = 1.0  # a worker says it is alive this often when idle
EXPIRY_S = 3.5  # a dispatcher forgets a worker silent for this long
MAX_BENCH_S = 60.0  # the longest a stalled worker is kept out
PROVEN_S = 10.0  # a worker that finished a job this recently is a proven one: first in line, and keeps its slot
TRIAL_S = 1.0  # a worker not proven is first in line for one job this often (a trial), else only when others are full
GRACE_S = 2.0  # a worker that joined this recently keeps its slot (time to get and finish a first job)

log = logging.getLogger("protocol")


# ----------------------------------------------------------------------------------------------- PUSH / PULL


def send(sock: zmq.Socket, msg: Message, *, block: bool = False, timeout_s: float = 1.0,
         on_wait: Callable[[], None] | None = None, jpeg_quality: int | None = None, handles: bool = False) -> bool:
    """Send ``msg`` on a PUSH or DEALER socket. Live (``block=False``): wait at most ``timeout_s`` for room, else
    give up and return False (the caller counts a drop). File (``block=True``): wait as long as it takes, calling
    ``on_wait()`` about every second (heartbeats).  ``handles``: see :func:`wire.encode`."""
    frames = wire.encode(msg, jpeg_quality, handles)
    deadline = time.monotonic() + timeout_s
    while True:
        wait = HEARTBEAT_S if block else max(0.0, min(HEARTBEAT_S, deadline - time.monotonic()))
        if sock.poll(int(1000 * wait), zmq.POLLOUT):
            try:
                sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                return True
            except zmq.Again:
                pass
        if on_wait is not None:
            on_wait()
        if not block and time.monotonic() >= deadline:
            return False


def received(sock: zmq.Socket, counters: Counters, limit: int, *, routed: bool = False, keep_jpeg: bool = False,
             admit: Callable[[Message], None] | None = None) -> Iterator[tuple[bytes | None, Message]]:
    """The one receive loop: each valid message already waiting on ``sock`` (at most ``limit``), with its sender's
    identity (``routed``: a ROUTER socket; else None); what fails the wire's checks is dropped and counted.
    ``admit``: see :func:`wire.decode` (a check before a JPEG is decoded)."""
    for _ in range(limit):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        ident = frames[0].bytes if routed else None
        try:
            msg = wire.decode(frames[1:] if routed else frames, keep_jpeg, admit)
        except WireError as e:
            counters.drop(e.fault, str(e), peer=ident)
            continue
        yield ident, msg


def drain(sock: zmq.Socket, counters: Counters, limit: int = 64, keep_jpeg: bool = False,
          admit: Callable[[Message], None] | None = None) -> list[Message]:
    """Every valid message already waiting on a PULL socket (at most ``limit``); the others dropped and counted."""
    return [msg for _, msg in received(sock, counters, limit, keep_jpeg=keep_jpeg, admit=admit)]


@dataclass
class _Unconfirmed:
    msg: Message
    job: Message
    sent: float
    busy_since: float | None = None
    again_at: float | None = None


class Confirmations:
    """File mode, on a DEALER: messages sent and not yet confirmed by their receiver (a ``done`` naming the message's
    job).  The sender goes on with its next job meanwhile; :meth:`settle` says which jobs are through.  A receiver
    that is full answers ``done{retry}``: the message goes again ``busy_s`` later, and after ``give_up_s`` of that the
    job is given up (the caller gives it back to its dispatcher, so a frame the receiver waits for is never stuck
    behind this one).  A receiver that does not answer at all (it restarted) gets it again every ``resend_s``.  Only
    a confirmed job is reported done: a worker killed at any moment loses nothing."""

    def __init__(self, sock: zmq.Socket, counters: Counters, resend_s: float = 10.0, busy_s: float = 0.05,
                 give_up_s: float = 1.0, handles: bool = False) -> None:
        self.sock, self.counters, self.handles = sock, counters, handles
        self.resend_s, self.busy_s, self.give_up_s = resend_s, busy_s, give_up_s
        self.pending: dict[int, _Unconfirmed] = {}

    def send(self, msg: Message, job: Message, on_wait: Callable[[], None]) -> None:
        send(self.sock, msg, block=True, on_wait=on_wait, handles=self.handles)
        self.pending[msg.meta["job"]] = _Unconfirmed(msg, job, time.monotonic())

    def wait_s(self, now: float) -> float:
        times = [u.again_at if u.again_at is not None else u.sent + self.resend_s for u in self.pending.values()]
        return max(0.0, min(times, default=now + HEARTBEAT_S) - now)

    def settle(self, on_wait: Callable[[], None]) -> list[tuple[Message, bool]]:
        """Jobs that are through: (job, True) confirmed, (job, False) given up."""
        out, now = [], time.monotonic()
        for m in drain(self.sock, self.counters) if self.pending else []:
            # a missing job id (None) finds nothing, as an unknown one does
            u = self.pending.get(m.meta.get("job"))  # type: ignore[arg-type]
            if m.kind != "done" or u is None:
                continue
            if not m.meta.get("retry"):
                out.append((self.pending.pop(m.meta["job"]).job, True))
            else:  # full for now
                u.busy_since = u.busy_since or now
                u.again_at = now + self.busy_s
        for job_id, u in list(self.pending.items()):
            if u.busy_since is not None and now - u.busy_since > self.give_up_s:
                out.append((self.pending.pop(job_id).job, False))
            elif (u.again_at is not None and now >= u.again_at) or now - u.sent > self.resend_s:
                if u.again_at is None:
                    self.counters["resent_unconfirmed"] += 1
                send(self.sock, u.msg, block=True, on_wait=on_wait, handles=self.handles)
                u.sent, u.again_at = time.monotonic(), None
        return out


def drain_confirming(sock: zmq.Socket, counters: Counters, accept: Callable[[Message], bool],
                     limit: int = 64, admit: Callable[[Message], None] | None = None) -> list[Message]:
    """Like :func:`drain`, on a ROUTER: ``accept(msg)`` takes each message (False: full for now, not taken); a
    message naming a job is confirmed to its sender at once, or answered "retry" when it was not taken."""
    out = []
    for ident, msg in received(sock, counters, limit, routed=True, admit=admit):
        assert ident is not None  # routed
        job = msg.meta.pop("job", None)
        taken = accept(msg)
        if taken:
            out.append(msg)
        if job is not None:  # the sender asks for confirmation (it says which job) only where it waits for it
            meta: wire.Meta = {"job": job} if taken else {"job": job, "retry": True}
            try:
                sock.send_multipart([ident, *wire.encode(Message("done", msg.stream, msg.frame, msg.epoch,
                                                                 meta=meta))], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the sender went away: it sends again when it comes back, or its dispatcher does
    return out


# ----------------------------------------------------------------------------------------------- dispatcher


@dataclass
class Job:
    """One message handed to a worker; ``ctx`` is the caller's (e.g. the frame the job belongs to)."""

    msg: Message
    ctx: Any = None
    id: int = 0
    worker: bytes | None = None
    sent: float = 0.0
    tries: int = 0


@dataclass
class Peer:
    """A worker as its dispatcher sees it."""

    ident: bytes
    window: int
    info: dict[str, Any]
    last_seen: float
    jobs: dict[int, Job] = field(default_factory=dict)
    last_sent: float = 0.0
    joined: float = field(default_factory=time.monotonic)
    last_done: float = float("-inf")  # when it last finished a job

    @property
    def name(self) -> str:
        return peer_name(self.ident)

    def proven(self, now: float) -> bool:
        """It finished a job in the last ``PROVEN_S``."""
        return now - self.last_done < PROVEN_S

    @property
    def free(self) -> int:
        return self.window - len(self.jobs)


class Dispatcher:
    """ROUTER side: which workers exist, the jobs each holds, who gets the next job (the fewest jobs held, a proven
    worker or a newcomer first, the least recently used among equals: fair whatever credit each claims).

    ``replies``: the kinds a worker may answer a job with (besides ``done``); ``check_info``: validates what a
    worker announces (returns a reason to refuse it, or None); ``check_reply(peer, job, reply)``: validates a reply
    to a job (a reason: the worker is benched, its jobs taken back, this one included).  ``handles(peer)``: the
    worker maps this host's shared memory (``shm.py``): a job's image goes to it as a handle, to others as pixels.
    """

    def __init__(self, sock: zmq.Socket, name: str, counters: Counters, *, max_window: int, job_timeout_s: float,
                 replies: Iterable[str] = (), max_workers: int = 64, expiry_s: float = EXPIRY_S,
                 check_info: Callable[[dict[str, Any]], str | None] | None = None,
                 check_reply: Callable[[Peer, Job, Message], str | None] | None = None,
                 jpeg_quality: int | None = None, done_proves: bool = True,
                 handles: Callable[[Peer], bool] | None = None) -> None:
        self.sock, self.name, self.counters = sock, name, counters
        self.max_window, self.job_timeout_s, self.expiry_s = max_window, job_timeout_s, expiry_s
        self.replies = frozenset(replies) | {"done"}
        self.max_workers, self.check_info, self.jpeg_quality = max_workers, check_info, jpeg_quality
        self.check_reply = check_reply
        self.handles = handles
        self.done_proves = done_proves  # False: a job is proven done only by the caller's proved() (the next stage)
        self.peers: dict[bytes, Peer] = {}
        self.benched: OrderedDict[bytes, tuple[float, int]] = OrderedDict()  # ident → (until, strikes)
        self.reassigned: OrderedDict[int, None] = OrderedDict()  # ids of jobs taken back: their replies are late
        self._ids = itertools.count(1)
        self._pending_redo: list[Job] = []  # jobs of workers found gone while sending
        self.done_by_name: OrderedDict[str, int] = OrderedDict()  # jobs done per worker, the last 64 workers
        self._last_trial = float("-inf")  # when a tried, unproven worker last got a job while others had room

    # -------------------------------------------------------------- receiving
    def receive(self, limit: int = 256) -> list[tuple[Peer, Job, Message]]:
        """Read what workers sent. Control messages are handled here; each valid reply comes back with its job."""
        out = []
        for ident, msg in received(self.sock, self.counters, limit, routed=True):
            assert ident is not None  # routed
            got = self._handle(ident, msg)
            if got is not None:
                out.append(got)
        return out

    def _handle(self, ident: bytes, msg: Message) -> tuple[Peer, Job, Message] | None:
        if msg.kind == "ready":
            self._announce(ident, msg)
            return None
        peer = self.peers.get(ident)
        if peer is None:
            self.counters["unknown_worker"] += 1
            self._control(ident, Message("reset"))
            return None
        peer.last_seen = time.monotonic()
        if msg.kind == "heartbeat":
            return None
        if msg.kind == "done" and msg.meta.get("retry"):  # handed back: it could not be delivered for now
            # a missing job id (None) finds nothing, as an unknown one does
            job = peer.jobs.pop(msg.meta.get("job"), None)  # type: ignore[arg-type]
            if job is not None:
                self._remember_reassigned(job.id)
                self._pending_redo.append(job)
                self.counters["jobs_given_back"] += 1
            return None
        if msg.kind not in self.replies:
            self.counters.drop("unexpected", f"{msg.kind} message from a worker", peer=ident)
            return None
        job_id = msg.meta.get("job")
        job = peer.jobs.pop(job_id, None) if job_id is not None else None
        if job is None:
            if job_id in self.reassigned:
                self.counters["late_replies"] += 1
            else:
                self.counters.drop("unknown_job", f"{msg.kind} names a job it was not given", peer=ident)
            return None
        why = self.check_reply(peer, job, msg) if self.check_reply and msg.kind != "done" else None
        if why:  # a worker whose replies fail checks is benched like a stalling one (and gets no free first time)
            self.counters.drop("bad_reply", why, peer=ident)
            self._remember_reassigned(job.id)
            self._pending_redo.append(job)
            self._bench(ident, "sent a reply that fails checks", free_first=False)
            self._pending_redo += self.forget(ident)
            return None
        self.benched.pop(ident, None)  # it does its work: a later stall starts again from the first strike
        if self.done_proves or msg.kind != "done":
            peer.last_done = time.monotonic()
        self.done_by_name[peer.name] = self.done_by_name.pop(peer.name, 0) + 1
        while len(self.done_by_name) > self.max_workers:
            self.done_by_name.popitem(last=False)
        return None if msg.kind == "done" else (peer, job, msg)

    def _announce(self, ident: bytes, msg: Message) -> None:
        peer = self.peers.get(ident)
        info = {k: v for k, v in msg.meta.items() if k not in ("credit", "stats")}
        window = min(int(msg.meta.get("credit", 1)), self.max_window)
        if peer is not None:  # announced again (it lost track of us): same jobs, fresh window
            peer.window, peer.last_seen = window, time.monotonic()
            return
        until, _ = self.benched.get(ident, (0.0, 0))
        if time.monotonic() < until:
            self.counters["benched_announces"] += 1
            return
        why = self.check_info(info) if self.check_info else None
        if why:
            self.counters.drop("refused_worker", why, peer=ident)
            return
        if len(self.peers) >= self.max_workers and not self._recycle_slot():
            self.counters.drop("too_many_workers", f"{self.max_workers} workers already", peer=ident)
            return
        self.peers[ident] = Peer(ident, window, info, time.monotonic())
        log.info("%s: worker %s joined (%d jobs at once)", self.name, peer_name(ident), window)

    def _recycle_slot(self) -> bool:
        """All slots taken: free the one of the worker that has done nothing the longest (never, or not in the last
        ``PROVEN_S``; its jobs are taken back), sparing workers that joined in the last ``GRACE_S``."""
        now = time.monotonic()
        idle = [(max(p.joined, p.last_done), i) for i, p in self.peers.items()
                if not p.proven(now) and now - p.joined >= GRACE_S]
        if not idle:
            return False
        ident = min(idle)[1]
        self.counters["workers_evicted"] += 1
        log.info("%s: all %d worker slots taken: %s, which did no job lately, makes room", self.name,
                 self.max_workers, peer_name(ident))
        self._pending_redo += self.forget(ident)
        return True

    def proved(self, ident: bytes | None) -> None:
        """The next stage has what this worker made of a job (``done_proves=False``: only that makes it proven)."""
        peer = self.peers.get(ident) if ident is not None else None
        if peer is not None:
            peer.last_done = time.monotonic()

    # -------------------------------------------------------------- sending
    def free(self) -> int:
        return sum(max(0, p.free) for p in self.peers.values())

    def submit(self, job: Job) -> bool:
        """Hand ``job`` to the best worker. False: no worker can take it now."""
        while True:
            now = time.monotonic()
            # proven workers and newcomers (never sent a job) first; workers sent jobs that finished none lately
            # (identities that hand every job back among them) share one trial job a TRIAL_S
            first: list[tuple[int, float, bytes]] = []
            tried: list[tuple[float, int, bytes]] = []
            for i, p in self.peers.items():
                if p.free <= 0:
                    continue
                if p.proven(now) or not p.last_sent:
                    first.append((len(p.jobs), p.last_sent, i))
                else:
                    tried.append((p.last_sent, len(p.jobs), i))
            if not first and not tried:
                return False
            if tried and (not first or now - self._last_trial >= TRIAL_S):  # a trial, or nobody else has room
                ident = min(tried)[2]
                if first:
                    self._last_trial = now
            else:
                ident = min(first)[2]
            peer = self.peers[ident]
            if job.id:
                self._remember_reassigned(job.id)
            job.id, job.worker, job.sent, job.tries = next(self._ids), peer.ident, time.monotonic(), job.tries + 1
            job.msg.meta["job"] = job.id
            try:
                frames = wire.encode(job.msg, self.jpeg_quality, self.handles is not None and self.handles(peer))
                self.sock.send_multipart([peer.ident, *frames], flags=zmq.NOBLOCK, copy=False)
            except zmq.ZMQError as e:  # EHOSTUNREACH: the worker went away; EAGAIN: its queue is full
                log.warning("%s: worker %s unreachable (%s), forgetting it", self.name, peer.name, e.strerror)
                self._pending_redo += self.forget(peer.ident)
                continue
            peer.jobs[job.id] = job
            peer.last_sent = job.sent
            return True

    def held(self) -> Iterator[Job]:
        """Every job not finished: held by a worker, or to be given back to the caller (:meth:`take_back`)."""
        for p in self.peers.values():
            yield from p.jobs.values()
        yield from self._pending_redo

    def take_back(self) -> list[Job]:
        """Jobs of workers that died or stalled since the last call: send them again, or count them lost."""
        now = time.monotonic()
        redo, self._pending_redo = self._pending_redo, []
        for ident, peer in list(self.peers.items()):
            if now - peer.last_seen > self.expiry_s:
                log.warning("%s: worker %s silent for %.1fs, expired", self.name, peer.name, self.expiry_s)
                self.counters["workers_expired"] += 1
                redo += self.forget(ident)
            elif any(now - j.sent > self.job_timeout_s for j in peer.jobs.values()):
                self._bench(ident, f"held a job over {self.job_timeout_s:.0f}s")
                redo += self.forget(ident)
        return redo

    def forget(self, ident: bytes) -> list[Job]:
        peer = self.peers.pop(ident, None)
        if peer is None:
            return []
        for job_id in peer.jobs:
            self._remember_reassigned(job_id)
        return list(peer.jobs.values())

    def _bench(self, ident: bytes, why: str, free_first: bool = True) -> None:
        """A worker held a job too long (or its reply failed checks): its jobs are taken back. The first stall it
        may announce itself again at once (it may have been paused); each time again without a job done in
        between, it waits twice as long (2, 4 ... 60 s; a failed check: 2 s at once)."""
        _, strikes = self.benched.pop(ident, (0.0, 0))
        seconds = 0.0 if strikes == 0 and free_first else min(MAX_BENCH_S, 2.0 ** max(1, strikes))
        self.benched[ident] = (time.monotonic() + seconds, strikes + 1)
        while len(self.benched) > 256:
            self.benched.popitem(last=False)
        self.counters["workers_stalled" if free_first else "workers_benched_bad_replies"] += 1
        log.warning("%s: worker %s %s: benched for %.0fs, its jobs taken back", self.name, peer_name(ident), why,
                    seconds)

    def _remember_reassigned(self, job_id: int) -> None:
        self.reassigned[job_id] = None
        while len(self.reassigned) > 4096:
            self.reassigned.popitem(last=False)

    def _control(self, ident: bytes, msg: Message) -> None:
        try:
            self.sock.send_multipart([ident, *wire.encode(msg)], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def summary(self) -> dict[str, int]:
        """Jobs finished per worker (by name; the last ``max_workers`` workers), for the display's table."""
        return dict(self.done_by_name)


# ----------------------------------------------------------------------------------------------- worker


class WorkerLink:
    """DEALER side of one link to one dispatcher: announce, take jobs, say when each is done, heartbeat when idle,
    announce again on reset.  A worker serving several hosts has one link per host (:func:`poll_links`)."""

    def __init__(self, sock: zmq.Socket, window: int, info: wire.Meta, counters: Counters,
                 accepts: Iterable[str]) -> None:
        self.sock, self.window, self.info, self.counters = sock, window, info, counters
        self.accepts = frozenset(accepts)
        self._last_sent = 0.0
        self.announced = False  # False until an announcement went out (the dispatcher may not be up yet)

    def announce(self) -> None:
        self.announced = self._send(Message("ready", meta={"credit": self.window, **self.info}))

    def tick(self) -> None:
        if not self.announced:
            self.announce()
        elif time.monotonic() - self._last_sent >= HEARTBEAT_S:
            self._send(Message("heartbeat"))

    def done(self, job: Message, give_back: bool = False) -> None:
        """The job is finished (``give_back``: it could not be finished for now: the dispatcher takes it back)."""
        meta: wire.Meta = {"job": job.meta["job"], "retry": True} if give_back else {"job": job.meta["job"]}
        self._send(Message("done", job.stream, job.frame, job.epoch, meta=meta))

    def reply(self, msg: Message) -> bool:
        """Send a reply (it names its job and so frees the credit). False: the dispatcher is gone."""
        try:
            self.sock.send_multipart(wire.encode(msg), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        self._last_sent = time.monotonic()
        return True

    def receive(self, limit: int = 64) -> list[Message]:
        """Jobs waiting on this link (reset handled, anything malformed or unexpected counted)."""
        out = []
        for _, msg in received(self.sock, self.counters, limit):
            if msg.kind == "reset":
                self.announce()
            elif msg.kind not in self.accepts or not isinstance(msg.meta.get("job"), int):
                self.counters.drop("unexpected", f"{msg.kind} message is not a job")
            else:
                out.append(msg)
        return out

    def _send(self, msg: Message) -> bool:
        try:
            self.sock.send_multipart(wire.encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            return False  # dispatcher not connected (yet): try again at the next tick
        self._last_sent = time.monotonic()
        return True


def poll_links(links: list[WorkerLink], timeout_s: float, also: tuple[zmq.Socket, ...] = ()
               ) -> list[tuple[WorkerLink, Message]]:
    """Wait up to ``timeout_s`` for jobs on any link (or for anything on the sockets ``also``); heartbeat the idle
    links. Returns (link, job) pairs."""
    poller = zmq.Poller()
    for sock in (*(link.sock for link in links), *also):
        poller.register(sock, zmq.POLLIN)
    if not all(link.announced for link in links):
        timeout_s = min(timeout_s, 0.05)  # a dispatcher that is not up yet: look again soon
    ready = dict(poller.poll(int(1000 * timeout_s)))
    out = [(link, msg) for link in links if link.sock in ready for msg in link.receive()]
    for link in links:
        link.tick()
    return out
