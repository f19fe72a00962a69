"""Shared fixtures: paths to ../shared (skipped with a reason where absent), short real clips, and helpers to watch a
running pipeline through its statistics file."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ASSETS = SHARED / "seed" / "assets"
FER = SHARED / "fer2013"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# a stage a test starts on default links finds its peers in a run folder of the tests' own, never the user's
# (where a real pipeline may run): common/transport/rundir.py
if "DOGFILTER_RUN_DIR" not in os.environ:
    os.environ["DOGFILTER_RUN_DIR"] = tempfile.mkdtemp(prefix="dogfilter-tests-run-")
    atexit.register(shutil.rmtree, os.environ["DOGFILTER_RUN_DIR"], True)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: it comes with the project's shared data (../shared), not with a clone")
    return path


@pytest.fixture(scope="module")
def room() -> np.ndarray:
    """The demo's room at 640×480 with no one in it: the background faces are pasted or rendered on."""
    from dogfilter.common.scene import DemoScene

    return DemoScene(640, 480, faces=0).render(0.0)


@pytest.fixture
def assets() -> Path:
    return need(ASSETS)


@pytest.fixture
def fer_dir() -> Path:
    return need(FER)


# ------------------------------------------------------------------------------------------------ levels
# Every test has exactly one level: pytest.mark.unit (in-process, well under a second each: `make check` runs them
# all in seconds) or pytest.mark.system (starts processes, opens sockets between them, makes network namespaces,
# drives a browser, builds an image, or works for seconds in-process: training, scanning many pictures). A module
# gives its tests one with `pytestmark`; a module with both kinds marks each test. `make test` (CI) runs both. A
# test with no level, or with both, fails collection; a unit test that starts a process fails (the fixture below).
LEVELS = ("unit", "system")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything: every collected test is checked
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = [f"{item.nodeid} ({', '.join(levels) or 'none'})" for item in items
             if len(levels := sorted({m.name for m in item.iter_markers() if m.name in LEVELS})) != 1]
    if wrong:
        raise pytest.UsageError("every test needs exactly one level, pytest.mark.unit or pytest.mark.system "
                                f"(tests/conftest.py says which is which); these have: {'; '.join(wrong[:20])}")


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test that starts a process fails, saying so: what `make check` runs stays in-process and fast."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{request.node.nodeid} is marked unit but starts a process: mark it pytest.mark.system")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


BAR_BITS = 10
BAR_H = 16


def stamp_index(frame: np.ndarray, i: int) -> None:
    """Write i as a black/white barcode along the bottom edge (survives video compression)."""
    h, w = frame.shape[:2]
    cell = w // BAR_BITS
    for b in range(BAR_BITS):
        frame[h - BAR_H:, b * cell:(b + 1) * cell] = 255 if (i >> b) & 1 else 0


def read_index(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    cell = w // BAR_BITS
    strip = frame[h - BAR_H + 4:h - 4].mean(axis=(0, 2))
    return sum(1 << b for b in range(BAR_BITS) if strip[b * cell + 4:(b + 1) * cell - 4].mean() > 128)


def make_clip(path: Path, n: int = 24, size: tuple[int, int] = (640, 480), fps: float = 15.0) -> list[np.ndarray]:
    """A short clip of the built-in demo scene (real faces), each frame numbered by a barcode."""
    from dogfilter.common.scene import DemoScene

    scene = DemoScene(*size)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    frames = []
    for i in range(n):
        f = scene.render(i / fps)
        stamp_index(f, i)
        w.write(f)
        frames.append(f)
    w.release()
    return frames


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(f)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_stats(path: Path) -> dict:
    for _ in range(50):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
    raise AssertionError(f"no statistics in {path}")


def live_pipeline(folder: Path, **values: object) -> Iterator:
    """A live pipeline of the demo at 320x240 and 15 frames/s (plus ``values``), its statistics in ``folder``, once
    it has shown 10 frames; stopped after the ``yield`` (for module-scoped fixtures)."""
    from dogfilter.commands.run import Pipeline

    p = Pipeline(mode="live", values={"source": ["demo"], "size": "320x240", "fps": 15.0,
                                      "stats_out": str(folder / "stats.json"), **values})
    p.stats = folder / "stats.json"
    p.start()
    try:
        wait_for(p.stats, lambda s: s["frames"] >= 10, timeout=60)
        yield p
    finally:
        p.stop()


def wait_for(path: Path, cond: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    """The display's statistics once ``cond`` holds for them (AssertionError after ``timeout`` seconds)."""
    end = time.monotonic() + timeout
    s: dict = {}
    while time.monotonic() < end:
        try:  # the display writes its first statistics once it has started: on a busy machine, seconds
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        if cond(s):
            return s
        time.sleep(0.2)
    raise AssertionError(f"condition not met in {timeout}s; last stats: {json.dumps(s)[:2000]}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``dogfilter ARGS`` (the launcher), as a user runs it."""
    return subprocess.run([sys.executable, "-m", "dogfilter.commands.run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
