"""dogfilter-bench: every stage in isolation, the transport, the classifier, the whole pipeline, and the tutorial's
single loop — one command, one table (Markdown on stdout) and a JSON file.

    dogfilter-bench                       # the full run (a few minutes on 2 cores)
    dogfilter-bench --quick               # tiny counts: a smoke test
    dogfilter-bench --only transport,classifier --json out.json
    dogfilter-bench --only fleet          # K pipeline hosts × M classify workers in network namespaces (root)
    dogfilter-bench --only faces          # faces at every pose: found, landmarked, posed, steady; cost per face
    dogfilter-bench --only dog            # the dog on the face, flat and in 3-D: nose, ears, reactions, cost

Each stage alone is a real process on real sockets, driven by a feeder and a sink that the benchmark plays (the
same wire and credit code as the neighbouring stages).  Each figure is the median of ``--repeats`` runs, with the
spread (min–max) beside it.  Ratios compare figures taken in the same run, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq

from dogfilter.common.scene import LOOP_SECONDS
from dogfilter.common.service import interrupt
from dogfilter.common.transport import shm, wire
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.protocol import Dispatcher, Job, WorkerLink, drain, drain_confirming, send
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.sockets import make_socket

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------ helpers


def machine() -> dict[str, Any]:
    import msgspec
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": ort, "opencv": cv2.__version__, "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(), "msgspec": msgspec.__version__, "os": platform.platform()}


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a process, from /proc."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(f[11]) + int(f[12])) / CLK
        rss = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if ln.startswith("VmRSS")) / 1024
        return cpu, rss
    except (OSError, StopIteration, IndexError):
        return 0.0, 0.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def med(runs: list[dict], key: str) -> dict[str, float]:
    vals = [r[key] for r in runs if r.get(key) is not None and not np.isnan(r[key])]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def fmt(x: dict[str, float], digits: int = 1) -> str:
    if np.isnan(x["median"]):
        return "–"
    return f"{x['median']:.{digits}f} ({x['min']:.{digits}f}–{x['max']:.{digits}f})"


def demo_frames(size: tuple[int, int], n: int) -> list[np.ndarray]:
    from dogfilter.common.scene import DemoScene

    scene = DemoScene(*size)
    return [scene.render(i / 30) for i in range(n)]


class Stage:
    """One service as a child process on private ipc endpoints: the launcher's own way to start a stage
    (:meth:`Pipeline.start_one`: its arguments, environment, run folder, secret and parent-death signal), for one
    stage alone.  The benchmark's feeders play the other stages' parts on its endpoints (sealing with its secret)."""

    def __init__(self, stage: str, args: list[str], mode: str = "file") -> None:
        from dogfilter.commands.run import Pipeline

        self.name = f"{stage}.1"
        self.pipeline = Pipeline(mode=mode, restart=False)
        self.endpoints = self.pipeline.endpoints
        self.sealer = Sealer.from_file(self.pipeline.secret)
        self.p = self.pipeline.start_one(stage, self.name, args)

    def check(self) -> None:
        """Raise with the stage's own last line if it has exited."""
        if self.p.poll() is not None:
            raise RuntimeError(f"the stage exited ({self.p.returncode}): {self.pipeline.last_line(self.name)}")

    def stop(self) -> None:
        self.pipeline.stop()


COUNTERS = Counters("bench", logging.getLogger("bench"))


def drain_latencies(sink: zmq.Socket, wait_ms: int) -> list[float]:
    """Receive what has arrived (waiting up to wait_ms for the first): capture→here latency of each, ms."""
    if not sink.poll(wait_ms):
        return []
    if sink.socket_type == zmq.ROUTER:
        msgs = drain_confirming(sink, COUNTERS, lambda m: True)
    else:
        msgs = drain(sink, COUNTERS)
    return [1000 * (time.time() - m.ts["capture"]) for m in msgs if "capture" in m.ts]


def feeder_pool(router: zmq.Socket, replies: tuple[str, ...] = ()) -> Dispatcher:
    """The benchmark's own dispatcher, playing capture's or composite's part."""
    return Dispatcher(router, "bench", COUNTERS, max_window=64, job_timeout_s=60, replies=replies)


