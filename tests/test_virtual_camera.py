"""The virtual camera as an application uses it: a private PipeWire, a camera of demo faces published into it,
``dogfilter live --source pipewire:NAME --virtual-camera``, and a separate PipeWire consumer reading the "dogfilter"
camera back.  Skipped, with the reason, where pipewire, wireplumber or GStreamer's PipeWire plugin are missing
(.ci/run installs them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, read_video, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PipeWire is Linux only")


@pytest.fixture
def pipewire():
    from dogfilter.commands import bench_vcam

    why = bench_vcam.missing()
    if why:
        pytest.skip(why)
    try:
        pw = bench_vcam.PrivatePipeWire().start()
    except RuntimeError as e:
        pytest.skip(str(e))
    yield pw
    pw.stop()


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def stage_pid(launcher: int, module: str) -> int | None:
    for c in children(launcher):
        try:
            if module in Path(f"/proc/{c}/cmdline").read_text():
                return c
        except OSError:
            pass
    return None


@pytest.mark.timeout(150)
def test_live_pipewire_camera_to_virtual_camera(pipewire, tmp_path: Path) -> None:
    """≥ 25 frames/s at the consumer, the masks on them (the display's own recording shows the same frames), and a
    detect killed mid-run never stops the consumer's frames for more than 0.5 s."""
    from dogfilter.commands import bench_vcam

    frames = bench_vcam.face_frames(60)
    cam = bench_vcam.TestCamera(pipewire.env, "dogfilter-test-cam", frames)
    stats, rec = tmp_path / "stats.json", tmp_path / "rec.avi"
    env = {**pipewire.env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    launcher = consumer = None
    try:
        assert bench_vcam.wait_node(pipewire.env, "dogfilter-test-cam", 15), "the test camera did not appear"
        launcher = subprocess.Popen(
            [sys.executable, "-m", "dogfilter.commands.run", "live", "--source", "pipewire:dogfilter-test-cam",
             "--virtual-camera", "--http-port", "0", "--web-port", "0", "--stats-out", str(stats),
             "--output", str(rec)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        wait_for(stats, lambda s: s.get("virtual_camera", {}).get("frames_sent", 0) > 30, timeout=60)
        consumer = bench_vcam.Consumer(pipewire.env, "dogfilter", keep_every=15)
        end = time.monotonic() + 20
        while not consumer.times and time.monotonic() < end:
            time.sleep(0.1)
        assert consumer.times, "the consumer got no frame from the dogfilter camera"
        time.sleep(5)
        detect = stage_pid(launcher.pid, "dogfilter.services.detect")
        assert detect, "no detect process under the launcher"
        shown_before = wait_for(stats, lambda s: True)["frames"]
        killed_at = time.monotonic()
        os.kill(detect, signal.SIGKILL)
        # the launcher restarts detect after 1 s; its model loads; frames flow through the pipeline again
        shown_after = wait_for(stats, lambda s: s["frames"] > shown_before + 60, timeout=60)["frames"]
        back_s = time.monotonic() - killed_at
        time.sleep(1)
        consumer.stop()
        s = wait_for(stats, lambda s: True)
    finally:
        if consumer is not None:
            consumer.stop()
        if launcher is not None:
            os.killpg(launcher.pid, signal.SIGTERM)
            try:
                _, err = launcher.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.pid, signal.SIGKILL)
                _, err = launcher.communicate()
        cam.stop()

    times = np.array(consumer.times)
    span = times[-1] - times[0]
    fps = (len(times) - 1) / span
    gap = float(np.diff(times).max())
    during = times[(times > killed_at - 1) & (times < killed_at + back_s)]
    kill_gap = float(np.diff(during).max())
    print(f"\nconsumer: {len(times)} frames in {span:.1f} s = {fps:.1f} frames/s; longest gap {gap * 1000:.0f} ms, "
          f"{kill_gap * 1000:.0f} ms around the detect kill (video back in {back_s:.1f} s); virtual camera "
          f"{s['virtual_camera']}")
    assert fps >= 25, f"{fps:.1f} frames/s at the consumer"
    assert gap <= 0.5, f"the consumer's frames stopped for {gap:.2f} s (around the kill: {kill_gap:.2f} s)"
    assert shown_after > shown_before, "frames did not flow again after the detect restart"
    assert s["virtual_camera"]["backend"] == "pipewire" and s["virtual_camera"]["size"] == [640, 480]
    assert s["virtual_camera"]["frames_repeated"] > 0, "the stall after the kill was not bridged by repeats"

    # the masks: the consumer's frames are the display's recording (same frame number, same picture), not the
    # camera's raw frames
    recorded = {bench_vcam.read_stamp(f): f for f in read_video(rec)}
    compared = 0
    for _, f in consumer.kept:
        n = bench_vcam.read_stamp(f)
        if n not in recorded:
            continue
        body = slice(0, 480 - 24)
        to_rec = np.abs(f[body].astype(int) - recorded[n][body].astype(int)).mean()
        to_raw = min(np.abs(f[body].astype(int) - r[body].astype(int)).mean() for r in frames)
        assert to_rec < 8, f"frame {n}: the consumer's picture is not the display's ({to_rec:.1f} apart)"
        assert to_raw > to_rec + 2, f"frame {n}: no masks on the consumer's picture ({to_raw:.1f} vs {to_rec:.1f})"
        compared += 1
    assert compared >= 3, f"only {compared} consumer frames matched recorded ones"
