"""The fleet benchmark (``dogfilter-bench --only fleet``): K pipeline hosts × M classify workers on separate hosts
(Linux network namespaces, commands/netns.py; CURVE on every link; needs root, else the section says why not).

Each pipeline host runs one demo stream (capture + detect + composite + display, no classify worker of its own);
the workers run on a "GPU box" (here: CPU, one thread each) and find the hosts by one name.  The composites ask
about every face of every frame (``--reclassify-ms 0``: the heaviest load a stream puts on classify).  Per
configuration: faces/s each worker classified, its batch fill (faces per forward pass), its CPU and so faces per
CPU-second (what one worker could do flat out), each host's delivered frame rate and classify jobs (the lowest and
the highest host: fairness), and faces painted late.  Apart, the latency the network hop adds to classification:
a job's round trip to a worker on the same host against one to a worker on the GPU box.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from dogfilter.commands.bench import proc_usage
from dogfilter.commands.netns import Fleet, Net, jobs_by, read_json, unavailable
from dogfilter.common.stage import NAMES

FPS = 10.0
SIZE = "320x240"


def _counts(text: str) -> dict[str, int]:
    """A worker's last logged counters (``faces=... batches=...``)."""
    lines = [ln for ln in text.splitlines() if " batches=" in ln]
    if not lines:
        return {}
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