def drive(stage: Stage, n: int, warmup: int, step: Callable[[], list[float]],
          sockets: tuple[zmq.Socket, ...] = ()) -> dict[str, float]:
    """Call ``step`` (which returns latencies of messages that came out) until n have, after a warm-up; then, come
    what may, stop the stage and close the benchmark's own ``sockets``."""
    try:
        return _drive(stage, n, warmup, step)
    finally:
        stage.stop()
        for s in sockets:
            s.close()


def _drive(stage: Stage, n: int, warmup: int, step: Callable[[], list[float]]) -> dict[str, float]:
    lat: list[float] = []
    got = 0
    deadline = time.monotonic() + 120
    while got < warmup:
        got += len(step())
        stage.check()
        if time.monotonic() > deadline:
            raise RuntimeError("stage did not answer during warm-up")
    cpu0, _ = proc_usage(stage.p.pid)
    t0 = time.perf_counter()
    while len(lat) < n:
        lat += step()
        if time.monotonic() > deadline:
            raise RuntimeError("stage too slow")
    dt = time.perf_counter() - t0
    cpu1, rss = proc_usage(stage.p.pid)
    return {"msgs_per_s": len(lat) / dt, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "cpu_pct": 100 * (cpu1 - cpu0) / dt, "rss_mb": rss}


# ------------------------------------------------------------------------------------------------ stages alone


def bench_detect(n: int, warmup: int, size: tuple[int, int], detector: str) -> dict[str, float]:
    ctx: zmq.Context = zmq.Context.instance()
    st = Stage("detect", ["--detector", detector] if detector else [])  # "": the service's default
    router, sink = make_socket(ctx, zmq.ROUTER), make_socket(ctx, zmq.ROUTER)
    router.bind(st.endpoints["frames"])
    sink.bind(st.endpoints["detections"])
    pool, frames, i = feeder_pool(router), demo_frames(size, 90), 0  # 3 s of video, looped

    def step() -> list[float]:
        nonlocal i
        pool.receive()
        while pool.free():
            m = wire.Message("frame", "bench", i, 1, image=frames[i % len(frames)])
            m.stamp("capture")
            pool.submit(Job(m))
            i += 1
        return drain_latencies(sink, 50)

    return drive(st, n, warmup, step, (router, sink))


def bench_classify(n: int, warmup: int, faces_per_job: int, model: str | None) -> dict[str, float]:
    ctx: zmq.Context = zmq.Context.instance()
    crops = np.random.default_rng(0).integers(0, 255, (faces_per_job, 48, 48), dtype=np.uint8)
    st = Stage("classify", ["--model", model] if model else [])
    router = make_socket(ctx, zmq.ROUTER, hwm=1000)
    router.bind(st.endpoints["classify"])
    pool, j = feeder_pool(router, ("emotions",)), 0

    def step() -> list[float]:
        nonlocal j
        router.poll(50)
        out = [1000 * (time.perf_counter() - job.ctx) for _, job, _ in pool.receive()]
        while pool.free():
            job = wire.Message("crops", "bench", j, 1, faces=[wire.Face(box=(0, 0, 48, 48))] * faces_per_job,
                               crops=crops)
            pool.submit(Job(job, ctx=time.perf_counter()))
            j += 1
        return out

    r = drive(st, n, warmup, step, (router,))
    r["faces_per_s"] = r["msgs_per_s"] * faces_per_job
    return r


def bench_composite(n: int, warmup: int, size: tuple[int, int]) -> dict[str, float]:
    ctx: zmq.Context = zmq.Context.instance()
    img = demo_frames(size, 1)[0]
    from dogfilter.common.vision.crops import face_crop
    from dogfilter.common.vision.detectors import HaarDetector

    faces = HaarDetector().detect(img)
    crops = np.stack([face_crop(img, f.box) for f in faces])
    st = Stage("composite", [])
    feed, sink = make_socket(ctx, zmq.DEALER), make_socket(ctx, zmq.PULL)
    worker = make_socket(ctx, zmq.DEALER, hwm=1000)
    worker.setsockopt(zmq.ROUTING_ID, b"bench-classify")
    feed.connect(st.endpoints["detections"])
    worker.connect(st.endpoints["classify"])
    sink.bind(st.endpoints["display"])
    classes = ["happy", "sad", "surprise"]
    link = WorkerLink(worker, 64, {"classes": classes}, COUNTERS, accepts=("crops",))
    link.announce()
    i = 0

    def step() -> list[float]:
        nonlocal i
        for job in link.receive():  # an instant classifier
            link.reply(wire.Message("emotions", job.stream, job.frame, job.epoch,
                                    faces=[wire.Face(box=f.box, probs=[0.8, 0.1, 0.1]) for f in job.faces],
                                    meta={"job": job.meta["job"]}))
        link.tick()
        if feed.poll(0, zmq.POLLOUT):
            m = wire.Message("detections", "bench", i, 1, faces=[copy.copy(f) for f in faces], image=img,
                             crops=crops)
            m.stamp("capture")
            send(feed, st.sealer.seal(m), timeout_s=0)
            i += 1
        return drain_latencies(sink, 5)

    r = drive(st, n, warmup, step, (feed, sink, worker))
    r["faces"] = len(faces)
    return r


