"""Frames through shared memory (common/transport/shm.py): the same pictures as over the wire, hostile handles
refused and counted, no segment left behind when capture or a consumer is killed with SIGKILL, and pixels on the
wire for a worker that does not map this host's segments."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import zmq

from dogfilter.commands import janitor
from dogfilter.commands.run import Pipeline
from dogfilter.common.transport import shm, shmnames, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import Dispatcher, Job, WorkerLink
from dogfilter.common.transport.wire import Message, WireError
from tests.conftest import make_clip, read_index, read_video, wait_for

SECRET = bytes(range(32))
needs_shm = pytest.mark.skipif(shm.domain(SECRET) is None, reason="no /dev/shm here: frames always travel on the wire")
SHAPE = (48, 64, 3)


def _frame(pool: shm.Pool, value: int = 7, holder: object = None) -> tuple[Message, np.ndarray]:
    img = np.full(SHAPE, value, np.uint8)
    img[0, 0] = (1, 2, 3)
    msg = Message("frame", "cam0", 1, 1, meta={"job": 1})
    got = pool.put(img, holder if holder is not None else msg)
    assert got is not None
    wire.share(msg, *got)
    return msg, img


def _header(msg: Message, **ref: Any) -> list[Any]:
    """The message as the wire carries it (a handle), its handle's fields replaced by ``ref``."""
    frames = wire.encode(msg, handles=True)
    part = msg._image_src[2] if msg._image_src else None
    assert part is not None and part.shm is not None
    new = {"name": "image", "shape": part.shape, "dtype": "uint8", "enc": "shm",
           "shm": {"seg": part.shm.seg, "gen": part.shm.gen, "off": part.shm.off}}
    if "shape" in ref:
        new["shape"] = ref.pop("shape")
    new["shm"].update(ref)
    obj = msgspec.msgpack.decode(frames[0])
    obj["parts"] = [new]
    return [msgspec.msgpack.encode(obj), *frames[1:]]


@pytest.fixture
def segs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[shm.Pool, shm.Reader]:
    """A capture's pool and a consumer's reader over a private folder standing in for /dev/shm."""
    pool = shm.Pool(SECRET, 2, shm_dir=tmp_path)
    reader = shm.Reader(shm.token(SECRET), copy=False, shm_dir=tmp_path)
    monkeypatch.setattr(wire.SHM, "reader", reader)
    yield pool, reader
    pool.close()


def _fault(frames: list[object]) -> str:
    with pytest.raises(WireError) as e:
        wire.decode(frames)
    return e.value.fault


# ----------------------------------------------------------------------------------------------- unit


