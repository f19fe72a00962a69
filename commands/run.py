"""dogfilter: run the whole pipeline (five processes over ZeroMQ) without honcho.

    dogfilter file  IN.mp4 OUT.mp4   every input frame, in order, filtered
    dogfilter image IN.png OUT.png   one image through the same stages (--render boxes: the tutorial's Step 2)
    dogfilter live  [--source demo] [--http 8080] [--output rec.mp4]
    dogfilter keys  DIR              CURVE key pairs for an encrypted remote classify link

Each run gets private ipc:// endpoints, so runs never collide; the first stage to fail stops the others and its
one-line error is shown.  ``honcho start`` (Procfile) runs the same services on the TCP endpoints of ``.env``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("display", "composite", "classify", "detect", "capture")  # start sinks first


@dataclass
class Pipeline:
    """The five services as child processes on private endpoints."""

    capture: list[str] = field(default_factory=list)
    detect: list[str] = field(default_factory=list)
    classify: list[str] = field(default_factory=list)
    composite: list[str] = field(default_factory=list)
    display: list[str] = field(default_factory=list)
    n_detect: int = 1
    n_classify: int = 1
    mode: str = "file"
    env: dict[str, str] = field(default_factory=dict)
    tcp_classify: str | None = None  # expose the classify endpoint on TCP (remote workers, tests)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dogfilter-"))
        self.endpoints = {name: f"ipc://{self.dir}/{name}" for name in ("frames", "detections", "classify", "display")}
        if self.tcp_classify:
            self.endpoints["classify"] = self.tcp_classify

    def child_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOGFILTER_")}
        env.update({f"DOGFILTER_{k.upper()}_ADDR": v for k, v in self.endpoints.items()})
        env.update({"DOGFILTER_MODE": self.mode, "PYTHONUNBUFFERED": "1", "HONCHO_PROCESS_NAME": name})
        env.setdefault("OMP_NUM_THREADS", "1")
        env.update(self.env)
        return env

    def start_one(self, stage: str, name: str, args: list[str]) -> subprocess.Popen:
        log = self.dir / f"{name}.log"
        self.logs[name] = log
        root = Path(__file__).resolve().parent.parent
        p = subprocess.Popen([sys.executable, "-m", f"dogfilter.services.{stage}", *args], cwd=root,
                             env=self.child_env(name), stdout=subprocess.DEVNULL, stderr=log.open("wb"),
                             start_new_session=True)
        self.procs[name] = p
        return p

    def start(self) -> Pipeline:
        for stage in STAGES:
            n = {"detect": self.n_detect, "classify": self.n_classify}.get(stage, 1)
            for i in range(1, n + 1):
                self.start_one(stage, f"{stage}.{i}", getattr(self, stage))
        return self

    def failed(self) -> tuple[str, int] | None:
        for name, p in self.procs.items():
            code = p.poll()
            if code not in (None, 0):
                return name, code
        return None

    def last_line(self, name: str) -> str:
        lines = [ln for ln in self.logs[name].read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else f"{name} exited"

    def wait(self, timeout: float | None = None) -> int:
        """Wait for display to finish (end of stream). Returns its exit code, or the first failure's."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            bad = self.failed()
            if bad:
                return bad[1]
            code = self.procs["display.1"].poll()
            if code is not None:
                return code
            if end is not None and time.monotonic() > end:
                raise TimeoutError("pipeline did not finish in time")
            time.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stage_args(a: argparse.Namespace) -> dict[str, list[str]]:
    composite = [f"--mask={m}" for m in a.mask] + (["--debug"] if a.debug else []) + ["--render", a.render]
    classify = (["--model", a.model] if a.model else []) + ["--device", a.device]
    return {"composite": composite, "classify": classify, "detect": ["--detector", a.detector]}


def _run(p: Pipeline, quiet: bool = False) -> int:
    try:
        p.start()
        code = p.wait()
    except KeyboardInterrupt:
        code = 130
    finally:
        bad = p.failed()
        p.stop()
    if bad:
        print(p.last_line(bad[0]), file=sys.stderr)
        return bad[1]
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dogfilter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--detect", type=int, default=1, help="detect processes")
        sp.add_argument("--classify", type=int, default=1, help="classify processes")
        sp.add_argument("--model", help="classifier checkpoint (default: the project's)")
        sp.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        sp.add_argument("--detector", default="blazeface", choices=["blazeface", "haar"],
                       help="face detector (default blazeface; haar: the tutorial's)")
        sp.add_argument("--mask", action="append", default=[], metavar="EMOTION=PATH")
        sp.add_argument("--debug", action="store_true", help="boxes, emotion and probability per face")
        sp.add_argument("--render", choices=["masks", "boxes"], default="masks")
        sp.add_argument("--stats-out", help="write pipeline statistics (JSON) here")

    f = sub.add_parser("file", help="filter a video file: every frame, in order")
    f.add_argument("input")
    f.add_argument("output")
    common(f)
    i = sub.add_parser("image", help="filter one image")
    i.add_argument("input")
    i.add_argument("output")
    common(i)
    lv = sub.add_parser("live", help="live mode (newest frame wins)")
    lv.add_argument("--source", default="demo")
    lv.add_argument("--fps", type=float, default=0)
    lv.add_argument("--size", default="640x480")
    lv.add_argument("--http", type=int, default=8080)
    lv.add_argument("--output")
    lv.add_argument("--frames", type=int, default=0)
    common(lv)
    k = sub.add_parser("keys", help="create CURVE keys: server.key(_secret), client.key(_secret), clients/")
    k.add_argument("dir")
    a = ap.parse_args(argv)

    if a.cmd == "keys":
        import shutil

        import zmq.auth

        d = Path(a.dir)
        (d / "clients").mkdir(parents=True, exist_ok=True)
        zmq.auth.create_certificates(str(d), "server")
        zmq.auth.create_certificates(str(d), "client")
        shutil.copy(d / "client.key", d / "clients" / "client.key")
        print(f"keys in {d}: give server.key + client.key_secret (+ client.key) to workers, keep server.key_secret")
        return 0

    args = _stage_args(a)
    stats = ["--stats-out", a.stats_out] if a.stats_out else []
    if a.cmd in ("file", "image"):
        p = Pipeline(capture=["--source", a.input], display=["--output", a.output, *stats],
                     n_detect=a.detect, n_classify=a.classify, mode="file", **args)
    else:
        display = ["--http", str(a.http)] + (["--output", a.output] if a.output else []) + stats
        capture = ["--source", a.source, "--size", a.size] + (["--fps", str(a.fps)] if a.fps else [])
        capture += ["--frames", str(a.frames)] if a.frames else []
        p = Pipeline(capture=capture, display=display, n_detect=a.detect, n_classify=a.classify, mode="live", **args)
        print(f"browser view: http://127.0.0.1:{a.http}/  (Ctrl-C stops)", file=sys.stderr)
    code = _run(p)
    if code == 0 and a.cmd != "live":
        print(a.output)
    return code


if __name__ == "__main__":
    sys.exit(main())
