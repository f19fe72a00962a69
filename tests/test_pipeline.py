"""The whole pipeline: five real processes over real ZeroMQ sockets, on real images.

File mode (every frame, in order, masks where the faces are), honcho with three classify workers, a live run
that is fed garbage, outpaced, watched in the browser and has workers killed and restarted, and the one-line
errors of bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from dogfilter.commands.run import Pipeline
from dogfilter.common.vision.detectors import HaarDetector
from dogfilter.common.vision.masks import mask_region
from tests.conftest import ROOT, free_port, make_clip, read_index, read_stats, read_video, run_cli, wait_for

pytestmark = pytest.mark.system

MAGENTA = (255, 0, 255)


def _solid_mask(path: Path) -> Path:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :, :3] = MAGENTA
    rgba[:, :, 3] = 255
    rgba[0, 0, 3] = 254  # keep it an alpha mask (a fully opaque one would use the white-background rule)
    cv2.imwrite(str(path), rgba)
    return path


@pytest.mark.timeout(180)
def test_file_mode_keeps_every_frame_in_order_with_a_mask_on_each_face(tmp_path) -> None:
    clip = tmp_path / "clip.avi"
    frames = make_clip(clip, n=24)
    mask = _solid_mask(tmp_path / "magenta.png")
    out = tmp_path / "out.avi"
    masks = [f"--mask={e}={mask}" for e in ("happy", "sad", "surprise", "neutral")]
    r = run_cli("file", str(clip), str(out), "--detect", "2", *masks, "--stats-out", str(tmp_path / "s.json"))
    assert r.returncode == 0, r.stderr
    got = read_video(out)
    assert len(got) == len(frames)
    assert [read_index(f) for f in got] == list(range(len(frames)))  # in order, although two detectors raced

    haar, painted, faces = HaarDetector(), 0, 0
    for src, dst in zip(read_video(clip), got, strict=True):
        for face in haar.detect(src):
            x0, y0, x1, y1 = mask_region(face.box)
            cy, cx = min(max((y0 + y1) // 2, 0), 479), (x0 + x1) // 2
            faces += 1
            painted += bool(np.abs(dst[cy - 2:cy + 3, cx - 2:cx + 3].astype(int) - MAGENTA).max() < 60)
    assert faces >= 24  # the demo clip has several faces per frame
    assert painted / faces > 0.95
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] == 24 and stats["counters"]["source"].get("frames_dropped", 0) == 0


@pytest.mark.timeout(120)
def test_the_one_shot_path_paints_what_the_five_processes_paint(tmp_path) -> None:
    """dogfilter image runs the stages' handlers in one process (commands/inline.py): the same picture."""
    import matplotlib.cbook

    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    clip = tmp_path / "clip.avi"
    make_clip(clip, n=12)
    for src, name in ((photo, "x.png"), (clip, "x.avi")):
        outs = [tmp_path / f"{way}-{name}" for way in ("yes", "no")]
        for way, out in zip(("yes", "no"), outs, strict=True):
            r = run_cli("image" if name.endswith("png") else "file", str(src), str(out), "--inline", way)
            assert r.returncode == 0, r.stderr
        a, b = (read_video(o) if name.endswith("avi") else [cv2.imread(str(o))] for o in outs)
        assert len(a) == len(b) >= 1 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name


@pytest.mark.timeout(120)
def test_image_mode_paints_the_default_masks_and_boxes_mode_draws_the_tutorials_boxes(tmp_path) -> None:
    import matplotlib.cbook

    photo = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    src = cv2.imread(str(photo))
    masked, boxed = tmp_path / "masked.png", tmp_path / "boxed.png"
    # the expected places are Haar's: run the tutorial's detector (BlazeFace, the default: tests/test_detectors.py)
    assert run_cli("image", str(photo), str(masked), "--detector", "haar").returncode == 0
    assert run_cli("image", str(photo), str(boxed), "--render", "boxes", "--detector", "haar").returncode == 0
    m, b = cv2.imread(str(masked)), cv2.imread(str(boxed))
    (x, y, w, h), = [f.box for f in HaarDetector().detect(src)]
    x0, y0, x1, y1 = mask_region((x, y, w, h))
    changed = (m != src).any(axis=2)
    assert changed[y0:y1, x0:x1].mean() > 0.15 and changed.sum() == changed[y0:y1, x0:x1].sum()
    green = (b == (0, 255, 0)).all(axis=2)
    assert green[y, x:x + w].mean() > 0.9 and green[y:y + h, x].mean() > 0.9  # the green rectangle