def bench_capture(n: int, warmup: int, size: tuple[int, int]) -> dict[str, float]:
    ctx: zmq.Context = zmq.Context.instance()
    st = Stage("capture", ["--source", "demo", "--size", f"{size[0]}x{size[1]}"])
    dealer = make_socket(ctx, zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"bench-detect")
    dealer.connect(st.endpoints["frames"])
    link = WorkerLink(dealer, 2, {}, COUNTERS, accepts=("frame", "eos"))
    link.announce()

    def step() -> list[float]:
        out = []
        if dealer.poll(50):
            for m in link.receive():
                if m.kind == "frame":
                    out.append(1000 * (time.time() - m.ts["capture"]))
                link.done(m)
        link.tick()
        return out

    return drive(st, n, warmup, step, (dealer,))


def bench_display(n: int, warmup: int, size: tuple[int, int]) -> dict[str, float]:
    ctx: zmq.Context = zmq.Context.instance()
    img = demo_frames(size, 1)[0]
    with tempfile.TemporaryDirectory() as d:
        stats = Path(d) / "stats.json"
        st = Stage("display", ["--output", str(Path(d) / "rec.avi"), "--stats-out", str(stats)])
        feed = make_socket(ctx, zmq.PUSH)
        feed.connect(st.endpoints["display"])

        def push(i: int) -> None:
            m = wire.Message("composited", "bench", i, 1, image=img, meta={"fps": 30.0})
            m.stamp("composite")
            send(feed, st.sealer.seal(m), block=True)

        for i in range(warmup):  # the process is up and its recorder open before the clock starts
            push(i)
        while not stats.exists() or json.loads(stats.read_text() or "{}").get("frames", 0) < warmup:
            time.sleep(0.05)
            if st.p.poll() is not None:
                raise RuntimeError("display exited")
        cpu0, _ = proc_usage(st.p.pid)
        t0 = time.perf_counter()
        for i in range(warmup, warmup + n):
            push(i)
        cpu1, rss = proc_usage(st.p.pid)
        send(feed, st.sealer.seal(wire.Message("eos", "bench", warmup + n, 1, meta={"last": warmup + n - 1})),
             block=True)
        st.p.wait(120)
        dt = time.perf_counter() - t0
        s = json.loads(stats.read_text())
        feed.close()
        hop = s["latency_ms"].get("composite→display", {})
        return {"msgs_per_s": (s["frames"] - warmup) / dt, "p50_ms": hop.get("p50"), "p95_ms": hop.get("p95"),
                "p99_ms": hop.get("p99"), "cpu_pct": 100 * (cpu1 - cpu0) / dt, "rss_mb": rss}


# ------------------------------------------------------------------------------------------------ transport