def _shm_view(msg: Message) -> bool:
    """The message's image is a view into a shared-memory segment (not its own pixels)."""
    src = msg._image_src
    return src is not None and src[2].shm is not None and src[0] == id(msg.image)


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_a_handle_brings_the_pixels_and_only_a_handle_travels(segs) -> None:
    pool, _ = segs
    msg, img = _frame(pool)
    frames = wire.encode(msg, handles=True)
    assert len(frames) == 2 and len(frames[1]) == 0  # no pixels on the wire
    got = wire.decode(frames)
    assert np.array_equal(got.image, img) and not got.image.flags.writeable
    assert _shm_view(got) and wire.image_intact(got)
    fwd = wire.encode(got.derive("detections", crops=np.zeros((0, 48, 48), np.uint8)), handles=True)
    assert len(fwd[1]) == 0  # detect forwards the handle as it came
    plain = wire.encode(msg)  # a receiver that does not map our segments: the pixels
    assert bytes(plain[1]) == img.tobytes()


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_hostile_handles_are_refused_and_counted_never_mapped(segs, tmp_path: Path) -> None:
    pool, _ = segs
    msg, _ = _frame(pool)
    seg = pool.slots[0].name
    foreign = seg.replace(shm.token(SECRET), "0123456789abcdef")
    (tmp_path / foreign).write_bytes((tmp_path / seg).read_bytes())  # a real segment, of another pipeline
    os.chmod(tmp_path / foreign, 0o600)
    assert _fault(_header(msg, seg=foreign)) == "shm_refused"
    assert _fault(_header(msg, seg=seg[:-1] + "9")) == "shm_refused"  # ours in form, but never made
    assert _fault(_header(msg, seg="../../etc/passwd")) == "malformed"  # not even a segment's name
    assert _fault(_header(msg, off=shm.HEAD + 1)) == "shm_refused"  # beyond the segment's end
    assert _fault(_header(msg, off=0)) == "shm_refused"  # over the slot's own header
    assert _fault(_header(msg, shape=(96, 64, 3))) == "shm_refused"  # bigger than the slot
    assert _fault(_header(msg, shape=(10_000, 10_000, 3))) == "oversized"  # the pixel cap, before any mapping
    assert _fault(_header(msg, gen=1000)) == "shm_stale"  # a generation the slot does not hold
    with_pixels = wire.encode(msg, handles=True)
    assert _fault([with_pixels[0], b"\0" * 10]) == "malformed"  # pixels beside a handle
    link = tmp_path / f"{shmnames.PREFIX}{shm.token(SECRET)}-1-77"
    link.symlink_to(tmp_path / seg)
    assert _fault(_header(msg, seg=link.name)) == "shm_refused"  # a link is never followed
    opened = tmp_path / f"{shmnames.PREFIX}{shm.token(SECRET)}-1-78"
    opened.write_bytes((tmp_path / seg).read_bytes())
    os.chmod(opened, 0o644)
    assert _fault(_header(msg, seg=opened.name)) == "shm_refused"  # others may read it: not one of capture's


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_a_stage_that_maps_nothing_refuses_a_handle(segs, monkeypatch: pytest.MonkeyPatch) -> None:
    pool, _ = segs
    msg, _ = _frame(pool)
    monkeypatch.setattr(wire.SHM, "reader", None)
    assert _fault(wire.encode(msg, handles=True)) == "shm_refused"


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_a_reused_slot_is_a_stale_handle_never_a_wrong_picture(segs, tmp_path: Path) -> None:
    pool, reader = segs
    first, _ = _frame(pool, 7)
    held = _frame(pool, 8)[0]  # the second slot, still held
    frames = wire.encode(first, handles=True)
    got = wire.decode(frames)  # detect's view
    pool.release(first)
    again, _ = _frame(pool, 9)  # the slot freed first is reused
    assert again.image is not None and int(again.image[5, 5, 0]) == 9
    assert not wire.image_intact(got)  # detect finds out after its work
    assert _fault(frames) == "shm_stale"  # and a copy taken now is refused
    copier = shm.Reader(shm.token(SECRET), copy=True, shm_dir=tmp_path)
    src = held._image_src
    assert src is not None and src[2].shm is not None
    img = copier.image(src[2].shm.seg, src[2].shm.gen, shm.HEAD, SHAPE)
    assert img.flags.writeable and int(img[5, 5, 0]) == 8
    assert pool.put(np.zeros(SHAPE, np.uint8), object()) is None  # both slots held: the frame goes as pixels


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_a_worker_that_does_not_announce_this_hosts_memory_gets_pixels(segs) -> None:
    """A remote worker (or one in a container, or given --connect) announces no domain, or another one: pixels."""
    pool, _ = segs
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://shm-frames")
    mine = shm.domain(SECRET) or "0" * 16
    workers = {}
    try:
        for name, dom in (("near", mine), ("far", None), ("other", "f" * 16)):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.ROUTING_ID, name.encode())
            s.connect("inproc://shm-frames")
            info: wire.Meta = {"shm": dom} if dom else {}
            WorkerLink(s, 1, info, Counters("detect", logging.getLogger("t")), ("frame",)).announce()
            workers[name] = s
        counters = Counters("capture", logging.getLogger("t"))
        d = Dispatcher(router, "capture", counters, max_window=1, job_timeout_s=5,
                       handles=lambda p: p.info.get("shm") == mine)
        deadline = time.monotonic() + 5
        while len(d.peers) < 3 and time.monotonic() < deadline:
            router.poll(100)
            d.receive()
        for _ in range(3):
            msg, img = _frame(pool, 5, holder=object()) if len(pool.held_by()) < 2 else (None, None)
            if msg is None:
                pool.release(pool.held_by()[0])
                msg, img = _frame(pool, 5, holder=object())
            assert d.submit(Job(msg))
        for name, s in workers.items():
            assert s.poll(2000)
            parts = s.recv_multipart()
            assert (len(parts[1]) == 0) == (name == "near"), name  # a handle only for the worker on this host
            if name != "near":
                assert parts[1] == img.tobytes()
    finally:
        for s in workers.values():
            s.close(0)
        router.close(0)


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_a_worker_given_other_hosts_or_remote_links_maps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from dogfilter.services import detect

    monkeypatch.setattr(wire.SHM, "reader", None)
    log = logging.getLogger("t")
    base = {"secret_file": None, "frames_addr": "ipc:///x/frames", "detections_addr": "ipc:///x/detections"}
    for over in ({"connect": ["tcp://10.0.0.2:5551"]}, {"connect": [], "frames_addr": "tcp://10.0.0.2:5551"},
                 {"connect": [], "detections_addr": "tcp://192.168.1.5:5552"}):
        assert detect.share_memory(argparse.Namespace(**{**base, **over}), log) is None
    assert wire.SHM.reader is None


