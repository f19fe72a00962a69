"""A pass too big for one frame's budget, cut into overlapping parts spread over frames (common/vision/blazeface.py
``tiles``, common/vision/facetrack.py): the parts cover the pass, each face is found whole in one part (on the seams
too), no frame runs more than its budget of network input, and the gate looks at each part's own region.

Pictures are made here: the demo's room at 1280×720 with faces pasted on it (common/scene/group.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from dogfilter.common.scene import DemoScene
from dogfilter.common.scene.group import paste_face
from dogfilter.common.vision.blazeface import TILE_MARGIN, BlazeFace, Detection, Tile
from dogfilter.common.vision.boxes import iou, iou_xywh
from dogfilter.common.vision.detectors import BlazeFaceDetector
from dogfilter.common.vision.facetrack import StreamState

W, H = 1280, 720
BUDGET = 200_000  # FaceTracker's default max_scan_pixels


@pytest.fixture(scope="module")
def room() -> np.ndarray:
    return DemoScene(W, H, faces=0).render(0.0)


@pytest.fixture(scope="module")
def bf() -> BlazeFace:
    return BlazeFaceDetector().impl  # min_face as the detect stage has it


def padded(bf: BlazeFace, t: Tile) -> int:
    a = bf.net.align
    return -(-(t.x1 - t.x0) // a) * a * (-(-(t.y1 - t.y0) // a) * a)


@pytest.mark.unit
@pytest.mark.timeout(30)
def test_a_pass_over_the_budget_is_cut_into_overlapping_parts_that_cover_it(bf: BlazeFace) -> None:
    # 640×480: every pass fits, nothing is cut (the schedule is the passes themselves)
    small = bf.tiles(480, 640, BUDGET)
    assert [(t.side, t.lo, t.hi) for t in small] == bf.passes(480, 640)
    assert all(t.margin == 0 and (t.x0, t.y0) == (0, 0) for t in small)
    assert bf.tiles(H, W, None) == [t for t in bf.tiles(H, W, 10**9)]  # no budget: each pass whole
    units = bf.tiles(H, W, BUDGET)
    by_pass: dict[int, list[Tile]] = {}
    for t in units:
        by_pass.setdefault(t.side, []).append(t)
    assert [side for side, _, _ in bf.passes(H, W)] == list(by_pass)  # the passes' order kept
    (side0, _, hi0), *_, (last, _, _) = bf.passes(H, W)
    assert len(by_pass[side0]) > 1 and len(by_pass[last]) == 1  # the coarsest pass is never cut
    for side, parts in by_pass.items():
        if len(parts) == 1:
            continue
        assert all(padded(bf, t) <= BUDGET for t in parts), parts
        rw, rh = max(t.x1 for t in parts), max(t.y1 for t in parts)
        cover = np.zeros((rh, rw), np.int32)
        for t in parts:
            cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert cover.min() >= 1  # the whole pass is read
        # any box the pass keeps (at most hi wide) lies margin inside some part: try every position on a grid
        w = int(np.ceil(hi0))
        for x in range(0, rw - w, 7):
            for y in range(0, rh - w, 7):
                assert any(x >= (t.x0 + t.margin if t.x0 else 0) and x + w <= (t.x1 - t.margin if t.x1 < rw else rw)
                           and y >= (t.y0 + t.margin if t.y0 else 0) and y + w <= (t.y1 - t.margin if t.y1 < rh
                                                                                     else rh)
                           for t in parts), (side, x, y)
    assert all(t.margin == TILE_MARGIN for t in by_pass[side0])


def _xyxy(box: tuple[float, float, float, float]) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], np.float32)


def _found(dets: list[Detection], truths: list[tuple[float, float, float, float]]) -> list[int]:
    """How many detections lie on each true face (the network's box inside the pasted, Haar-style one)."""
    return [sum(iou(d.box, _xyxy(t)) > 0.3 for d in dets) for t in truths]


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_faces_on_the_seams_are_found_once_as_a_whole_pass_finds_them(bf: BlazeFace, room: np.ndarray) -> None:
    units = bf.tiles(H, W, BUDGET)
    first = [t for t in units if t.side == units[0].side]
    seams_x = sorted({x for t in first for x in bf.region(t, H, W)[0::2]} - {0, W})
    seams_y = sorted({y for t in first for y in bf.region(t, H, W)[1::2]} - {0, H})
    assert seams_x and seams_y
    img = room.copy()
    truths = []  # small and large faces centred on each seam and where the parts overlap; one on a crossing
    for k, (x, y, w) in enumerate([(seams_x[0], 140.0, 44.0), (seams_x[-1], 580.0, 60.0),
                                   ((seams_x[0] + seams_x[-1]) / 2, 130.0, 150.0), (250.0, seams_y[0], 56.0),
                                   (1050.0, seams_y[-1], 120.0), (seams_x[0], seams_y[-1], 70.0)]):
        truths.append(paste_face(img, k % 3, float(x), float(y), w))
    whole = bf.scan(img)
    tiled = bf.scan_tiles(img, units)
    assert _found(whole, truths) == [1] * len(truths), (whole, truths)
    assert _found(tiled, truths) == [1] * len(truths), (tiled, truths)
    assert len(tiled) == len(whole) == len(truths)  # nothing else: no half face at a part's edge
    for d in tiled:
        best = max(whole, key=lambda o: iou(o.box, d.box))
        assert iou(best.box, d.box) > 0.85 and abs(best.score - d.score) < 0.1


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_no_frame_runs_more_than_its_budget_and_a_new_face_is_still_found_within_rescan_frames(
        room: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    det = BlazeFaceDetector(rescan=8)
    det.tracker.change_level = None  # every due unit runs: the worst case for a frame
    sizes: list[int] = []
    real = det.impl.engine

    def engine(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.shape[2] > 64:  # a scan's input (following runs 48×48 regions, one batch)
            sizes.append(x.shape[2] * x.shape[3])
        return real(x)

    monkeypatch.setattr(det.impl, "engine", engine)
    with_face = room.copy()
    truth = paste_face(with_face, 1, 700.0, 420.0, 48.0)  # small: only the finest pass (cut) sees it
    frames = [room] * 5 + [with_face] * 12
    seen, per_frame = [], []
    for i, img in enumerate(frames):
        sizes.clear()
        seen.append(det.detect(img, stream="walk-in", frame=i))
        per_frame.append(sum(sizes))
    whole = max(per_frame[:1])  # frame 0: the full scan, every pass whole
    assert whole > 2 * BUDGET and max(per_frame[1:]) <= BUDGET, per_frame
    first = next(i for i, s in enumerate(seen) if s)
    assert 5 <= first < 5 + det.tracker.rescan, [len(s) for s in seen]
    assert all(len(s) == 1 and iou_xywh(s[0].box, truth) > 0.6 for s in seen[first:]), seen[first:]


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_the_gate_runs_only_the_parts_whose_region_changed(room: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    det = BlazeFaceDetector(rescan=6)
    tracker = det.tracker
    units = tracker.units(H, W)
    parts = [j for j, t in enumerate(units) if t.margin > 0]
    assert len(parts) >= 2
    img = room.copy()
    ran: list[list[int]] = []
    real = tracker._gate

    def gate(st: StreamState, due: list[int], bgr: np.ndarray, units: list[Tile]) -> list[int]:
        out = real(st, due, bgr, units)  # which units the gate lets through
        ran.append(out)
        return out

    monkeypatch.setattr(tracker, "_gate", gate)
    for i in range(7):  # a still room: after the full scan, the due units are skipped
        det.detect(img, stream="s", frame=i)
    assert not any(ran), ran
    # something moves in the bottom right corner only: the parts reading it run at their turn, the others do not
    x0, y0, x1, y1 = 1180, 640, 1260, 700
    regions = {j: det.impl.region(units[j], H, W) for j in parts}
    changed = [j for j, (rx0, ry0, rx1, ry1) in regions.items() if rx0 < x1 and x0 < rx1 and ry0 < y1 and y0 < ry1]
    assert changed and len(changed) < len(parts)
    ran.clear()
    moving = img.copy()
    moving[y0:y1, x0:x1] = 255 - moving[y0:y1, x0:x1]
    for i in range(7, 13):  # one turn of every unit
        det.detect(moving, stream="s", frame=i)
    done = {j for r in ran for j in r}
    assert set(changed) <= done and not (set(parts) - set(changed)) & done, (changed, done)
