"""PyTorch is an extra: the default paths (dogfilter image, dogfilter file with five processes, the services) import
nothing of it, and the paths that need it say so in one line.  Every process here, the launcher's children too,
starts with a sitecustomize that makes `import torch` fail, as in the container image (tests/test_image.py checks
the image itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ASSETS, make_clip, read_video

pytestmark = pytest.mark.system

HINT = ("needs PyTorch, which this install does not have: pip install 'dogfilter[torch]' (from a checkout: make "
        "setup; CPU-only boxes: pip install torch --index-url https://download.pytorch.org/whl/cpu first)")


@pytest.fixture
def no_torch_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # import torch: ImportError\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGFILTER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    return env


def dogfilter(env: dict[str, str], *args: str, module: str = "dogfilter.commands.run") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(180)
def test_the_default_paths_run_without_pytorch(no_torch_env: dict[str, str], tmp_path: Path) -> None:
    import matplotlib.cbook

    r = subprocess.run([sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True)
    assert r.returncode != 0, "the blocker does not block"
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    r = dogfilter(no_torch_env, "image", str(photo), str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    frames = make_clip(tmp_path / "clip.avi", n=8)
    r = dogfilter(no_torch_env, "file", str(tmp_path / "clip.avi"), str(tmp_path / "out.avi"), "--inline", "no")
    assert r.returncode == 0, r.stderr
    assert len(read_video(tmp_path / "out.avi")) == len(frames)


@pytest.mark.timeout(120)
def test_what_needs_pytorch_says_so_in_one_line(no_torch_env: dict[str, str], tmp_path: Path) -> None:
    import matplotlib.cbook

    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    r = dogfilter(no_torch_env, "--device", "cuda", module="dogfilter.services.classify")
    assert (r.returncode, r.stderr.strip()) == (2, f"dogfilter-classify: error: --device cuda {HINT}")
    r = dogfilter(no_torch_env, "--help", module="dogfilter.commands.train.cli")
    assert (r.returncode, r.stderr.strip()) == (2, f"dogfilter-train: error: training {HINT}")
    tutorial = ASSETS / "model_best.pth"
    if tutorial.exists():
        r = dogfilter(no_torch_env, "image", str(photo), str(tmp_path / "o.png"), "--model", str(tutorial))
        assert (r.returncode, r.stderr.strip()) == (
            2, f"dogfilter: error: the model model_best.pth (it has no ONNX export of its own) {HINT}")
