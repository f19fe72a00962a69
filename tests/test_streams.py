"""Many streams through one pipeline: each keeps its own order and masks, drops are shared fairly, browser tabs come
and go as streams, one classify worker serves two pipelines, and the browser camera page works in Chromium."""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dogfilter.commands.run import Pipeline
from dogfilter.common.scene import DemoScene
from tests.conftest import free_port, make_clip, read_index, read_stats, read_video, run_cli, wait_for

pytestmark = pytest.mark.system

MAGENTA = (255, 0, 255)


def _magenta(path: Path) -> Path:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :, :3], rgba[:, :, 3] = MAGENTA, 255
    rgba[0, 0, 3] = 254  # an alpha mask
    cv2.imwrite(str(path), rgba)
    return path


@pytest.mark.timeout(240)
def test_three_streams_at_once_each_keep_their_own_order_and_masks(tmp_path) -> None:
    lengths = (14, 20, 17)
    args, masked = [], _magenta(tmp_path / "m.png")
    for k, n in enumerate(lengths):
        make_clip(tmp_path / f"in{k}.avi", n=n, size=(320, 240))
        args += [str(tmp_path / f"in{k}.avi"), str(tmp_path / f"out{k}.avi")]
    r = run_cli("file", *args, "--inline", "no", "--detect", "2", "--mask", f"happy={masked}", "--mask",
                f"sad={masked}", "--mask", f"surprise={masked}", "--mask", f"neutral={masked}", timeout=220)
    assert r.returncode == 0, r.stderr
    for k, n in enumerate(lengths):
        got = read_video(tmp_path / f"out{k}.avi")
        assert [read_index(f) for f in got] == list(range(n)), k  # its own frames, all, in order
        src = read_video(tmp_path / f"in{k}.avi")
        painted = [(np.abs(g.astype(int) - MAGENTA).max(axis=2) < 60).mean() for g in got]
        assert min(painted) > 0.01 and all(not (np.abs(s.astype(int) - MAGENTA).max(axis=2) < 60).any()
                                           for s in src)


@pytest.mark.timeout(120)
def test_an_overloaded_pipeline_shares_its_drops_fairly(tmp_path) -> None:
    stats = tmp_path / "s.json"
    p = Pipeline(mode="live", values={"source": ["demo"] * 4, "size": "640x480", "fps": 60.0,
                                      "stats_out": str(stats)})
    p.start()
    try:
        wait_for(stats, lambda s: len(s["streams"]) == 4 and all(v["frames"] > 20 for v in s["streams"].values()),
                 timeout=60)
        s0 = read_stats(stats)
        time.sleep(6)
        s1 = read_stats(stats)
    finally:
        p.stop()
    got = {k: s1["streams"][k]["frames"] - s0["streams"][k]["frames"] for k in s1["streams"]}
    assert sum(got.values()) < 0.9 * 4 * 60 * 6, got  # overloaded indeed: 240 frames/s is more than 2 cores do
    assert min(got.values()) > 0 and max(got.values()) / min(got.values()) < 1.3, got  # none starves
    dropped = [s1["streams"][k]["counters"]["source"].get("frames_dropped", 0) for k in got]
    assert min(dropped) > 0  # every stream loses some, at the source