@pytest.mark.timeout(180)
def test_a_folder_of_photos_gets_a_mask_on_every_photos_face(tmp_path) -> None:
    """Photos are not video: each is searched in full (a face is not looked for where the last photo had one)."""
    from dogfilter.common.scene import DemoScene
    from dogfilter.common.scene.group import paste_face

    room = DemoScene(640, 480, faces=0).render(0.0)
    photos, truths = tmp_path / "photos", []
    photos.mkdir()
    for k, (cx, cy, w) in enumerate(((150, 200, 90), (480, 300, 110), (320, 150, 70), (500, 120, 80))):
        img = room.copy()
        truths.append(paste_face(img, k % 3, cx, cy, w))
        cv2.imwrite(str(photos / f"{k:02d}.png"), img)
    mask = _solid_mask(tmp_path / "magenta.png")
    out = tmp_path / "out"
    r = run_cli("file", str(photos), f"{out}/", *[f"--mask={e}={mask}" for e in ("happy", "sad", "surprise",
                                                                                    "neutral")])
    assert r.returncode == 0, r.stderr
    got = sorted(out.iterdir())
    assert len(got) == 4
    for path, (x, y, w, h) in zip(got, truths, strict=True):
        img = cv2.imread(str(path))
        magenta = (np.abs(img.astype(int) - MAGENTA).max(axis=2) < 60)
        assert magenta[int(y + h / 2) - 2:int(y + h / 2) + 3, int(x + w / 2) - 2:int(x + w / 2) + 3].all(), path
        assert magenta.sum() < 4 * w * h  # one mask: none left where an earlier photo had its face