@pytest.mark.unit
@pytest.mark.timeout(10)
def test_a_capture_that_starts_removes_the_segments_of_dead_captures_only(tmp_path: Path) -> None:
    tok = shm.token(SECRET)
    dead = tmp_path / f"{shmnames.PREFIX}{tok}-{2**22 + 12345}-1"  # above pid_max: no such process
    alive = tmp_path / f"{shmnames.PREFIX}{tok}-{os.getppid()}-1"
    other = tmp_path / f"{shmnames.PREFIX}{'e' * 16}-{2**22 + 12345}-1"
    for p in (dead, alive, other):
        p.write_bytes(b"x")
    pool = shm.Pool(SECRET, 1, shm_dir=tmp_path)
    assert pool.cleaned == 1 and not dead.exists() and alive.exists() and other.exists()
    _frame(pool)
    assert len(shmnames.segments(tok, tmp_path)) == 2
    pool.close()
    assert shmnames.segments(tok, tmp_path) == [alive]
    assert shmnames.remove(tok, shm_dir=tmp_path) == 1 and other.exists()


@pytest.mark.unit
@pytest.mark.timeout(10)
@needs_shm
def test_the_next_launcher_removes_the_segments_of_one_killed_with_its_janitor(tmp_path: Path) -> None:
    run = tmp_path / "dogfilter-killed"
    run.mkdir(mode=0o700)
    (run / janitor.MARKER).write_text(f"{2**22 + 12345} 0\n")  # a launcher that is gone
    (run / "secret").write_text(os.urandom(32).hex() + "\n")
    tok = shmnames.token_of_secret_file(run / "secret")
    assert tok is not None
    seg = shmnames.SHM_DIR / f"{shmnames.PREFIX}{tok}-{os.getpid()}-1"  # its capture may even look alive
    seg.write_bytes(b"x")
    try:
        assert janitor.clean_stale(str(tmp_path)) == [run]
        assert not seg.exists() and not run.exists()
    finally:
        seg.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------- system


def _run_file(tmp_path: Path, clip: Path, shm_on: str) -> tuple[list[np.ndarray], dict]:
    out, stats = tmp_path / f"out-{shm_on}.avi", tmp_path / f"s-{shm_on}.json"
    p = Pipeline(values={"shm": shm_on}, display=["--output", str(out), "--stats-out", str(stats)], mode="file",
                 capture=["--source", str(clip)])
    with p:
        assert p.wait(timeout=100) == 0
        token = shmnames.token_of_secret_file(p.secret)
    assert token is not None and shmnames.segments(token) == []  # capture unlinked its own
    return read_video(out), json.loads(stats.read_text())


@pytest.mark.system
@pytest.mark.timeout(180)
@needs_shm
def test_file_mode_through_shared_memory_paints_the_same_frames(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    n = len(make_clip(clip, n=12))
    on, s_on = _run_file(tmp_path, clip, "on")
    off, s_off = _run_file(tmp_path, clip, "off")
    assert [read_index(f) for f in on] == list(range(n))
    assert s_on["counters"]["capture"].get("frames_shared", 0) == n  # every frame went as a handle
    assert "frames_shared" not in s_off["counters"]["capture"]
    assert not any(k.startswith("shm_") for c in s_on["counters"].values() for k in c)
    assert len(on) == len(off) and all(np.array_equal(a, b) for a, b in zip(on, off, strict=True))


@pytest.mark.system
@pytest.mark.timeout(120)
@needs_shm
def test_kill_9_of_capture_and_a_consumer_leaves_no_segment(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    p = Pipeline(mode="live", values={"source": ["demo"], "size": "320x240", "fps": 15.0, "shm": "on",
                                      "stats_out": str(stats)})
    with p:
        token = shmnames.token_of_secret_file(p.secret)
        assert token is not None
        s = wait_for(stats, lambda s: s["counters"].get("capture", {}).get("frames_shared", 0) >= 10, timeout=60)
        assert not [k for c in s["counters"].values() for k in c if k.startswith("shm_")], s["counters"]
        first = {x.name for x in shmnames.segments(token)}
        assert first
        for name in ("capture.1", "detect.1"):  # the producer, and a consumer that maps its segments
            p.procs[name].send_signal(signal.SIGKILL)
            p.procs[name].wait(10)
        assert {x.name for x in shmnames.segments(token)} == first  # nobody unlinked them: they are left over
        p.start_one("capture", "capture.1")  # a capture that starts removes those of the dead one
        p.start_one("detect", "detect.1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = {x.name for x in shmnames.segments(token)}
            if now and not now & first:
                break
            time.sleep(0.2)
        assert now and not now & first, (first, now)
        p.procs["capture.1"].send_signal(signal.SIGKILL)  # killed again; then the launcher stops
        p.procs["capture.1"].wait(10)
    assert shmnames.segments(token) == []
    assert janitor.remove_segments(p.dir) == 0  # (the janitor's way: by the run folder's secret) nothing left