def bench_transport(size: tuple[int, int], n: int, addr_kind: str) -> dict[str, float]:
    """One hop PUSH→PULL of a frame: the product's wire (header + zero-copy pixels, validated decode) vs raw pyzmq
    (the bytes alone, zero-copy), and the shared-memory path (``shm``: capture's copy into a slot, the handle on
    the wire, detect's checked read-only view; ``shm_copy``: the composite's way, a checked copy out).  ``*_cpu_us``:
    this process's CPU per message, libzmq's I/O threads included (both ends live here)."""
    ctx: zmq.Context = zmq.Context.instance()
    img = demo_frames(size, 1)[0]
    res = {}
    secret = os.urandom(32)
    pool = shm.Pool(secret, 4) if shm.domain(secret) is not None else None
    before = wire.SHM.reader
    try:
        with tempfile.TemporaryDirectory() as d:
            for name in ("raw", "wire", "shm", "shm_copy"):
                if name.startswith("shm") and pool is None:
                    continue  # no /dev/shm here
                if pool is not None:
                    wire.SHM.reader = shm.Reader(pool.token, copy=name == "shm_copy")
                addr = f"ipc://{d}/{name}" if addr_kind == "ipc" else "tcp://127.0.0.1:*"
                pull = ctx.socket(zmq.PULL)
                pull.bind(addr)
                push = ctx.socket(zmq.PUSH)
                push.connect(pull.getsockopt_string(zmq.LAST_ENDPOINT))
                lat = []
                t0, c0 = time.perf_counter(), time.process_time()
                for i in range(n):
                    ts = time.perf_counter()
                    if name == "raw":
                        push.send(img, copy=False)
                        got: np.ndarray | None = np.frombuffer(pull.recv(copy=False).buffer,
                                                               np.uint8).reshape(img.shape)
                    else:
                        m = wire.Message("frame", "bench", i, 1, image=img)
                        m.stamp("capture")
                        if pool is not None and name.startswith("shm"):
                            slot = pool.put(img, m)
                            assert slot is not None
                            wire.share(m, *slot)
                        send(push, m, block=True, handles=True)
                        got = wire.decode(pull.recv_multipart(copy=False)).image
                        if pool is not None:
                            pool.release(m)
                    lat.append(1000 * (time.perf_counter() - ts))
                    assert got is not None and got.shape == img.shape
                res[f"{name}_per_s"] = n / (time.perf_counter() - t0)
                res[f"{name}_cpu_us"] = 1e6 * (time.process_time() - c0) / n
                res[f"{name}_p50_ms"] = pct(lat, 50)
                push.close()
                pull.close()
    finally:
        wire.SHM.reader = before
        if pool is not None:
            pool.close()
    res["ratio"] = res["wire_per_s"] / res["raw_per_s"]
    return res


def wire_messages() -> dict[str, wire.Message]:
    """One message of each kind that matters for cost, as the pipeline sends them (640×480, 3 faces, counters)."""
    img = np.zeros((480, 640, 3), np.uint8)
    counts = {k: 1000 + i for i, k in enumerate(("frames", "faces", "stale_frames", "frames_dropped", "full_scans",
                                                 "scan_passes", "scans_skipped", "malformed"))}
    meta: wire.Meta = {"fps": 30.0, "mode": "live", "seal": "0123456789abcdef" * 2, "job": 4711,
                       "stats": {"capture": dict(counts), "detect@detect.1@host:4242": dict(counts)}}
    ts = {"capture": 1.7e9, "detect_in": 1.7e9 + 0.001, "detect": 1.7e9 + 0.004}
    kp = [(100.5 + 7 * k, 200.25 + 3 * k) for k in range(6)]
    boxes = [(100, 120, 80, 80), (300, 100, 60, 60), (480, 260, 120, 120)]
    faces = [wire.Face(box=b, score=0.93, keypoints=kp) for b in boxes]
    probs = [0.6, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05]
    return {
        "frame": wire.Message("frame", "cam0", 123456, 1_700_000_000_000, ts=dict(ts), meta=meta, image=img),
        "detections (3 faces)": wire.Message("detections", "cam0", 123456, 1_700_000_000_000, ts=dict(ts),
                                             faces=faces, meta=meta, image=img,
                                             crops=np.zeros((3, 48, 48), np.uint8)),
        "emotions (3 faces)": wire.Message("emotions", "cam0", 123456, 1_700_000_000_000,
                                           faces=[wire.Face(box=b, probs=probs) for b in boxes],
                                           meta={"job": 4711, "worker": "classify.1@host:4242",
                                                 "stats": {"classify@classify.1": dict(counts)}}),
    }


