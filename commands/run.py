"""dogfilter: run the whole pipeline (five processes over ZeroMQ) without honcho.

    dogfilter file  IN OUT [IN OUT ...]   every frame of each input, in order, filtered (one stream per input)
    dogfilter image IN OUT [IN OUT ...]   pictures through the same stages (--render boxes: the tutorial's Step 2)
    dogfilter live  [--source demo] [--http-port 8080] [--output rec.mp4]
    dogfilter keys  DIR                   CURVE key pairs for links to other machines (secrets 0600)
    dogfilter options                     every option of every stage, as a commented .env

Each run gets private ipc:// endpoints and a fresh pipeline secret in a folder only its user can open (removed at
exit), so runs never collide.  The stages die with the launcher, even on SIGKILL (a parent-death signal, and the
janitor, commands/janitor.py, which also removes the folder); the folders of killed launchers are cleaned at the next
start.  A detect or classify process that crashes is started again (with back-off) and
the frames it held are sent again; any other stage that dies stops the run with one line saying which and why.
SIGINT, SIGTERM and SIGHUP stop every stage and remove the folder.  Exit codes: 0 done; 2 a user's error (the
stage's one line); 3 frames were lost; another stage's failure: its code.
``honcho start`` (Procfile) runs the same services on the ipc:// endpoints of ``.env``, in the user's private run
folder (common/transport/rundir.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from dogfilter.commands import janitor
from dogfilter.common import children, options, stage
from dogfilter.common.errors import DogfilterError
from dogfilter.common.options import Option, positive
from dogfilter.common.service import interrupt

STARTED = tuple(reversed(stage.STAGES))  # sinks first: a stage's receiver is up before it sends
MAX_BACKOFF_S = 30.0
HEALTHY_S = 60.0  # a worker that ran this long before it died starts its back-off over (1 s)
DISPLAY_STOP_S = 15.0  # how long the display may take to stop (commit a recording) before it is killed
LAUNCHER = (
    Option("inline", "auto", "file and image: run the stages in this one process (auto: for pictures and clips of at "
           "most 150 frames in all, where starting five processes would take longer than the work)",
           choices=("auto", "yes", "no")),
    Option("detect", 1, "detect processes", type=positive(int)),
    Option("classify", 1, "classify processes (0: only workers that join from elsewhere)",
           type=options.non_negative(int)),
)
POSITIONAL = {"source", "output"}  # file and image take these as IN OUT pairs
LIVE_ONLY = {"virtual_camera", "virtual_camera_backend"}  # a camera is live
LIVE_DEFAULTS = {"http_port": 8080, "web_port": 8081}  # dogfilter live: the browser view and the browser camera


def _die_with(parent: int) -> Any:
    """For a stage's fork: SIGTERM when the launcher dies (Linux: PR_SET_PDEATHSIG), so no stage outlives it."""

    def child() -> None:
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return  # not Linux: the janitor still ends the stages
        if os.getppid() != parent:  # the launcher died before the signal was armed
            os._exit(1)

    return child


def launcher_options(exclude: AbstractSet[str] = frozenset()) -> list[tuple[str, list[Option]]]:
    """The options a user sets on ``dogfilter file|image|live``: every stage's options marked ``launcher``."""
    groups, seen = [], set(exclude)
    for name, opts in [*((st.name, st.options()) for st in stage.STAGES), ("pipeline", options.PIPELINE)]:
        mine = [o for o in opts if o.launcher and o.name not in seen]
        seen.update(o.name for o in mine)
        if mine:
            groups.append((name, mine))
    return groups


def to_args(opt: Option, value: Any) -> list[str]:
    if value is None:
        return []
    if opt.kind == "flag":
        return [opt.flag if value else "--no-" + opt.flag[2:]]
    if opt.kind == "list":
        return [f"{opt.flag}={v}" for v in value]
    return [f"{opt.flag}={value}"]


