"""BlazeFace on video: faces followed between spread-out scans (common/vision/facetrack.py), and the two engines.

Frames are real pictures made here: the built-in demo scene (three real faces moving, rolling and turning, with
its ground truth) and faces pasted onto the demo's room (common/scene/group.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dogfilter.common.errors import DogfilterError
from dogfilter.common.scene.group import demo_shot, paste_face
from dogfilter.common.vision import blazeface
from dogfilter.common.vision.boxes import iou_xywh, match
from dogfilter.common.vision.detectors import BlazeFaceDetector


@pytest.fixture(scope="module")
def bf() -> BlazeFaceDetector:
    return BlazeFaceDetector(rescan=8)


@pytest.mark.system
@pytest.mark.timeout(120)
def test_video_tracking_finds_what_full_scans_find_with_fewer_network_passes(bf: BlazeFaceDetector) -> None:
    scenes = [demo_shot(640, 480, i / 30) for i in range(48)]  # 1.6 s of the demo at 30 fps
    before = dict(bf.tracker.counts)
    found = {"scan": 0, "video": 0}
    for i, s in enumerate(scenes):
        for mode in found:
            faces = bf.detect(s.image) if mode == "scan" else bf.detect(s.image, stream="demo", frame=i)
            hits, false, which = match([f.box for f in faces], s.boxes, 0.5)
            assert false == 0, (mode, i, [f.box for f in faces], s.boxes)
            found[mode] += hits
            if mode == "video":  # followed boxes are as good as scanned ones: the masks sit where they should
                assert all(iou_xywh(faces[j].box, s.boxes[k]) > 0.7 for k, j in enumerate(which) if j >= 0)
    total = sum(len(s.boxes) for s in scenes)
    assert found["scan"] >= total - 2 and found["video"] >= found["scan"], (found, total)
    c = {k: v - before.get(k, 0) for k, v in bf.tracker.counts.items()}
    # one full scan to start, then the two pyramid passes due once per 8 frames each (12 instead of 96); the
    # demo's room is still and its three faces are followed, so most of those turns are skipped by the gate
    assert c["full_scans"] == 1 and c["followed"] >= 2 * 47, c
    assert c["scan_passes"] + c["scans_skipped"] <= 2 * (48 // 8) and c["scans_skipped"] >= c["scan_passes"], c


@pytest.mark.unit
@pytest.mark.timeout(120)
def test_a_stream_seen_every_few_frames_is_followed_not_rescanned(bf: BlazeFaceDetector) -> None:
    """Two detect workers share a stream and a busy source skips frames: one worker sees frame numbers 1 to 14
    apart.  The faces are followed across those gaps (boxes where the truth is) without a full scan each time."""
    gaps = [1, 2, 12, 1, 3, 14, 2, 1, 10, 2, 13, 1, 2, 11, 1, 3, 12, 2]
    before = dict(bf.tracker.counts)
    n = hits = total = 0
    for g in [0, *gaps]:
        n += g
        s = demo_shot(640, 480, n / 30)
        faces = bf.detect(s.image, stream="shared", frame=n)
        found, false, which = match([f.box for f in faces], s.boxes, 0.5)
        assert false == 0, (n, [f.box for f in faces], s.boxes)
        assert all(iou_xywh(faces[j].box, s.boxes[k]) > 0.7 for k, j in enumerate(which) if j >= 0), n
        hits, total = hits + found, total + len(s.boxes)
    assert hits == total
    assert bf.tracker.counts["full_scans"] - before["full_scans"] == 1  # the first frame only
    # a seek (a jump of more than max_gap) is still scanned at once: test_streams_are_independent_and_a_jump...


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_a_face_that_walks_in_is_found_within_rescan_frames_and_one_that_leaves_leaves_no_box(
        bf: BlazeFaceDetector, room: np.ndarray) -> None:
    with_face = room.copy()
    truth = paste_face(with_face, 1, 420.0, 230.0, 90.0)
    frames = [room] * 5 + [with_face] * 12 + [room] * 3
    seen = []
    for i, img in enumerate(frames):
        faces = bf.detect(img, stream="walk-in", frame=i)
        seen.append([f.box for f in faces])
    assert all(not s for s in seen[:5]), seen[:5]
    first = next(i for i, s in enumerate(seen) if s)
    assert 5 <= first < 5 + bf.tracker.rescan, seen
    for s in seen[first:17]:  # once found, followed on every frame
        assert len(s) == 1 and iou_xywh(s[0], truth) > 0.6, s
    assert all(not s for s in seen[17:]), seen[17:]  # gone at once: no stale mask on an empty room


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_the_gate_skips_scans_of_a_still_picture_but_not_of_a_changing_one(room: np.ndarray) -> None:
    det = BlazeFaceDetector(rescan=4)
    img = room.copy()
    paste_face(img, 0, 200.0, 240.0, 80.0)
    for i in range(20):  # the same picture: after the first full scan, every due pass skipped but each 4th turn
        assert len(det.detect(img, stream="still", frame=i)) == 1
    c = dict(det.tracker.counts)
    assert c["full_scans"] == 1 and c["scans_skipped"] >= 2 * c["scan_passes"] > 0, c
    noisy = np.random.default_rng(0)
    for i in range(20, 40):  # sensor noise (±4 grey levels) is not a change
        jitter = noisy.integers(-4, 5, img.shape)
        assert len(det.detect(np.clip(img + jitter, 0, 255).astype(np.uint8), stream="still", frame=i)) == 1
    c2 = {k: v - c[k] for k, v in det.tracker.counts.items()}
    assert c2["scans_skipped"] >= 2 * c2["scan_passes"], c2
    # the same scene with the lights dimmed: every due pass runs
    dim = (img * 0.7).astype(np.uint8)
    for i in range(40, 44):
        det.detect(dim, stream="still", frame=i)
    c3 = {k: v - c[k] - c2[k] for k, v in det.tracker.counts.items()}
    assert c3["scan_passes"] >= 1 and c3["scans_skipped"] == 0, c3
    off = BlazeFaceDetector(rescan=4)
    off.tracker.change_level = None
    for i in range(12):
        off.detect(img, stream="still", frame=i)
    assert off.tracker.counts["scans_skipped"] == 0 and off.tracker.counts["scan_passes"] >= 5


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_a_face_lost_by_following_is_looked_for_at_the_next_scan_even_in_a_still_picture(
        room: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    det = BlazeFaceDetector(rescan=4, landmarks=False)  # following by the detector's region pass (no face mesh)
    img = room.copy()
    truth = paste_face(img, 2, 300.0, 240.0, 90.0)
    for i in range(6):
        assert len(det.detect(img, stream="s", frame=i)) == 1
    real = det.impl.detect_rois
    monkeypatch.setattr(det.impl, "detect_rois", lambda *a, **k: [None] * len(a[1]))  # following misses it once
    assert det.detect(img, stream="s", frame=6) == []
    monkeypatch.setattr(det.impl, "detect_rois", real)
    before = dict(det.tracker.counts)
    back = next(i for i in range(7, 7 + 4) if det.detect(img, stream="s", frame=i))  # the next due pass runs
    c = {k: v - before[k] for k, v in det.tracker.counts.items()}
    assert c["scan_passes"] >= 1 and c["scans_skipped"] == 0 and back <= 8, (back, c)
    faces = det.detect(img, stream="s", frame=back + 1)
    assert len(faces) == 1 and iou_xywh(faces[0].box, truth) > 0.6


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_streams_are_independent_and_a_jump_in_frame_numbers_rescans(bf: BlazeFaceDetector,
                                                                     room: np.ndarray) -> None:
    a, b = room.copy(), room.copy()
    ta = paste_face(a, 0, 200.0, 240.0, 80.0)
    tb = paste_face(b, 2, 450.0, 220.0, 110.0)
    for i in range(3):
        fa = bf.detect(a, stream="A", frame=i)
        fb = bf.detect(b, stream="B", frame=i)
        assert len(fa) == 1 and iou_xywh(fa[0].box, ta) > 0.6 and len(fb) == 1 and iou_xywh(fb[0].box, tb) > 0.6
    # stream A now shows B's picture after a seek (frame 100): it is scanned at once, not followed from A's face
    faces = bf.detect(b, stream="A", frame=100)
    assert len(faces) == 1 and iou_xywh(faces[0].box, tb) > 0.6
    # no stream: every picture is a photo of its own (folders of unrelated images)
    assert len(bf.detect(a)) == 1 and len(bf.detect(b)) == 1
    # grey and BGRA frames are followed too
    for i, img in enumerate((cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(a, cv2.COLOR_BGR2BGRA)) * 6):
        faces = bf.detect(img, stream="formats", frame=i)
        assert len(faces) == 1 and iou_xywh(faces[0].box, ta) > 0.6, (i, img.shape)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_both_engines_give_the_same_faces(room: np.ndarray) -> None:
    img = room.copy()
    truths = [paste_face(img, k, x, 240.0, w, roll) for k, x, w, roll in
              ((0, 120.0, 40.0, 0.0), (1, 320.0, 120.0, 15.0), (2, 520.0, 70.0, -10.0))]
    ort = BlazeFaceDetector(engine="onnxruntime")
    tor = BlazeFaceDetector(engine="torch")
    assert ort.impl.engine.name == "onnxruntime" and tor.impl.engine.name == "torch"
    fo, ft = ort.detect(img), tor.detect(img)
    assert match([f.box for f in fo], truths, 0.5)[:2] == (3, 0)
    assert len(fo) == len(ft)
    for a, b in zip(sorted(fo, key=lambda f: f.box), sorted(ft, key=lambda f: f.box), strict=True):
        assert np.abs(np.subtract(a.box, b.box)).max() <= 1 and abs(a.score - b.score) < 1e-3
        assert np.abs(np.subtract(a.keypoints, b.keypoints)).max() < 0.5


@pytest.mark.unit
@pytest.mark.timeout(30)
def test_regions_past_the_frame_edge_read_as_black_and_find_the_face_inside(room: np.ndarray) -> None:
    img = room.copy()
    truth = paste_face(img, 0, 60.0, 240.0, 100.0)  # at the left edge: its region reaches past the frame
    det = BlazeFaceDetector().impl
    raw = det.detect(img)
    assert len(raw) == 1
    box = raw[0].box
    cx, cy, w = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0]
    (got, nothing) = det.detect_rois(img, [(cx + 5, cy - 5, 1.8 * w), (600.0, 60.0, 80.0)], 48, 0.5)
    assert got is not None and nothing is None
    assert iou_xywh(tuple(got.box[:2]) + tuple(got.box[2:] - got.box[:2]),
               tuple(box[:2]) + tuple(box[2:] - box[:2])) > 0.8
    assert truth[0] < got.keypoints[2, 0] < truth[0] + truth[2]  # nose tip inside the face


@pytest.mark.unit
@pytest.mark.timeout(30)
def test_bad_engine_or_model_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(DogfilterError, match="unknown BlazeFace engine"):
        blazeface.load_engine("short", "tensorrt")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DogfilterError, match="cannot load BlazeFace ONNX model") as e:
        blazeface.load_engine("short", "onnxruntime", bad)
    assert "\n" not in str(e.value)
    with pytest.raises(DogfilterError, match="not found"):
        blazeface.load_engine("short", "onnxruntime", tmp_path / "missing.onnx")
    # the full-range export is a valid model, but not the short-range network: its outputs would decode wrongly
    with pytest.raises(DogfilterError, match="not the short-range BlazeFace"):
        blazeface.load_engine("short", "onnxruntime", blazeface.ONNX["full"])