@pytest.mark.timeout(180)
def test_honcho_spreads_faces_over_three_classify_workers(tmp_path) -> None:
    clip = tmp_path / "clip.avi"
    make_clip(clip, n=30)
    stats, out = tmp_path / "stats.json", tmp_path / "out.avi"
    env_file = tmp_path / "test.env"
    env_file.write_text("\n".join([
        "PYTHONUNBUFFERED=1", "OMP_NUM_THREADS=1", "DOGFILTER_MODE=file", f"DOGFILTER_SOURCE={clip}",
        f"DOGFILTER_OUTPUT={out}", f"DOGFILTER_STATS_OUT={stats}",
        *(f"DOGFILTER_{n.upper()}_ADDR=ipc://{tmp_path}/{n}" for n in ("frames", "detections", "classify", "display")),
    ]) + "\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([str(Path(sys.executable).parent / "honcho"), "-f", str(ROOT / "Procfile"), "-e", str(env_file),
                        "-d", str(ROOT), "start", "-c", "classify=3"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    s = json.loads(stats.read_text())
    assert s["frames"] == 30, r.stdout[-3000:]
    workers = s["classify_workers"]
    assert len(workers) == 3 and all(n > 0 for n in workers.values()), workers
    assert {name.split("@")[0] for name in workers} == {"classify.1", "classify.2", "classify.3"}
    assert len(read_video(out)) == 30


# ----------------------------------------------------------------------------------------------- bad input


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stage, args, expect", [
    ("capture", ["--source", "/no/such/video.mp4"], "video not found"),
    ("capture", ["--source", "7"], "cannot open camera 7"),
    ("capture", ["--source", "__FILE__"], "cannot read video"),
    ("classify", ["--model", "/no/such/model.pth"], "model file not found"),
    ("classify", ["--model", "__FILE__"], "not a weights-only PyTorch checkpoint"),
    ("composite", ["--mask", "happy=/no/such/mask.png"], "mask not found"),
    ("composite", ["--mask", "happy"], "want EMOTION=PATH"),
    ("display", ["--output", "/tmp/out.xyz"], "unknown kind"),
])
def test_bad_input_gives_one_clear_line_and_a_nonzero_exit(tmp_path, stage: str, args: list[str],
                                                           expect: str) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video or a model\x00" * 10)
    args = [str(junk) if a == "__FILE__" else a for a in args]
    env = {**os.environ, **{f"DOGFILTER_{n.upper()}_ADDR": f"ipc://{tmp_path}/{n}"
                            for n in ("frames", "detections", "classify", "display")}}
    r = subprocess.run([sys.executable, "-m", f"dogfilter.services.{stage}", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=50)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert any(expect in ln for ln in lines) and lines[-1].startswith(f"dogfilter-{stage}: error:"), r.stderr


@pytest.mark.timeout(90)
def test_launcher_reports_the_failing_stage_in_one_line(tmp_path) -> None:
    r = run_cli("file", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4"))
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "video not found" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    port = free_port()
    stats = d / "stats.json"
    p = Pipeline(capture=["--source", "demo", "--size", "640x480", "--fps", "120"],
                 display=["--http-port", str(port), "--stats-out", str(stats)], mode="live")
    p.start()
    p.port, p.stats = port, stats
    wait_for(stats, lambda s: s["frames"] >= 10, timeout=60)
    yield p
    p.stop()


@pytest.mark.timeout(90)
def test_live_source_outpacing_detection_drops_at_the_source_and_lag_stays_bounded(live) -> None:
    s0 = read_stats(live.stats)
    time.sleep(4)
    s = read_stats(live.stats)
    assert s["frames"] > s0["frames"]
    assert s["counters"]["source"]["frames_dropped"] > s0["counters"]["source"].get("frames_dropped", 0)
    lat = s["latency_ms"]["capture→display"]
    assert lat["p95"] < 1000, lat  # a 120 fps source into a ~10-30 fps detector: drops, not a growing queue
    assert s["faces"] > 0 and set(s["emotions"]) <= {"happy", "sad", "surprise", "neutral"}


@pytest.mark.timeout(60)
def test_browser_view_serves_the_page_stats_and_a_live_mjpeg_stream(live) -> None:
    base = f"http://127.0.0.1:{live.port}"
    page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
    assert "/stream/" in page and "/stats.json" in page  # a video per stream, and the statistics
    stats = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=10).read())
    assert stats["frames"] > 0 and "capture→display" in stats["latency_ms"]
    with urllib.request.urlopen(base + "/stream.mjpg", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        buf = b""
        while buf.count(b"\xff\xd9") < 2 and len(buf) < 2_000_000:
            buf += r.read1(65536)
    start = buf.index(b"\xff\xd8")
    img = cv2.imdecode(np.frombuffer(buf[start:buf.index(b"\xff\xd9", start) + 2], np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (480, 640, 3)


@pytest.mark.timeout(60)
def test_metrics_parse_with_the_prometheus_parser_per_stream_and_stage(live) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{live.port}/metrics", timeout=10).read().decode()
    fam = {f.name: f for f in text_string_to_metric_families(text)}
    frames = {s.labels["stream"]: s.value for s in fam["dogfilter_frames"].samples if s.name.endswith("_total")}
    assert frames["cam0"] > 0
    buckets = [s for s in fam["dogfilter_latency_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["hop"] == "capture→display" and s.labels["le"] == "+Inf"]
    assert buckets and buckets[0].value > 0
    events = {(s.labels["stage"], s.labels["event"]) for s in fam["dogfilter_stage_events"].samples}
    assert ("source", "frames") in events and ("detect", "faces") in events
    assert [s.value for s in fam["dogfilter_classify_workers"].samples] == [1]


@pytest.mark.timeout(60)
def test_malformed_messages_are_dropped_and_counted_while_stages_keep_working(live) -> None:
    ctx = zmq.Context.instance()
    before = read_stats(live.stats)
    socks = []
    for name, kind in (("detections", zmq.DEALER), ("display", zmq.PUSH), ("frames", zmq.DEALER)):
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(live.endpoints[name])
        socks.append(s)
        time.sleep(0.2)
        s.send_multipart([b"\x93not a header", b"junk"])
        s.send_multipart([b"\x82\xa1v\x01\xa4kind\xa5frame"])  # msgpack map, but not a valid message
    s = wait_for(live.stats, lambda s: s["counters"].get("composite", {}).get("malformed", 0) >= 2
                  and s["counters"]["display"].get("malformed", 0) >= 2
                  and s["counters"]["capture"].get("malformed", 0) >= 2)
    after = wait_for(live.stats, lambda x: x["frames"] > s["frames"] + 10)
    assert after["frames"] > before["frames"]
    for sock in socks:
        sock.close()


@pytest.mark.timeout(120)
def test_killed_workers_do_not_stall_video_and_restarted_ones_rejoin(live) -> None:
    live.procs["classify.1"].kill()
    live.procs["classify.1"].wait()
    s = read_stats(live.stats)
    wait_for(live.stats, lambda x: x["frames"] > s["frames"] + 20)  # video goes on without a classifier
    live.start_one("classify", "classify.2", [])
    s = wait_for(live.stats, lambda x: any(k.startswith("classify.2") and v > 0
                                            for k, v in x["classify_workers"].items()))
    live.procs["detect.1"].kill()
    live.procs["detect.1"].wait()
    time.sleep(1)
    live.start_one("detect", "detect.2", [])
    wait_for(live.stats, lambda x: x["frames"] > s["frames"] + 20)
    assert live.failed() is None or live.failed()[0] in ("classify.1", "detect.1")


# ----------------------------------------------------------------------------------------------- remote worker


@pytest.mark.timeout(120)
def test_remote_worker_joins_over_encrypted_tcp_and_an_unkeyed_one_is_refused(tmp_path) -> None:
    keys = tmp_path / "keys"
    assert run_cli("keys", str(keys)).returncode == 0
    port = free_port()
    stats = tmp_path / "stats.json"
    p = Pipeline(capture=["--source", "demo", "--size", "320x240", "--fps", "15"],
                 display=["--stats-out", str(stats)], mode="live", n_classify=0,
                 composite=["--curve-dir", str(keys)], tcp_classify=f"tcp://127.0.0.1:{port}")
    with p:
        # "another machine": a worker that knows only the host's address, with and without the keys
        p.start_one("classify", "remote.1", ["--connect", f"tcp://127.0.0.1:{port}", "--curve-dir", str(keys)])
        p.start_one("classify", "intruder.1", ["--connect", f"tcp://127.0.0.1:{port}", "--curve-dir", ""])
        s = wait_for(stats, lambda x: x["classify_workers"].get(next(iter(x["classify_workers"]), ""), 0) > 5,
                      timeout=60)
        time.sleep(2)
        s = read_stats(stats)
    names = {k.split("@")[0] for k in s["classify_workers"]}
    assert names == {"remote.1"}, s["classify_workers"]


@pytest.mark.timeout(60)
def test_console_scripts_give_one_line_errors_too() -> None:
    import shutil

    import torch

    exe = shutil.which("dogfilter-classify", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the package is not installed (pip install -e .): no console scripts")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is not an error here")
    r = subprocess.run([exe, "--device", "cuda"], capture_output=True, text=True, timeout=50)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("dogfilter-classify: error: --device cuda: "
                                "no CUDA device is available to this PyTorch build")


@pytest.mark.timeout(120)
def test_jpeg_frames_for_remote_links_keep_every_frame(tmp_path) -> None:
    clip = tmp_path / "clip.avi"
    frames = make_clip(clip, n=12)
    out, stats = tmp_path / "out.avi", tmp_path / "s.json"
    p = Pipeline(capture=["--source", str(clip), "--jpeg", "90"], display=["--output", str(out), "--stats-out",
                                                                              str(stats)], mode="file")
    with p:
        code = p.wait(timeout=100)
        assert code == 0, p.tails()
    got = read_video(out)
    assert [read_index(f) for f in got] == list(range(len(frames)))
    assert json.loads(stats.read_text())["faces"] > 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("inline", ["yes", "no"])
def test_a_picture_without_a_face_comes_out_unchanged(tmp_path, inline: str) -> None:
    src = tmp_path / "wall.png"
    cv2.imwrite(str(src), np.full((120, 160, 3), (90, 140, 200), np.uint8))
    r = run_cli("image", str(src), str(tmp_path / "out.png"), "--inline", inline)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(cv2.imread(str(tmp_path / "out.png")), cv2.imread(str(src)))


@pytest.mark.timeout(120)
def test_the_demo_shows_every_dog_within_ten_seconds(tmp_path) -> None:
    """The built-in demo through the real pipeline: its faces change expression, read by the real classifier, so
    happy (dog), sad or neutral (dalmatian) and surprise (sheepdog) each get their mask within ~10 s."""
    stats = tmp_path / "s.json"
    p = Pipeline(mode="live", values={"source": ["demo"], "size": "640x480", "fps": 15.0, "stats_out": str(stats)})
    with p:
        wait_for(stats, lambda s: s["frames"] > 0, timeout=60)
        s0 = read_stats(stats)
        time.sleep(10)
        s = read_stats(stats)
    shown = {k: v - s0["emotions"].get(k, 0) for k, v in s["emotions"].items()}
    assert shown.get("happy", 0) >= 5 and shown.get("surprise", 0) >= 5, shown
    assert shown.get("sad", 0) + shown.get("neutral", 0) >= 5, shown
