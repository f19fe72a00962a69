"""The container image (deploy/Containerfile, built by deploy/build-image.sh): it builds here, carries no PyTorch and
no key or secret, and `dogfilter image` and a short `dogfilter file` inside it paint what the checkout paints.

Needs root, buildah and debootstrap (CI's .ci/run installs them), and Debian's and PyPI's servers for the first
build; the base (debootstrap) and the dependency layer are kept in buildah's storage, so later runs rebuild only the
package (tens of seconds).  Skipped, with the reason, where any of that is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, make_clip, read_video

TAG = "localhost/dogfilter:cpu"
PHOTO_IN_IMAGE = "/opt/dogfilter/lib/python3.11/site-packages/matplotlib/mpl-data/sample_data/grace_hopper.jpg"


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "building the image needs root (debootstrap, buildah --isolation chroot): CI runs as root"
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install buildah debootstrap; .ci/run does)"
    return None


pytestmark = [pytest.mark.system, pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")]


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    t0 = time.monotonic()
    out = subprocess.run([str(ROOT / "deploy" / "build-image.sh")], capture_output=True, text=True, timeout=1500)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr).strip().splitlines()[-5:]
        if any("Could not resolve" in line or "Temporary failure" in line or "Max retries" in line for line in tail):
            pytest.skip(f"the build could not reach Debian's or PyPI's servers: {tail[-1]}")
        pytest.fail("deploy/build-image.sh failed:\n" + "\n".join(tail))
    print(f"\n{out.stdout.strip()} (this run: {time.monotonic() - t0:.0f} s)")
    yield TAG


@pytest.fixture
def container(image: str) -> Iterator[str]:
    ctr = subprocess.run(["buildah", "from", "--pull-never", image], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        yield ctr
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)


def run_in(ctr: str, *cmd: str, mount: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    vol = ["-v", f"{mount}:/work"] if mount else []
    return subprocess.run(["buildah", "run", "--isolation", "chroot", *vol, ctr, "--", *cmd], capture_output=True,
                          text=True, timeout=timeout)


def shared_dir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    d.chmod(0o777)  # the image runs as uid 10001
    return d


@pytest.mark.timeout(1800)
def test_dogfilter_image_in_the_image_paints_what_the_checkout_paints(container: str, tmp_path: Path) -> None:
    import matplotlib.cbook

    work = shared_dir(tmp_path)
    t0 = time.monotonic()
    r = run_in(container, "dogfilter", "image", PHOTO_IN_IMAGE, "/work/masked.png", mount=work)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    host = tmp_path / "host.png"
    assert subprocess.run([sys.executable, "-m", "dogfilter.commands.run", "image", str(photo), str(host)],
                          capture_output=True, timeout=120).returncode == 0
    src, inside, outside = cv2.imread(str(photo)), cv2.imread(str(work / "masked.png")), cv2.imread(str(host))
    assert inside is not None and inside.shape == src.shape
    painted = (inside != src).any(axis=2)
    assert 0.03 < painted.mean() < 0.6, f"{painted.mean():.3f} of the picture changed: no mask painted?"
    differs = (np.abs(inside.astype(int) - outside.astype(int)) > 40).any(axis=2).mean()
    print(f"\ndogfilter image in the image: {took:.2f} s; pixels differing from the checkout's: {differs:.4%}")
    assert differs < 0.01, f"{differs:.2%} of the pixels differ from the checkout's output"


@pytest.mark.timeout(1800)
def test_a_short_dogfilter_file_in_the_image_masks_every_frame(container: str, tmp_path: Path) -> None:
    work = shared_dir(tmp_path)
    frames = make_clip(work / "clip.avi", n=12)
    (work / "clip.avi").chmod(0o644)
    r = run_in(container, "dogfilter", "file", "/work/clip.avi", "/work/out.avi", "--inline", "no", mount=work)
    assert r.returncode == 0, r.stderr
    out = read_video(work / "out.avi")
    assert len(out) == len(frames)
    for i, (a, b) in enumerate(zip(frames, out, strict=True)):
        changed = (np.abs(a.astype(int) - b.astype(int)) > 60).any(axis=2).mean()
        assert changed > 0.02, f"frame {i}: {changed:.3f} changed, no mask painted?"


@pytest.mark.timeout(1800)
def test_the_image_has_no_pytorch_and_says_how_to_get_it(container: str) -> None:
    r = run_in(container, "python3", "-c", "import torch")
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr
    r = run_in(container, "dogfilter-classify", "--device", "cuda")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("dogfilter")] == [
        "dogfilter-classify: error: --device cuda needs PyTorch, which this install does not have: pip install "
        "'dogfilter[torch]' (from a checkout: make setup; CPU-only boxes: pip install torch --index-url "
        "https://download.pytorch.org/whl/cpu first)"]


@pytest.mark.timeout(1800)
def test_no_key_secret_or_checkout_file_is_baked_in(image: str) -> None:
    ctr = subprocess.run(["buildah", "from", "--pull-never", image], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        root = Path(subprocess.run(["buildah", "mount", ctr], capture_output=True, text=True,
                                   check=True).stdout.strip())
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel = "/" + os.path.relpath(dirpath, root)
            if rel.startswith(("/proc", "/sys", "/usr/share/ca-certificates", "/etc/ssl")):
                dirnames[:] = []
                continue
            for name in filenames + dirnames:
                path = os.path.join(dirpath, name)
                if name.endswith(".key_secret") or name in ("secret", ".env", ".git", ".netrc", ".pypirc",
                                                             "ca_bundle", "id_rsa", "id_ed25519"):
                    found.append(os.path.join(rel, name))
                elif name.endswith((".key", ".pem")) and os.path.isfile(path) and not os.path.islink(path):
                    text = Path(path).read_bytes()[:1_000_000]
                    if b"PRIVATE KEY" in text or b"secret-key" in text:  # PEM keys, ZeroMQ CURVE secrets
                        found.append(os.path.join(rel, name))
        assert not found, f"files that look like keys or secrets in the image: {found[:10]}"
        assert not (root / "src").exists(), "the build's source copy is left in the image"
        user = subprocess.run(["buildah", "inspect", "--type", "image", "--format", "{{.OCIv1.Config.User}}", image],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert user.split(":")[0] == "10001", f"the image runs as {user!r}, not as the unprivileged 10001"
    finally:
        subprocess.run(["buildah", "umount", ctr], capture_output=True)
        subprocess.run(["buildah", "rm", ctr], capture_output=True)