def _tab(port: int, frames: int, scene: DemoScene, first: int = 0) -> list[float]:
    """A browser tab played by a WebSocket client: sends frames, returns the round trips of the results."""
    from websockets.sync.client import connect

    rtts = []
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["stream"].startswith("web-")
        for i in range(frames):
            jpeg = cv2.imencode(".jpg", scene.render((first + i) / 30))[1].tobytes()
            t = time.perf_counter() * 1000
            ws.send(struct.pack(">d", t) + jpeg)
            try:
                data = ws.recv(timeout=3)
            except TimeoutError:
                continue
            rtts.append(time.perf_counter() * 1000 - struct.unpack(">d", data[:8])[0])
            assert cv2.imdecode(np.frombuffer(data[8:], np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    return rtts


@pytest.fixture
def camera(tmp_path):
    stats, port = tmp_path / "s.json", free_port()
    p = Pipeline(mode="live", values={"source": ["demo"], "size": "320x240", "fps": 10.0, "stats_out": str(stats),
                                      "web_port": port, "max_web_streams": 2})
    p.stats, p.port = stats, port
    p.start()
    wait_for(stats, lambda s: s["frames"] > 5, timeout=60)
    yield p
    p.stop()


@pytest.mark.timeout(120)
def test_browser_tabs_come_and_go_as_streams_of_their_own(camera) -> None:
    scene = DemoScene(640, 480)
    rtts = _tab(camera.port, 40, scene)
    assert len(rtts) >= 35  # the filtered frames came back, with the tab's own clock
    s = wait_for(camera.stats, lambda x: x["streams"].get("web-1", {}).get("ended"))
    assert s["streams"]["web-1"]["frames"] >= 35 and s["streams"]["web-1"]["faces"] > 0
    assert not s["streams"]["cam0"]["ended"]  # the other stream went on all along
    rtts2 = _tab(camera.port, 20, scene, first=40)  # a second tab: a new stream, while the first is gone
    assert len(rtts2) >= 15
    s = wait_for(camera.stats, lambda x: x["streams"].get("web-2", {}).get("ended"))
    assert s["streams"]["cam0"]["frames"] > 0 and s["fps"] >= 0


@pytest.mark.timeout(120)
def test_the_browser_camera_turns_away_junk_strangers_and_too_many_tabs(camera) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{camera.port}/ws") as ws:
        ws.recv(timeout=10)
        for junk in (b"", b"\x00" * 7, struct.pack(">d", 1.0) + b"not a jpeg", "text", struct.pack(">d", 1.0)
                     + b"\xff\xd8" + b"\x00" * 100):
            ws.send(junk)
        with connect(f"ws://127.0.0.1:{camera.port}/ws") as ws2:  # the second of two allowed
            ws2.recv(timeout=10)
            with connect(f"ws://127.0.0.1:{camera.port}/ws") as ws3, pytest.raises(ConnectionClosed):
                ws3.recv(timeout=10)  # a third: closed (1013, try again later)
        with pytest.raises(InvalidStatus):  # a page of another site may not use this camera
            connect(f"ws://127.0.0.1:{camera.port}/ws", origin="http://evil.example").close()
    s = wait_for(camera.stats, lambda x: x["streams"].get("web-1", {}).get("ended"))
    assert s["streams"]["web-1"]["counters"]["source"]["bad_frames"] == 5
    assert camera.procs["capture.1"].poll() is None


@pytest.mark.timeout(180)
def test_one_classify_worker_serves_two_pipelines(tmp_path) -> None:
    pipelines = []
    for k in range(2):
        stats = tmp_path / f"s{k}.json"
        p = Pipeline(mode="live", n_classify=0, tcp_classify=f"tcp://127.0.0.1:{free_port()}",
                     values={"source": ["demo"], "size": "320x240", "fps": 10.0, "stats_out": str(stats)})
        p.stats = stats
        pipelines.append(p.start())
    try:
        hosts = [f"--connect={p.endpoints['classify']}" for p in pipelines]
        pipelines[0].start_one("classify", "fleet.1", hosts)  # one worker, both hosts
        for p in pipelines:
            s = wait_for(p.stats, lambda x: any(k.startswith("fleet.1") and v > 10
                                                for k, v in x["classify_workers"].items()), timeout=90)
            assert s["counters"]["composite"].get("faces_unclassified", 0) < s["faces"]
    finally:
        for p in pipelines:
            p.stop()


@pytest.mark.timeout(180)
def test_the_browser_camera_page_in_headless_chromium_gets_filtered_frames_back(camera, tmp_path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): no browser to test the camera page with")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    clip = tmp_path / "camera.y4m"  # the fake webcam: the demo scene, as Chromium reads it (YUV4MPEG2)
    scene = DemoScene(640, 480)
    with clip.open("wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for i in range(60):
            f.write(b"FRAME\n" + cv2.cvtColor(scene.render(i / 30), cv2.COLOR_BGR2YUV_I420).tobytes())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(f"http://127.0.0.1:{camera.port}/")
            page.wait_for_function("Number(document.body.dataset.got || 0) > 20", timeout=60000)
            rtt = float(page.evaluate("document.body.dataset.rttP50"))
            page.screenshot(path=str(tmp_path / "camera.png"))
        finally:
            browser.close()
    shown = cv2.imread(str(tmp_path / "camera.png"))
    assert shown is not None and shown.std() > 20 and 0 < rtt < 2000
    s = wait_for(camera.stats, lambda x: x["streams"].get("web-1", {}).get("ended"))  # the tab closed: it ended
    assert s["streams"]["web-1"]["faces"] > 0
