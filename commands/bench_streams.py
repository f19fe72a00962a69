"""The streams benchmark (``dogfilter-bench --only streams``): N demo streams through one pipeline, against N separate
pipelines, in the same run; and the browser camera's round trip.

Per configuration: each stream's delivered frame rate as a share of its source's (the lowest and the highest over
the streams: fairness is their ratio), capture→display latency p50/p99 (the worst stream's), and the whole
configuration's memory (RSS of every process) and CPU (cores busy).
"""

from __future__ import annotations

import socket
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dogfilter.commands.bench import proc_usage
from dogfilter.commands.run import Pipeline
from dogfilter.common.stage import NAMES
from dogfilter.services.display import read_stats


def _read(path: Path) -> dict[str, Any]:
    return read_stats(path, {"streams": {}})


def run_config(n: int, together: bool, size: tuple[int, int], fps: float, seconds: float,
               d: Path) -> dict[str, Any]:
    stats = [d / f"s{i}.json" for i in range(1 if together else n)]
    common = {"size": f"{size[0]}x{size[1]}", "fps": fps}
    if together:
        pipes = [Pipeline(mode="live", n_detect=2 if n > 1 else 1,
                          values={**common, "source": ["demo"] * n, "stats_out": str(stats[0])})]
    else:
        pipes = [Pipeline(mode="live", values={**common, "source": ["demo"], "stats_out": str(s)}) for s in stats]
    try:
        for p in pipes:
            p.start()
        deadline = time.monotonic() + 120
        while sum(len(_read(s).get("streams", {})) for s in stats) < n or any(
                v["frames"] < 10 for s in stats for v in _read(s)["streams"].values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the streams did not start")
            time.sleep(0.2)
        time.sleep(1.0)  # settle
        procs = [(name.split(".")[0], pr.pid) for p in pipes for name, pr in p.procs.items()]
        pids = [pid for _, pid in procs]
        cpu0 = [proc_usage(pid)[0] for pid in pids]
        s0 = [_read(s) for s in stats]
        t0 = time.monotonic()
        time.sleep(seconds)
        s1 = [_read(s) for s in stats]
        dt = time.monotonic() - t0
        usage = [proc_usage(pid) for pid in pids]
    finally:
        for p in pipes:
            p.stop()
    rates, p50, p99, delivered = [], [], [], 0.0
    for a, b in zip(s0, s1, strict=True):
        span = b["elapsed_s"] - a["elapsed_s"]  # the display's own clock, when it wrote each file
        for name, v in b["streams"].items():
            rates.append((v["frames"] - a["streams"][name]["frames"]) / span / fps)
            delivered += (v["frames"] - a["streams"][name]["frames"]) * dt / span
            lat = v["latency_ms"].get("capture→display", {})
            p50.append(lat.get("p50") or float("nan"))
            p99.append(lat.get("p99") or float("nan"))
    stage_ms: dict[str, float] = {}  # CPU per delivered frame, by stage: which one holds the pipeline back
    for (stage, _), (c1, _), c0 in zip(procs, usage, cpu0, strict=True):
        stage_ms[stage] = stage_ms.get(stage, 0.0) + 1000 * (c1 - c0) / max(delivered, 1.0)
    return {"streams": n, "together": together, "min_share": min(rates), "max_share": max(rates),
            "fairness": max(rates) / min(rates) if min(rates) > 0 else float("inf"),
            "p50_ms": max(p50), "p99_ms": max(p99), "rss_mb": sum(r for _, r in usage),
            "cores": (sum(c for c, _ in usage) - sum(cpu0)) / dt, "processes": len(pids), "stage_ms": stage_ms}


def browser_round_trip(seconds: float, d: Path) -> dict[str, float]:
    """A browser tab played by a WebSocket client beside one demo stream: the round trip of its frames."""
    import cv2
    from websockets.sync.client import connect

    from dogfilter.common.scene import DemoScene

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = Pipeline(mode="live", values={"source": ["demo"], "size": "640x480", "fps": 30.0, "web_port": port,
                                      "stats_out": str(d / "web.json")})
    scene = DemoScene(640, 480)
    frames = [cv2.imencode(".jpg", scene.render(i / 30), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
              for i in range(60)]
    rtts: list[float] = []
    p.start()
    try:
        time.sleep(3)
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=20) as ws:
            ws.recv(timeout=20)
            t_end, i = time.monotonic() + seconds, 0
            while time.monotonic() < t_end:  # one frame at a time, as the page does at its pace (30/s)
                t = time.perf_counter() * 1000
                ws.send(struct.pack(">d", t) + frames[i % len(frames)])
                i += 1
                try:
                    data = ws.recv(timeout=2)
                    assert isinstance(data, bytes)  # the page's reply: a binary message
                    rtts.append(time.perf_counter() * 1000 - struct.unpack(">d", data[:8])[0])
                except TimeoutError:
                    pass
                time.sleep(max(0.0, 1 / 30 - (time.perf_counter() * 1000 - t) / 1000))
    finally:
        p.stop()
    return {"frames": len(rtts), "p50_ms": float(np.percentile(rtts, 50)), "p95_ms": float(np.percentile(rtts, 95))}


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    counts = (1, 2, 4) if quick else (1, 2, 4, 6, 8)
    configs = [((640, 480), n) for n in counts] + ([] if quick else [((1280, 720), n) for n in (1, 2, 4)])
    secs = 3.0 if quick else 8.0
    out: dict[str, Any] = {}
    lines = ["## Streams: N demo streams at 30 frames/s through one pipeline vs N separate pipelines (same run)", "",
             "| size | streams | pipelines | delivered, lowest stream | highest | fairness | p50 ms (worst "
             "stream) | p99 ms | processes | RSS MiB | cores busy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (size, n) in enumerate(configs):
            for together in (True, False):
                log(f"streams: {n} at {size[0]}×{size[1]}, {'one pipeline' if together else 'separate'}…")
                d = Path(tmp) / f"{i}{together}"
                d.mkdir()
                r = run_config(n, together, size, 30.0, secs, d)
                out[f"{size[0]}x{size[1]} {n} {'one' if together else 'separate'}"] = r
                lines.append(f"| {size[0]}×{size[1]} | {n} | {'1' if together else str(n)} | "
                             f"{100 * r['min_share']:.0f} % | {100 * r['max_share']:.0f} % | {r['fairness']:.2f} | "
                             f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['processes']} | {r['rss_mb']:.0f} | "
                             f"{r['cores']:.2f} |")
        stages = NAMES
        lines += ["", "CPU per delivered frame, ms, by stage (one pipeline; detect: all its workers):", "",
                  "| size | streams | " + " | ".join(stages) + " | all |", "|---|---|" + "---|" * (len(stages) + 1)]
        for key, r in out.items():
            if r["together"]:
                size_text, n_text = key.split()[:2]
                lines.append(f"| {size_text.replace('x', '×')} | {n_text} | " + " | ".join(
                    f"{r['stage_ms'].get(st, 0.0):.2f}" for st in stages) + f" | {sum(r['stage_ms'].values()):.2f} |")
        log("streams: the browser camera's round trip…")
        d = Path(tmp) / "web"
        d.mkdir()
        web = browser_round_trip(3.0 if quick else 10.0, d)
    out["browser"] = web
    lines += ["", "Browser camera (a tab played by a WebSocket client on loopback, 640×480 JPEG at 30 frames/s, "
              f"beside one demo stream): round trip p50 {web['p50_ms']:.1f} ms, p95 {web['p95_ms']:.1f} ms over "
              f"{web['frames']} frames.", ""]
    return lines, out