def run_config(k: int, m: int, seconds: float, log: Callable[[str], None]) -> dict[str, Any]:
    with Net() as net:
        hosts = [f"h{i + 1}" for i in range(k)]
        for i, h in enumerate(hosts):
            net.add(h, 11 + i)
        net.add("gpu", 100)
        fleet = Fleet(net, size=SIZE, fps=FPS, resolve_s=1.0, extra={"composite": ["--reclassify-ms", "0"]})
        net.hosts("gpu", {"pipelines": [net.machines[h] for h in hosts]})
        for h in hosts:
            fleet.pipeline_host(h)
        workers = [f"w{j + 1}" for j in range(m)]
        for w in workers:
            fleet.classify_worker("gpu", w)
        deadline = time.monotonic() + 120
        while not all(jobs_by(read_json(fleet.hosts[h].stats), w) > 5 for h in hosts for w in workers):
            if time.monotonic() > deadline:
                raise RuntimeError("the fleet did not start: " + "; ".join(
                    f"{n}: {p.text().strip().splitlines()[-1:]}" for n, p in net.procs.items()))
            time.sleep(0.2)
        time.sleep(2.0)  # settle
        s0 = {h: read_json(fleet.hosts[h].stats) for h in hosts}
        cpu0 = {w: proc_usage(net.procs[w].popen.pid)[0] for w in workers}
        host_procs = {n: net.procs[n].popen.pid for h in hosts for n in fleet.hosts[h].procs}
        hcpu0 = {n: proc_usage(pid)[0] for n, pid in host_procs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        s1 = {h: read_json(fleet.hosts[h].stats) for h in hosts}
        dt = time.monotonic() - t0
        cpu1 = {w: proc_usage(net.procs[w].popen.pid) for w in workers}
        hcpu = {n: proc_usage(pid)[0] - hcpu0[n] for n, pid in host_procs.items()}
        logs = {w: net.procs[w].text() for w in workers}
    faces_per_job = {h: s1[h]["faces"] / max(1, s1[h]["frames"]) for h in hosts}  # every face asked every frame
    span = {h: max(1e-3, s1[h]["elapsed_s"] - s0[h]["elapsed_s"]) for h in hosts}
    fps = {h: (s1[h]["frames"] - s0[h]["frames"]) / span[h] for h in hosts}
    jobs = {h: sum(s1[h]["classify_workers"].values()) - sum(s0[h]["classify_workers"].values()) for h in hosts}
    per_worker: dict[str, dict[str, float]] = {}
    for w in workers:
        faces = sum((jobs_by(s1[h], w) - jobs_by(s0[h], w)) * faces_per_job[h] for h in hosts)
        c = _counts(logs[w])
        cores = (cpu1[w][0] - cpu0[w]) / dt
        per_worker[w] = {"faces_per_s": faces / dt, "batch_fill": c.get("faces", 0) / max(1, c.get("batches", 0)),
                         "cores": cores, "faces_per_cpu_s": faces / dt / cores if cores > 0 else float("nan"),
                         "rss_mb": cpu1[w][1]}
    late = {h: s1[h]["counters"]["composite"].get("faces_late", 0) - s0[h]["counters"]["composite"].get(
        "faces_late", 0) for h in hosts}
    shown = {h: s1[h]["faces"] - s0[h]["faces"] for h in hosts}
    stage_ms: dict[str, float] = {}  # a pipeline host's CPU per delivered frame, by stage
    for n, spent in hcpu.items():
        stage = n.split(".", 1)[1]
        stage_ms[stage] = stage_ms.get(stage, 0.0) + 1000 * spent / max(1.0, sum(fps.values()) * dt)
    lat = [s1[h]["latency_ms"].get("capture→display", {}).get("p50") or float("nan") for h in hosts]
    return {"hosts": k, "workers": m, "per_worker": per_worker, "fps": fps, "jobs_per_s": {h: jobs[h] / dt
                                                                                          for h in hosts},
            "fairness": min(fps.values()) / max(fps.values()) if max(fps.values()) > 0 else float("nan"),
            "late_share": sum(late.values()) / max(1, sum(shown.values())), "p50_ms": max(lat),
            "host_ms_per_frame": stage_ms}


def hop_latency(n: int, log: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """A crops job's round trip (3 faces, one job at a time) from a dispatcher on h1 to a worker on h1 itself, and
    to one on the GPU box: what the network hop adds."""
    out = {}
    with Net() as net:
        net.add("h1", 11)
        net.add("gpu", 100)
        fleet = Fleet(net)
        bind = f"tcp://{net.machines['h1']}:5560"
        for where in ("h1", "gpu"):
            log(f"fleet: a job's round trip to a worker on {'the same host' if where == 'h1' else 'the GPU box'}…")
            probe = net.run("h1", f"probe-{where}", [sys.executable, "-m", "dogfilter.commands.bench_fleet", "probe",
                                                      bind, str(fleet.keys), str(n)])
            w = fleet.classify_worker(where, f"worker-{where}", bind)
            try:
                probe.popen.wait(120)
            finally:
                net.kill(w.name)
            text = probe.text().strip().splitlines()
            try:
                out["same host" if where == "h1" else "GPU box"] = json.loads(text[-1])
            except (IndexError, ValueError):
                raise RuntimeError(f"the probe failed: {text[-3:]}") from None
    return out


def probe(bind: str, curve_dir: str, n: int) -> dict[str, float]:
    """Inside a namespace: a dispatcher (composite's part) that hands one crops job at a time to the first worker
    that joins, and times each round trip."""
    from dogfilter.common.transport.metrics import Counters
    from dogfilter.common.transport.protocol import Dispatcher, Job
    from dogfilter.common.transport.sockets import Links
    from dogfilter.common.transport.wire import Face, Message

    links = Links(curve_dir)
    try:
        router = links.bind(zmq.ROUTER, bind, "classify", hwm=1000)
        pool = Dispatcher(router, "probe", Counters("probe", logging.getLogger("probe")), max_window=1,
                          job_timeout_s=30, replies=("emotions",))
        crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
        deadline = time.monotonic() + 90
        while not pool.peers:
            router.poll(100)
            pool.receive()
            if time.monotonic() > deadline:
                raise RuntimeError("no worker joined")
        rtts: list[float] = []
        for i in range(n + 20):
            t = time.perf_counter()
            if not pool.submit(Job(Message("crops", "probe", i, 1, faces=[Face(box=(0, 0, 48, 48))] * 3,
                                           crops=crops))):
                raise RuntimeError("the worker took no job")
            while not pool.receive():
                router.poll(100)
                if time.perf_counter() - t > 10:
                    raise RuntimeError("no reply in 10 s")
            if i >= 20:  # after a warm-up
                rtts.append(1000 * (time.perf_counter() - t))
        return {"p50_ms": statistics.median(rtts), "p95_ms": float(np.percentile(rtts, 95)), "jobs": len(rtts)}
    finally:
        links.close()


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    why = unavailable()
    title = "## Fleet: K pipeline hosts × M classify workers on separate hosts (network namespaces, CURVE)"
    if why is not None:
        return [title, "", f"skipped: {why}", ""], {"skipped": why}
    configs = [(2, 1)] if quick else [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2)]
    secs = 5.0 if quick else 12.0
    out: dict[str, Any] = {}
    lines = [title, "", f"One demo stream a host ({SIZE}, {FPS:g} frames/s, 3 faces; every face classified every "
             "frame: --reclassify-ms 0); workers on one CPU thread each.", "",
             "| hosts | workers | faces/s per worker | batch fill (faces/pass) | worker cores busy | faces per "
             "CPU-second | host frames/s lowest–highest | fairness | jobs/s per host lowest–highest | faces late | "
             "capture→display p50 ms (worst host) |", "|---" * 11 + "|"]
    for k, m in configs:
        log(f"fleet: {k} hosts × {m} workers…")
        r = run_config(k, m, secs, log)
        out[f"{k}x{m}"] = r
        pw = list(r["per_worker"].values())

        def each(key: str, digits: int, pw: list[dict[str, float]] = pw) -> str:
            return " / ".join(f"{w[key]:.{digits}f}" for w in pw)

        lines.append(
            f"| {k} | {m} | {each('faces_per_s', 0)} | {each('batch_fill', 1)} | {each('cores', 2)} | "
            f"{each('faces_per_cpu_s', 0)} | "
            f"{min(r['fps'].values()):.1f}–{max(r['fps'].values()):.1f} | {r['fairness']:.2f} | "
            f"{min(r['jobs_per_s'].values()):.1f}–{max(r['jobs_per_s'].values()):.1f} | "
            f"{100 * r['late_share']:.0f} % | {r['p50_ms']:.0f} |")
    stages = tuple(n for n in NAMES if n != "classify")  # classify is remote
    lines += ["", "A pipeline host's CPU per delivered frame, ms, by stage (its processes; classify is remote):", "",
              "| hosts | workers | " + " | ".join(stages) + " | all |", "|---|---|" + "---|" * (len(stages) + 1)]
    for r in out.values():
        ms = r["host_ms_per_frame"]
        lines.append(f"| {r['hosts']} | {r['workers']} | " + " | ".join(f"{ms.get(st, 0.0):.2f}" for st in stages)
                     + f" | {sum(ms.values()):.2f} |")
    hop = out["hop"] = hop_latency(50 if quick else 300, log)
    same, remote = hop["same host"], hop["GPU box"]
    lines += ["", f"The network hop (veth between namespaces, CURVE): a 3-face job's round trip p50 "
              f"{same['p50_ms']:.2f} ms to a worker on the same host, {remote['p50_ms']:.2f} ms to the GPU box "
              f"(+{remote['p50_ms'] - same['p50_ms']:.2f} ms; p95 {same['p95_ms']:.2f} / {remote['p95_ms']:.2f} ms, "
              f"{remote['jobs']} jobs each). A real network adds its own round trip on top.", ""]
    return lines, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_fleet")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe", help="(inside a namespace) time crops jobs' round trips to one worker")
    p.add_argument("bind")
    p.add_argument("curve_dir")
    p.add_argument("n", type=int)
    a = ap.parse_args(argv)
    print(json.dumps(probe(a.bind, a.curve_dir, a.n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