def bench_wire(n: int) -> dict[str, dict[str, float]]:
    """µs to encode and to decode (every check; the pixels not copied) one message of each kind, in process."""
    out = {}
    for name, msg in wire_messages().items():
        frames = [bytes(memoryview(p)) for p in wire.encode(msg)]
        wire.decode(frames)
        t0 = time.perf_counter()
        for _ in range(n):
            wire.encode(msg)
        t1 = time.perf_counter()
        for _ in range(n):
            wire.decode(frames)
        t2 = time.perf_counter()
        out[name] = {"encode_us": 1e6 * (t1 - t0) / n, "decode_us": 1e6 * (t2 - t1) / n, "header_bytes": len(frames[0])}
    return out


# ------------------------------------------------------------------------------------------------ classifier


def bench_classifier(model: str | None, batch: int, seconds: float, device: str = "cpu",
                     engine: str = "torch") -> dict[str, float]:
    import torch

    from dogfilter.common.vision.classifier import load_classifier

    clf = load_classifier(model, device, engine, threads=1)
    x = np.random.default_rng(0).integers(0, 255, (batch, 48, 48), dtype=np.uint8)
    clf.predict_proba(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        clf.predict_proba(x)
        if device == "cuda":
            torch.cuda.synchronize()
        n += 1
    dt = time.perf_counter() - t0
    return {"faces_per_s": n * batch / dt, "ms_per_face": 1000 * dt / (n * batch)}


# ------------------------------------------------------------------------------------------------ end to end


def bench_e2e(mode: str, size: tuple[int, int], seconds: float, n_classify: int, n_detect: int, fps: float,
              file_frames: int) -> dict[str, float]:
    from dogfilter.commands.run import Pipeline

    with tempfile.TemporaryDirectory() as d:
        stats = Path(d) / "stats.json"
        if mode == "file":
            clip = Path(d) / "clip.avi"
            w = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30, size)
            for f in demo_frames(size, file_frames):
                w.write(f)
            w.release()
            p = Pipeline(capture=["--source", str(clip)], display=["--output", str(Path(d) / "o.avi"),
                                                                   "--stats-out", str(stats)],
                         n_classify=n_classify, n_detect=n_detect, mode="file")
            with p:
                n0, t0 = _first_frames(stats, 3)  # the clock starts once frames flow (not at process start)
                p.wait(timeout=600)
                dt = time.perf_counter() - t0
            s = json.loads(stats.read_text())
            lat = s["latency_ms"].get("capture→display", {})
            return {"fps": (s["frames"] - n0) / dt, "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"), "dropped": 0}
        p = Pipeline(capture=["--source", "demo", "--size", f"{size[0]}x{size[1]}", "--fps", str(fps)],
                     display=["--stats-out", str(stats)], n_classify=n_classify, n_detect=n_detect, mode="live")
        with p:
            _first_frames(stats, 5)
            s0 = json.loads(stats.read_text())
            time.sleep(seconds)
            s1 = json.loads(stats.read_text())
        dt = s1["elapsed_s"] - s0["elapsed_s"]
        lat = s1["latency_ms"].get("capture→display", {})
        return {"fps": (s1["frames"] - s0["frames"]) / dt if dt > 0 else float("nan"), "p50_ms": lat.get("p50"),
                "p99_ms": lat.get("p99"),
                "dropped": s1["counters"].get("source", {}).get("frames_dropped", 0)}


def _first_frames(stats: Path, n: int) -> tuple[int, float]:
    """Wait until the display has shown n frames; returns (frames shown, perf_counter then)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            frames = json.loads(stats.read_text())["frames"]
            if frames >= n:
                return frames, time.perf_counter()
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise RuntimeError("no frames reached the display")


def bench_tutorial_loop(size: tuple[int, int], n: int, model: str | None) -> dict[str, float]:
    """The tutorial's Step 8 per-frame loop, in one process: Haar, one CNN call per face, apply_mask."""
    import torch

    from dogfilter.common.vision.crops import face_crop
    from dogfilter.common.vision.detectors import HaarDetector
    from dogfilter.common.vision.masks import default_masks
    from dogfilter.common.vision.models import EmotionClassifier

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    haar, clf = HaarDetector(), EmotionClassifier(model)
    masks = default_masks()
    table = [masks[c] for c in ("happy", "sad", "surprise")]
    from dogfilter.common.vision.masks import paint

    frames = demo_frames(size, 30)
    t0 = time.perf_counter()
    for i in range(n):
        frame = frames[i % len(frames)].copy()
        for f in haar.detect(frame):
            k = int(clf.predict_proba(face_crop(frame, f.box)[None]).argmax())
            paint(frame, f.box, table[min(k, 2)])
    return {"fps": n / (time.perf_counter() - t0)}


