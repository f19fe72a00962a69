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

pytestmark = [pytest.mark.system, pytest.mark.skipif(sys.platform != "linux", reason="PipeWire is Linux only")]


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
    err, stopped_in_time = b"", False
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
                stopped_in_time = True
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
    # camera's raw frames.  A stop commits the recording (services/display.py)
    said = err.decode(errors="replace").strip()[-1000:]
    assert stopped_in_time, f"the launcher did not stop within 20 s of SIGTERM: {said}"
    assert rec.exists(), f"SIGTERM to the launcher left no recording at {rec}: {said}"
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


@pytest.mark.timeout(60)
def test_a_stream_that_ends_leaves_a_still_frame_and_the_camera_keeps_its_rate(pipewire) -> None:
    """End of stream: the last frame, dimmed, with a line of text, still at 30 frames/s; a frame of another size is
    letterboxed into the camera's."""
    from dogfilter.commands import bench_vcam
    from dogfilter.common.media.vcam import VirtualCamera

    cam = VirtualCamera("pipewire", env=pipewire.env)
    frame = np.full((480, 640, 3), 200, np.uint8)
    consumer = None
    try:
        assert cam.wants("cam0") and not cam.wants("cam1")  # the first stream seen is the camera's
        cam.put(frame, 30.0)
        assert bench_vcam.wait_node(pipewire.env, "dogfilter", 15), "the virtual camera did not appear"
        consumer = bench_vcam.Consumer(pipewire.env, "dogfilter", keep_every=1)
        end = time.monotonic() + 15
        while not consumer.times and time.monotonic() < end:
            cam.put(frame, 30.0)
            time.sleep(1 / 30)
        cam.put(np.full((240, 640, 3), 200, np.uint8), 30.0)  # another size: letterboxed
        time.sleep(0.2)
        cam.end()
        t_end = time.monotonic()
        time.sleep(2)
        consumer.stop()
        stats = cam.stats()
    finally:
        if consumer is not None:
            consumer.stop()
        cam.close()
    after = [f for i, f in consumer.kept if consumer.times[i] > t_end + 0.2]
    times = [t for t in consumer.times if t > t_end]
    assert len(times) >= 50, f"{len(times)} frames in the 2 s after the end: the camera did not keep its rate"
    last = after[-1].astype(int)
    assert abs(last[:100].mean() - 0) < 10, "the letterboxed frame's top band is not black"
    body = last[140:340]
    assert 60 < np.median(body) < 100, f"not dimmed: {np.median(body)}"  # 200 * 2/5 = 80
    assert (body > 200).mean() > 0.002, "no line of text on the still frame"
    assert stats["frames_letterboxed"] == 1 and stats["frames_repeated"] > 40, stats


@pytest.mark.timeout(60)
def test_without_a_backend_one_line_says_what_to_install(tmp_path) -> None:
    from dogfilter.common.media.vcam import loopback_devices

    if loopback_devices():
        pytest.skip("a v4l2loopback device exists here: auto would use it")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "DOGFILTER_SECRET_FILE": str(tmp_path / "secret"),
           "DOGFILTER_DISPLAY_ADDR": f"ipc://{tmp_path}/display", "DOGFILTER_RETURNS_ADDR": f"ipc://{tmp_path}/r"}
    env.pop("PIPEWIRE_REMOTE", None)
    env.pop("PIPEWIRE_RUNTIME_DIR", None)
    pw = "--virtual-camera-backend pipewire: "
    for args, expect in ((["--virtual-camera"], ("apt install pipewire",)),
                         (["--virtual-camera=cam1", *pw[:-2].split()], (pw + "PipeWire is not", pw + "GStreamer's")),
                         (["--virtual-camera", "--virtual-camera-backend", "v4l2loopback"], ("sudo modprobe",))):
        r = subprocess.run([sys.executable, "-m", "dogfilter.services.display", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=50)
        err = r.stderr.strip()
        assert r.returncode == 2 and "Traceback" not in err and err.count("\n") == 0, err
        assert err.startswith("dogfilter-display: error: ") and any(e in err for e in expect), err


@pytest.mark.timeout(60)
def test_a_missing_pipewire_camera_is_one_clear_line(pipewire, monkeypatch) -> None:
    from dogfilter.common.errors import DogfilterError
    from dogfilter.common.media.sources import open_source

    for k in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "PIPEWIRE_RUNTIME_DIR"):
        monkeypatch.setenv(k, pipewire.env[k])
    with pytest.raises(DogfilterError, match=r"pipewire:nosuch: no such PipeWire camera \(there are: none\)"):
        open_source("pipewire:nosuch")
    with pytest.raises(DogfilterError, match=r"no PipeWire camera \(other than dogfilter's own\)"):
        open_source("pipewire:")
