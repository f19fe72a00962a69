"""Capture's dispatcher over real ZeroMQ sockets (in this process, no stages): a worker that vanished is found out
as a frame is sent to it, and that frame is not lost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import Dispatcher, Job, WorkerLink
from dogfilter.services.capture import Capture, FileFeed, hand_out
from tests.test_handlers import Frames, _capture

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _until(what: Callable[[], Any], timeout: float = 5.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError("not in time")


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[tuple[zmq.Context, str]]:
    ctx = zmq.Context()
    yield ctx, f"ipc://{tmp_path}/frames"
    ctx.destroy(linger=0)


def _setup(sockets: tuple[zmq.Context, str], live: bool) -> tuple[Dispatcher, dict[bytes, WorkerLink], Capture]:
    ctx, addr = sockets
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # as sockets.Links makes it
    router.bind(addr)
    counters = Counters("capture", logging.getLogger("t"))
    pool = Dispatcher(router, "capture", counters, max_window=4, job_timeout_s=60.0)
    links: dict[bytes, WorkerLink] = {}
    for name in (b"a", b"b"):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, name)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(addr)
        links[name] = WorkerLink(sock, 1, {}, Counters("detect", logging.getLogger("t")), accepts=("frame", "eos"))
        links[name].announce()
    _until(lambda: pool.receive() or len(pool.peers) == 2)
    cap = _capture([FileFeed("cam0", Frames(5), 1)], mode="live" if live else "file")
    return pool, links, cap


def _vanish(links: dict[bytes, WorkerLink], name: bytes, pool: Dispatcher) -> None:
    """Worker ``name`` finishes its job, then its process dies (its socket closes) before it can say more."""
    (job,) = _until(lambda: links[name].receive())
    links[name].done(job)
    _until(lambda: pool.receive() or not pool.peers[name].jobs)
    links[name].sock.close(linger=0)
    _until(lambda: _unreachable(pool.sock, name))  # the router found out


def _unreachable(router: zmq.Socket, name: bytes) -> bool:
    try:
        router.send_multipart([name, b""], flags=zmq.NOBLOCK)  # not a message: dropped by the dying link, if any
    except zmq.ZMQError:
        return True
    return False


def test_file_mode_keeps_a_frame_sent_to_a_worker_that_just_vanished(sockets) -> None:
    pool, links, cap = _setup(sockets, live=False)
    redo: list[Job] = []
    hand_out(cap, pool, redo, live=False, now=100.0)  # frames 0 and 1, one to each worker
    assert sorted(len(p.jobs) for p in pool.peers.values()) == [1, 1]
    _vanish(links, b"a", pool)  # a is free again, as far as the dispatcher knows, but dead; b is full
    hand_out(cap, pool, redo, live=False, now=100.1)  # frame 2 goes to a: unreachable, and nobody else has room
    assert [j.msg.frame for j in redo] == [2]  # kept, not lost
    assert list(pool.peers) == [b"b"] and len(list(pool.held())) == 1
    (job,) = _until(lambda: links[b"b"].receive())
    links[b"b"].done(job)
    _until(lambda: pool.receive() or not pool.peers[b"b"].jobs)
    hand_out(cap, pool, redo, live=False, now=100.2)
    assert not redo and [j.msg.frame for j in pool.peers[b"b"].jobs.values()] == [2]  # sent again, first


def test_live_counts_a_frame_sent_to_a_worker_that_just_vanished_as_lost(sockets) -> None:
    pool, links, cap = _setup(sockets, live=True)
    redo: list[Job] = []
    hand_out(cap, pool, redo, live=True, now=100.0)
    _vanish(links, b"a", pool)
    hand_out(cap, pool, redo, live=True, now=100.1)
    assert not redo and cap.counters["frames_lost_in_workers"] == 1  # stale by the time a worker is free: counted