# ------------------------------------------------------------------------------------------------ one-shot


def bench_oneshot(runs: int) -> dict[str, dict[str, float]]:
    """``dogfilter image`` and a short ``dogfilter file``, timed from outside as a user runs them (whole command,
    process start to exit), in one process (--inline yes, the default for these) and as five (--inline no)."""
    import matplotlib.cbook

    photo = str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "clip.avi"
        w = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30, (640, 480))
        for f in demo_frames((640, 480), 60):
            w.write(f)
        w.release()
        jobs = {"image (one photo)": ["image", photo, str(Path(d) / "o.png")],
                "file (60 frames, 640×480)": ["file", str(clip), str(Path(d) / "o.avi")]}
        for name, args in jobs.items():
            for way in ("yes", "no"):
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    r = subprocess.run([sys.executable, "-m", "dogfilter.commands.run", *args, "--inline", way],
                                       capture_output=True, text=True, timeout=300)
                    times.append(time.perf_counter() - t0)
                    if r.returncode != 0:
                        raise RuntimeError(r.stderr.strip()[-300:])
                out[f"{name} inline={way}"] = {"median": statistics.median(times), "min": min(times),
                                               "max": max(times)}
    return out


# ------------------------------------------------------------------------------------------------ main


def repeat(fn: Callable[[], dict], r: int) -> list[dict]:
    return [fn() for _ in range(r)]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dogfilter-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny counts (smoke test): one run per figure, 640×480 only")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per figure, which is their median (default: %(default)s; 1 with --quick)")
    ap.add_argument("--only", default="stages,transport,classifier,e2e,tutorial,oneshot,streams,faults,vcam,faces,dog",
                    help="comma-separated sections to run (default: %(default)s; also: fleet, hosts in network "
                    "namespaces, which needs root)")
    ap.add_argument("--json", default="bench.json", help="where to write the figures as JSON (default: %(default)s)")
    ap.add_argument("--detector", default=None, metavar="NAME",
                    help="detector for the detect stage: blazeface or haar (default: the service's)")
    return ap


