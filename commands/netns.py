"""Machines as Linux network namespaces: a fleet of dogfilter hosts on one box, for the fleet tests and the fleet
benchmark (``dogfilter-bench --only fleet``).

:class:`Net` makes a switch (a bridge in a namespace of its own) and "machines" (one namespace each, joined to the
switch by a veth pair whose two ends are both inside namespaces it made), addressed 10.77.0.X/24: none of these
addresses exists on the machine's own interfaces, so nothing a fleet sends leaves the namespaces.  Each machine has
its own hosts file (``/etc/netns/NAME/hosts``, which ``ip netns exec`` puts over /etc/hosts; edited in place, so a
running process sees each change) and an empty resolv.conf (no DNS beyond it).  Processes run inside with
``ip netns exec``.  :meth:`Net.close` ends every process, deletes every namespace and hosts folder, also after a
failure; each run's names are unique (``dfnet<pid>x<random>``), and a later run removes what a killed run left.

:class:`Fleet` starts dogfilter on those machines: pipeline hosts (capture + detect + composite + display, links on
the machine's address, CURVE on each), classify and detect workers that find the hosts by a name.
Needs root and iproute2 (``ip``): :func:`unavailable` says why not, where not.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogfilter.common import children

SUBNET = "10.77.0"
PREFIX = "dfnet"
NETNS_ETC = Path("/etc/netns")
PORTS = {"frames": 5551, "detections": 5552, "classify": 5553}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.name != "posix" or not Path("/proc/self/ns/net").exists():
        return "Linux network namespaces are needed"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    try:
        NETNS_ETC.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {NETNS_ETC} (each machine's hosts file): {e.strerror}"
    probe = f"{PREFIX}{os.getpid()}xprobe"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` fails here: {r.stderr.strip()[:200]}"
    try:
        for kind, args in (("bridge", ("br0", "type", "bridge")),
                           ("veth", ("vprobe0", "type", "veth", "peer", "name", "vprobe1"))):
            r = _ip("-n", probe, "link", "add", *args, check=False)
            if r.returncode != 0:
                return f"cannot make a {kind} in a namespace: {r.stderr.strip()[:200]}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def remove_leftovers() -> list[str]:
    """Namespaces (and hosts folders) of runs whose process is gone: a run killed before it could tidy up."""
    gone = []
    r = _ip("netns", "list", check=False)
    names = [ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith(PREFIX)]
    names += [p.name for p in NETNS_ETC.glob(f"{PREFIX}*")] if NETNS_ETC.is_dir() else []
    for name in dict.fromkeys(names):
        pid = name[len(PREFIX):].split("x", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _delete_ns(name)
            gone.append(name)
    return gone


def _delete_ns(ns: str) -> None:
    r = _ip("netns", "pids", ns, check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)  # only processes inside a namespace this harness made
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", ns, check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


@dataclass
class Proc:
    name: str
    machine: str
    argv: list[str]
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Net:
    """A switch and machines on it (module docstring).  Use as a context manager, or call :meth:`close`."""

    def __init__(self) -> None:
        self.id = f"{PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.switch = f"{self.id}-sw"
        self.machines: dict[str, str] = {}  # name → address
        self.namespaces: list[str] = []
        self.procs: dict[str, Proc] = {}
        self.dir = Path(tempfile.mkdtemp(prefix="dogfilter-fleet-"))
        self._closed = False
        try:
            remove_leftovers()
            self._ns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def ns(self, machine: str) -> str:
        return f"{self.id}-{machine}"

    def _ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def add(self, machine: str, octet: int) -> str:
        """A machine at 10.77.0.``octet``, on the switch. Returns its address."""
        ns, addr = self.ns(machine), f"{SUBNET}.{octet}"
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("# no DNS: names come from this machine's hosts file\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        self._ns(ns)
        port = f"p{len(self.machines)}"  # the switch's end of the cable (names are per namespace)
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        self.machines[machine] = addr
        return addr

    def hosts(self, machine: str, entries: dict[str, list[str]]) -> None:
        """The machine's hosts file: NAME → addresses (several lines of one name: several addresses).  Written in
        place: ``ip netns exec`` bind-mounted this very file, so running processes see the change."""
        lines = ["127.0.0.1 localhost"] + [f"{a} {name}" for name, addrs in entries.items() for a in addrs]
        with open(NETNS_ETC / self.ns(machine) / "hosts", "r+") as f:
            f.seek(0)
            f.write("\n".join(lines) + "\n")
            f.truncate()

    def link(self, machine: str, up: bool) -> None:
        """The machine's cable in or out (its own end, inside its namespace)."""
        _ip("-n", self.ns(machine), "link", "set", "eth0", "up" if up else "down")

    def run(self, machine: str, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        """``argv`` inside ``machine``; stderr and stdout to a log of its own."""
        log = self.dir / f"{name}.log"
        full = ["ip", "netns", "exec", self.ns(machine), *argv]
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HONCHO_PROCESS_NAME": name,
                   **(env or {})}
        with log.open("ab") as out:
            p = subprocess.Popen(full, env=environ, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)  # `ip netns exec` execs the command: p.pid is it
        proc = self.procs[name] = Proc(name, machine, argv, p, log)
        return proc

    def kill(self, name: str, sig: int = signal.SIGTERM, wait_s: float = 10.0) -> int | None:
        p = self.procs[name].popen
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            return p.wait(wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            return p.wait(5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        children.stop([p.popen for p in self.procs.values()], group=True)
        for ns in reversed(self.namespaces):
            _delete_ns(ns)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Net:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def service(stage: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"dogfilter.services.{stage}", *args]


@dataclass
class Host:
    """A pipeline host: its machine, address, and where its display writes its statistics."""

    machine: str
    addr: str
    stats: Path
    procs: list[str] = field(default_factory=list)


class Fleet:
    """dogfilter on the machines of a :class:`Net`: every TCP link CURVE (one key set for the fleet)."""

    def __init__(self, net: Net, size: str = "320x240", fps: float = 5.0, streams: int = 1,
                 resolve_s: float = 1.0, extra: dict[str, list[str]] | None = None) -> None:
        self.net, self.size, self.fps, self.streams, self.resolve_s = net, size, fps, streams, resolve_s
        self.extra = extra or {}
        self.keys = net.dir / "keys"
        r = subprocess.run([sys.executable, "-m", "dogfilter.commands.run", "keys", str(self.keys)],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"dogfilter keys failed: {r.stderr.strip()}")
        self.hosts: dict[str, Host] = {}

    def pipeline_host(self, machine: str, local_detect: bool = True) -> Host:
        """capture (demo streams) + detect (unless ``local_detect`` is False: then only remote detect workers)
        + composite (no classify worker of its own) + display, on ``machine``'s address."""
        addr = self.net.machines[machine]
        d = self.net.dir / machine
        d.mkdir(mode=0o700)
        secret = d / "secret"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        tcp = {k: f"tcp://{addr}:{p}" for k, p in PORTS.items()}
        common = ["--mode", "live", "--secret-file", str(secret), "--curve-dir", str(self.keys)]
        links = {"DOGFILTER_FRAMES_ADDR": tcp["frames"], "DOGFILTER_DETECTIONS_ADDR": tcp["detections"],
                 "DOGFILTER_CLASSIFY_ADDR": tcp["classify"], "DOGFILTER_DISPLAY_ADDR": f"ipc://{d}/display",
                 "DOGFILTER_RETURNS_ADDR": f"ipc://{d}/returns"}  # each stage reads the links it has
        host = Host(machine, addr, d / "stats.json")
        streams = [a for i in range(self.streams) for a in ("--source", "demo", "--stream", f"{machine}-{i}")]
        stages: list[tuple[str, list[str]]] = [
            ("display", ["--stats-out", str(host.stats)]),
            ("composite", []),
            *([("detect", [])] if local_detect else []),
            ("capture", [*streams, "--size", self.size, "--fps", str(self.fps)]),
        ]
        for stage, own in stages:
            name = f"{machine}.{stage}"
            self.net.run(machine, name, service(stage, *common, *own, *self.extra.get(stage, [])), env=links)
            host.procs.append(name)
        self.hosts[machine] = host
        return host

    def classify_worker(self, machine: str, name: str, connect: str = "tcp://pipelines:5553",
                        keys: Path | None = None, *args: str) -> Proc:
        return self.net.run(machine, name, service(
            "classify", "--connect", connect, "--curve-dir", str(keys or self.keys), "--resolve-s",
            str(self.resolve_s), *args, *self.extra.get("classify", [])))

    def detect_worker(self, machine: str, name: str, connect: str = "tcp://pipelines:5551", *args: str) -> Proc:
        return self.net.run(machine, name, service(
            "detect", "--connect", connect, "--curve-dir", str(self.keys), "--resolve-s", str(self.resolve_s),
            *args, *self.extra.get("detect", [])))


def read_json(path: Path) -> dict[str, Any]:
    """A host's display statistics (``{}`` if it wrote none within 2 s)."""
    from dogfilter.services.display import read_stats

    return read_stats(path, {}, wait_s=2.0)


def jobs_by(stats: dict[str, Any], prefix: str) -> int:
    """Crops jobs a host's composite had answered by the classify workers named ``prefix`` (any pid)."""
    return sum(n for w, n in stats.get("classify_workers", {}).items() if w.split("@")[0] == prefix)