class Pipeline:
    """The five services as child processes on private endpoints.

    ``values``: option name → value, passed to every stage that declares the option; ``extra``: more arguments per
    stage (tests and benchmarks).
    """

    def __init__(self, mode: str = "file", n_detect: int = 1, n_classify: int = 1,
                 values: dict[str, Any] | None = None, tcp_classify: str | None = None, restart: bool = True,
                 env: dict[str, str] | None = None, **extra: list[str]) -> None:
        self.mode, self.n_detect, self.n_classify, self.restart = mode, n_detect, n_classify, restart
        self.values = dict(values or {})
        self.extra = {name: list(extra.get(name, [])) for name in stage.NAMES}
        self.env = dict(env or {})
        janitor.clean_stale()  # the folders (and stages) of launchers that were killed with their janitors
        self.dir = Path(tempfile.mkdtemp(prefix="dogfilter-"))  # 0700: only this user can connect or read
        (self.dir / janitor.MARKER).write_text(f"{os.getpid()} {janitor.start_time(os.getpid())}\n")
        # the janitor ends the stages and removes this folder when we die, however we die (SIGKILL too)
        self.janitor = subprocess.Popen([sys.executable, "-m", "dogfilter.commands.janitor", str(self.dir)],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
        from dogfilter.common.transport.seal import create_secret

        self.secret = create_secret(self.dir / "secret")  # fresh per run: this run's stages only
        self.endpoints = {name: f"ipc://{self.dir}/{name}" for name in options.LINKS}
        if tcp_classify:
            self.endpoints["classify"] = tcp_classify
        self.procs: dict[str, subprocess.Popen] = {}
        self.args: dict[str, tuple[str, list[str]]] = {}
        self.logs: dict[str, Path] = {}
        self.started: dict[str, float] = {}  # name → when its process started
        self.restarts: dict[str, tuple[int, float]] = {}  # name → (restarts, when the next may happen)
        self.events: list[str] = []

    def stage_args(self, name: str) -> list[str]:
        values = {**self.values, "mode": self.mode, "secret_file": str(self.secret), "run_dir": str(self.dir),
                  **{f"{k}_addr": v for k, v in self.endpoints.items()}}
        declared = {o.name: o for _, group in stage.stage(name).groups() for o in group}
        return [a for opt, v in values.items() if opt in declared for a in to_args(declared[opt], v)]

    def start_one(self, stage_name: str, name: str, args: list[str] | None = None) -> subprocess.Popen:
        """Start one process of a stage (``name``: e.g. detect.2; its log is ``name``.log in the run folder)."""
        log = self.dir / f"{name}.log"
        self.logs[name] = log
        argv = [*self.stage_args(stage_name), *self.extra[stage_name], *(args or [])]
        self.args[name] = (stage_name, list(args or []))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HONCHO_PROCESS_NAME": name, **self.env}
        env.setdefault("OMP_NUM_THREADS", "1")
        with log.open("ab") as err:
            p = subprocess.Popen([sys.executable, "-m", stage.stage(stage_name).module_name, *argv], env=env,
                                 stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                 preexec_fn=_die_with(os.getpid()))
        self.procs[name] = p
        self.started[name] = time.monotonic()
        self._tell_janitor(f"{p.pid}\n")
        return p

    def _tell_janitor(self, line: str | None) -> None:
        """A stage's pid for the janitor; None: we stop cleanly (it finds nothing left and ends)."""
        assert self.janitor.stdin is not None  # started with stdin=PIPE
        try:
            if line is None:
                self.janitor.stdin.close()
                self.janitor.wait(10)
            else:
                self.janitor.stdin.write(line.encode())
                self.janitor.stdin.flush()
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass  # the janitor is gone: the stages' parent-death signal and the next start's clean-up remain

    def start(self) -> Pipeline:
        for st in STARTED:
            n = {"detect": self.n_detect, "classify": self.n_classify}.get(st.name, st.count)
            for i in range(1, n + 1):
                self.start_one(st.name, f"{st.name}.{i}")
        return self

    def why(self, name: str) -> str:
        """Which stage died and why: its exit (or signal) and its last error line."""
        code = self.procs[name].returncode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        lines = [ln.strip() for ln in self.logs[name].read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.search(r"\b(ERROR|CRITICAL|error:)|Error\b|Exception\b", ln)]
        return f"{name} died ({how})" + (f": {errors[-1]}" if errors else "")

    def check(self) -> tuple[str, int] | None:
        """Restart crashed workers (with back-off); the first other failure: (its one line, exit code)."""
        for name, p in list(self.procs.items()):
            code = p.poll()
            kind = stage.stage(name.split(".")[0])
            if code is None or kind.name == "display":  # display's end is wait()'s business
                continue
            if code == 2:  # a user's error: its own one line
                return self.last_line(name), 2
            if kind.worker and self.restart:
                self._restart(name)
            elif not (kind.name == "capture" and code == 0):  # capture --exit-on-eos ends with 0
                return f"dogfilter: {self.why(name)}", code or 1
        return None

    def _restart(self, name: str) -> None:
        n, when = self.restarts.get(name, (0, 0.0))
        if when == 0.0 and time.monotonic() - self.started.get(name, 0.0) >= HEALTHY_S:
            n = 0  # it did its work a good while: an occasional crash is not a crash loop
        if when == 0.0:  # just found dead: say so, and when it comes back
            delay = min(MAX_BACKOFF_S, 2.0 ** n)
            self.events.append(f"{self.why(name)}; restarting it in {delay:.0f}s")
            print(f"dogfilter: {self.events[-1]}", file=sys.stderr)
            self.restarts[name] = (n, time.monotonic() + delay)
        elif time.monotonic() >= when:
            stage_name, args = self.args[name]
            self.start_one(stage_name, name, args)
            self.restarts[name] = (n + 1, 0.0)

    def tails(self, n: int = 8) -> str:
        """The last ``n`` warnings and errors of every process's log (why a run went wrong, before stop() removes
        the logs with the run folder)."""
        out = []
        for name, log in self.logs.items():
            try:
                lines = log.read_text(errors="replace").splitlines()
            except OSError:
                continue
            bad = [ln for ln in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", ln)][-n:]
            out += [f"{name}: {ln}" for ln in bad]
        return "\n".join(out)

    def last_line(self, name: str) -> str:
        lines = [ln for ln in self.logs[name].read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else f"{name} exited"

    def wait(self, timeout: float | None = None, tick: Callable[[], None] | None = None) -> int:
        """Wait for display to finish. Returns its exit code, or the first failure's (and prints its line).
        ``tick`` is called every 50 ms meanwhile (progress)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if tick is not None:
                tick()
            bad = self.check()
            if bad:
                print(bad[0], file=sys.stderr)
                return bad[1]
            code = self.procs["display.1"].poll()
            if code is not None:
                if code == 3:  # frames were lost: display's own line says how many, composite's which
                    print("dogfilter: " + self.last_line("display.1"), file=sys.stderr)
                    for line in self.tails(n=4).splitlines():
                        if "never arrived" in line:
                            print("dogfilter: " + line, file=sys.stderr)
                elif code == 2:
                    print(self.last_line("display.1"), file=sys.stderr)
                elif code != 0:
                    print(f"dogfilter: {self.why('display.1')}", file=sys.stderr)
                return code
            if end is not None and time.monotonic() > end:
                raise TimeoutError("pipeline did not finish in time")
            time.sleep(0.05)

    def failed(self) -> tuple[str, int] | None:
        return next(((n, p.returncode) for n, p in self.procs.items() if p.poll() not in (None, 0)), None)

    def stop(self) -> None:
        display = self.procs.get("display.1")
        running = display is not None and display.poll() is None
        others = [p for name, p in self.procs.items() if name != "display.1"]
        children.stop(others, group=True)
        if display is not None:  # last, and with more time: a live recording is committed as it stops
            children.stop([display], wait_s=DISPLAY_STOP_S, group=True)
        janitor.remove_segments(self.dir)  # capture unlinks its own; not when it was killed
        if running and display is not None and display.returncode == 2:  # a recording it could not commit at the stop
            print(self.last_line("display.1"), file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)
        self._tell_janitor(None)

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------------------------- the command


def _pairs(items: list[str], what: str) -> tuple[list[str], list[str]]:
    if not items or len(items) % 2:
        raise DogfilterError(f"{what} takes IN OUT pairs (IN OUT [IN OUT ...]), got {len(items)} paths")
    return items[0::2], items[1::2]


def _same(a: str, b: str) -> bool:
    """The same file (or folder), also through symbolic or hard links."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is not there (yet): the same only if they name the same place
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(ins: list[str], outs: list[str]) -> None:
    """Refuse, before anything is read or written, an output that is an input or another output."""
    for i, out in enumerate(outs):
        for src in ins:
            if _same(src, out.rstrip("/") or out):
                raise DogfilterError(f"output {out} is the input {src}: it would be overwritten while it is read")
        for other in outs[:i]:
            if _same(other.rstrip("/") or other, out.rstrip("/") or out):
                raise DogfilterError(f"output {out} is given twice ({other})")


def _inline(a: argparse.Namespace, sources: list[str]) -> bool:
    """The one-shot path (commands/inline.py): pictures and short clips, unless processes were asked for."""
    if a.inline != "auto":
        return a.inline == "yes"
    from dogfilter.commands import inline

    return a.detect == 1 and a.classify == 1 and not a.http_port and (a.cmd == "image" or inline.short(sources))


def _progress_tick(progress: Any, stats: str | None) -> Callable[[], None] | None:
    """Every half second: the display's count of frames done, to the progress bar (or line)."""
    if progress is None or not stats:
        return None
    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] < 0.5:
            return
        last[0] = time.monotonic()
        from dogfilter.services.display import read_stats  # not at start-up: only a long job's progress

        try:
            done = int(read_stats(stats, {}, wait_s=0).get("frames", 0))
        except (ValueError, TypeError):
            return
        progress.update(done)

    return tick


def build_parser() -> argparse.ArgumentParser:
    ap = options.Parser(prog="dogfilter", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=options.Parser)
    for cmd, text in (("file", "filter video files (or folders of photos): every frame, in order"),
                      ("image", "filter pictures"), ("live", "live mode: the newest frame wins")):
        sp = sub.add_parser(cmd, help=text, description=text, formatter_class=argparse.RawDescriptionHelpFormatter)
        if cmd != "live":
            sp.add_argument("paths", nargs="+", metavar="IN OUT", help="input and output paths, in pairs")
        own = [o for o in LAUNCHER if cmd != "live" or o.name != "inline"]
        groups = [("processes", own), *launcher_options(POSITIONAL | LIVE_ONLY if cmd != "live" else set())]
        for title, opts in groups:
            g = sp.add_argument_group(title)
            for opt in opts:
                if cmd == "live" and opt.name in LIVE_DEFAULTS:  # live serves its pages unless told otherwise
                    opt = dataclasses.replace(opt, default=LIVE_DEFAULTS[opt.name])
                opt.add_to(g, os.environ)
    k = sub.add_parser("keys", help="create CURVE keys: server.key(_secret), client.key(_secret), clients/")
    k.add_argument("dir", help="the folder to create them in (made private: 0700, secrets 0600)")
    sub.add_parser("options", help="print every option of every stage, as a commented .env file")
    return ap


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    try:
        return _main(argv)
    except DogfilterError as e:
        print(f"dogfilter: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _main(argv: list[str] | None) -> int:
    a = build_parser().parse_args(argv)
    if a.cmd == "keys":
        from dogfilter.common.transport.sockets import create_keys

        d = create_keys(a.dir)
        print(f"keys in {d}: give server.key + client.key_secret (+ client.key) to the other machines; keep "
              "server.key_secret here (all secrets are 0600)")
        return 0
    if a.cmd == "options":
        groups: list[tuple[str, Sequence[Option]]] = [(st.script, st.options()) for st in stage.STAGES]
        groups += [("every stage", options.PIPELINE), ("links", tuple(options.LINKS.values()))]
        sys.stdout.write(options.env_file(groups))
        return 0
    values = {o.name: getattr(a, o.name) for _, group in launcher_options() for o in group if hasattr(a, o.name)}
    if a.cmd in ("file", "image"):
        ins, outs = _pairs(a.paths, a.cmd)
        check_outputs(ins, outs)
        ids = [f"cam{i}" for i in range(len(ins))] if len(ins) > 1 else ["cam0"]
        values["source"] = ins
        values["output"] = [f"{s}={p}" for s, p in zip(ids, outs, strict=True)] if len(ins) > 1 else outs
        display_args = [f"--exit-after={s}" for s in ids]
    else:
        ids, display_args = [], []
        camera = f", browser camera: http://127.0.0.1:{a.web_port}/" if a.web_port else ""
        camera += ", virtual camera: dogfilter" if a.virtual_camera else ""
        print(f"browser view: http://127.0.0.1:{a.http_port}/{camera}  (Ctrl-C stops)", file=sys.stderr)
    progress = None
    if a.cmd == "file":
        from dogfilter.commands import inline
        from dogfilter.commands.progress import Progress

        counts = [inline.frames_in(s) for s in values["source"]]
        known = [n for n in counts if n is not None]
        progress = Progress(sum(known) if len(known) == len(counts) else None)
    if a.cmd != "live" and _inline(a, values["source"]):
        from dogfilter.commands import inline

        try:
            code = inline.run(values, ids, progress)
        finally:
            if progress is not None:
                progress.close()
    else:
        p = Pipeline(mode="live" if a.cmd == "live" else "file", n_detect=a.detect, n_classify=a.classify,
                     values=values, display=display_args)
        if progress is not None and not p.values.get("stats_out"):
            p.values["stats_out"] = str(p.dir / "stats.json")  # the display's count of frames done
        try:
            p.start()
            code = p.wait(tick=_progress_tick(progress, p.values.get("stats_out")))
        finally:
            if progress is not None:
                progress.close()
            p.stop()
    if code == 0 and a.cmd != "live":
        print("\n".join(values["output"] if len(values["source"]) == 1 else
                        [o.split("=", 1)[1] for o in values["output"]]))
    return code


if __name__ == "__main__":
    sys.exit(main())