@dataclass
class Run:
    """One benchmark run's settings, and what it has found so far."""

    quick: bool
    repeats: int
    detector: str
    out: dict[str, Any]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [(640, 480)] if self.quick else [(640, 480), (1280, 720)]

    @property
    def msgs(self) -> tuple[int, int]:
        """(messages measured, warm-up) per stage."""
        return (10, 2) if self.quick else (120, 10)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table under a heading."""
    return [f"## {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def section_stages(run: Run) -> list[str]:
    log("stages in isolation…")
    n, warm, r, det = *run.msgs, run.repeats, run.detector
    rows = []
    for size in run.sizes:
        tag = f"{size[0]}×{size[1]}"
        runs = {
            # past the demo's first loop (LOOP_SECONDS at 30 frames/s), which is painted once and then kept: the
            # row is capture's steady state, as the other rows are their stage's
            f"capture (demo source) {tag}": repeat(
                partial(bench_capture, n, warm if run.quick else max(warm, int(LOOP_SECONDS * 30) + 100), size), r),
            f"detect ({det or 'default'}) {tag}": repeat(
                partial(bench_detect, n // 2 if not run.quick else n, warm, size, det), r),
            f"composite (3 faces) {tag}": repeat(partial(bench_composite, n, warm, size), r),
            f"display (recording) {tag}": repeat(partial(bench_display, n, warm, size), r),
        }
        if size == run.sizes[0]:
            runs["classify (3 faces/job)"] = repeat(lambda: bench_classify(n, warm, 3, None), r)
        rows += list(runs.items())
    run.out["stages"] = dict(rows)
    return table("Each stage alone (real process, real sockets; median (min–max))",
                 ["stage", "msgs/s", "p50 ms", "p95 ms", "p99 ms", "CPU %", "RSS MiB"],
                 [[k, fmt(med(v, "msgs_per_s")), fmt(med(v, "p50_ms"), 2), fmt(med(v, "p95_ms"), 2),
                   fmt(med(v, "p99_ms"), 2), fmt(med(v, "cpu_pct"), 0), fmt(med(v, "rss_mb"), 0)] for k, v in rows])


def section_transport(run: Run) -> list[str]:
    log("transport…")
    tr, rows = {}, []
    for size in [(640, 480), (1280, 720)]:
        for kind in ("ipc", "tcp"):
            v = repeat(partial(bench_transport, size, 50 if run.quick else 400, kind), run.repeats)
            tr[f"{size[0]}x{size[1]} {kind}"] = v
            shared = "shm_per_s" in v[0]
            rows.append([f"{size[0]}×{size[1]}", kind, fmt(med(v, "wire_per_s"), 0), fmt(med(v, "raw_per_s"), 0),
                         fmt(med(v, "ratio"), 2), fmt(med(v, "wire_p50_ms"), 3), fmt(med(v, "raw_p50_ms"), 3),
                         fmt(med(v, "wire_cpu_us"), 0), *(fmt(med(v, f"{k}_{m}"), d) if shared else "–"
                                                          for k in ("shm", "shm_copy")
                                                          for m, d in (("per_s", 0), ("cpu_us", 0)))])
    run.out["transport"] = tr
    lines = table("Transport: one hop, product wire vs raw pyzmq vs shared memory (same run; CPU: both ends and "
                  "libzmq's threads, µs per message)",
                  ["frame", "link", "wire msgs/s", "raw msgs/s", "wire/raw", "wire p50 ms", "raw p50 ms", "wire CPU",
                   "shm msgs/s", "shm CPU", "shm+copy msgs/s", "shm+copy CPU"], rows)
    costs = repeat(lambda: bench_wire(2000 if run.quick else 20000), run.repeats)
    kinds = list(costs[0])
    run.out["wire_cost"] = {k: [c[k] for c in costs] for k in kinds}
    return lines + table("Wire: µs per message, in process (decode: every check, pixels not copied; median)",
                         ["message", "header bytes", "encode µs", "decode µs"],
                         [[k, str(costs[0][k]["header_bytes"]), fmt(med([c[k] for c in costs], "encode_us"), 1),
                           fmt(med([c[k] for c in costs], "decode_us"), 1)] for k in kinds])


def section_classifier(run: Run) -> list[str]:
    log("classifier…")
    import torch

    from dogfilter.common import ASSETS
    from dogfilter.common.vision.classifier import DEFAULT_MODEL

    models = {p.stem: str(p) for p in sorted((ASSETS / "models").glob("*.pth")) if "blazeface" not in p.stem}
    setups = [("cpu", "torch"), *([("cuda", "torch")] if torch.cuda.is_available() else [])]
    cl: dict[str, Any] = {}
    rows = []
    for name, path in models.items():
        has_export = Path(path).with_suffix(".onnx").is_file()
        for dev, engine in setups + ([("cpu", "onnxruntime")] if has_export else []):
            cells = []
            for b in (1, 8, 64, 256):
                v = repeat(partial(bench_classifier, path, b, 0.2 if run.quick else 1.0, dev, engine), run.repeats)
                cl[f"{name} {dev} {engine} {b}"] = v
                cells.append(fmt(med(v, "faces_per_s"), 0))
            ms = med(cl[f"{name} {dev} {engine} 64"], "ms_per_face")
            star = " (default)" if Path(path) == DEFAULT_MODEL else ""
            rows.append([f"{name}{star}", f"{dev}, {engine}", *cells, f"{ms['median']:.4f}"])
    run.out["classifier"] = cl
    return table("Classifier: faces/s by batch size (1 CPU thread; CUDA when present)",
                 ["model", "device, engine", *(f"batch {b}" for b in (1, 8, 64, 256)), "ms/face @64"], rows)


def section_e2e(run: Run) -> list[str]:
    log("end to end…")
    secs, sizes = (3 if run.quick else 8), run.sizes
    configs = [("live", s, 1, 1, 30.0) for s in sizes] + [("live", s, 1, 2, 1000.0) for s in sizes]
    configs += [("file", s, 1, 2, 0) for s in sizes]
    if not run.quick:
        configs += [("live", (640, 480), c, 2, 1000.0) for c in (2, 3)]
    e2e: dict[str, Any] = {}
    rows = []
    for mode, size, ncl, ndet, fps in configs:
        key = f"{mode} {size[0]}x{size[1]} src{fps:g} det{ndet} cls{ncl}"
        v = repeat(partial(bench_e2e, mode, size, secs, ncl, ndet, fps, 120 if run.quick else 300),
                   run.repeats)  # >1 s of file mode
        e2e[key] = v
        rows.append([mode, f"{size[0]}×{size[1]}", "as fast as read" if mode == "file" else f"{fps:g}", str(ndet),
                     str(ncl), fmt(med(v, "fps")), fmt(med(v, "p50_ms")), fmt(med(v, "p99_ms"))])
    run.out["e2e"] = e2e
    return table("End to end (demo source, 3 faces a frame; median (min–max))",
                 ["mode", "size", "source fps", "detect", "classify", "frames/s", "capture→display p50 ms",
                  "p99 ms"], rows)


def section_tutorial(run: Run) -> list[str]:
    log("tutorial loop…")
    tut, rows, e2e = {}, [], run.out.get("e2e", {})
    for size in run.sizes:
        v = repeat(partial(bench_tutorial_loop, size, 10 if run.quick else 60, None), run.repeats)
        tut[f"{size[0]}x{size[1]}"] = v
        key = f"live {size[0]}x{size[1]} src1000 det2 cls1"
        t = med(v, "fps")
        pipe = med(e2e[key], "fps") if key in e2e else None
        rows.append([f"{size[0]}×{size[1]}", fmt(t), fmt(pipe) if pipe else "–",
                     f"{pipe['median'] / t['median']:.2f}" if pipe else "–"])
    run.out["tutorial"] = tut
    return table("The tutorial's single loop (Haar + CNN per face + mask, one process) vs the pipeline",
                 ["size", "tutorial loop frames/s", "pipeline frames/s (live, unpaced, 2 detect)", "ratio"], rows)


def section_oneshot(run: Run) -> list[str]:
    log("one-shot commands…")
    n = 3 if run.quick else 7
    one = run.out["oneshot"] = bench_oneshot(n)
    rows = []
    for name in dict.fromkeys(k.rsplit(" inline=", 1)[0] for k in one):
        a1, a5 = one[f"{name} inline=yes"], one[f"{name} inline=no"]
        rows.append([f"dogfilter {name}", fmt(a1, 2), fmt(a5, 2), f"{a5['median'] / a1['median']:.1f}×"])
    return table(f"One-shot commands, timed from outside (whole command; median (min–max) of {n} runs)",
                 ["command", "one process (--inline yes) s", "five processes (--inline no) s", "ratio"], rows)


def section_of(name: str) -> Callable[[Run], list[str]]:
    """The section whose tables a module of its own makes (``bench_NAME.run(quick, log)``, imported only when it
    runs): its lines, and its figures under ``name`` in the JSON."""

    def section(run: Run) -> list[str]:
        module = importlib.import_module(f"dogfilter.commands.bench_{name}")
        lines, run.out[name] = module.run(run.quick, log)
        return lines

    return section


SECTIONS = {"stages": section_stages, "transport": section_transport, "classifier": section_classifier,
            "e2e": section_e2e, "tutorial": section_tutorial, "oneshot": section_oneshot,
            **{name: section_of(name) for name in ("streams", "faults", "fleet", "vcam", "faces", "dog")}}


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped from outside: its pipelines stop too (finally blocks run)
        signal.signal(sig, interrupt)
    try:
        return bench(a)
    except KeyboardInterrupt:
        log("interrupted: its pipelines and stages are stopped; nothing written")
        return 130


def bench(a: argparse.Namespace) -> int:
    only = [s for s in SECTIONS if s in set(a.only.split(","))]
    run = Run(a.quick, 1 if a.quick else a.repeats, a.detector or "", {"machine": machine(), "quick": a.quick})
    run.out["repeats"] = run.repeats
    lines = [f"# dogfilter-bench{' --quick' if a.quick else ''}", "",
             "machine: " + ", ".join(f"{k} {v}" for k, v in run.out["machine"].items()), ""]
    for name in only:
        lines += SECTIONS[name](run)
    print("\n".join(lines))
    Path(a.json).write_text(json.dumps(run.out, indent=1, default=float))
    log(f"figures written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
