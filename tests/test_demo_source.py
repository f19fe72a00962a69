"""Tests for the built-in demo video source (common/scene/)."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest

from dogfilter.common.media.sources import DemoSource
from dogfilter.common.scene import LOOP_SECONDS, DemoScene
from dogfilter.common.scene.cache import CachedScene

Box = tuple[int, int, int, int]


@functools.cache
def _source(width: int = 640, height: int = 480, faces: int = 3) -> DemoScene:
    """Shared sources (building one cuts the head out and draws the room)."""
    return DemoScene(width, height, faces)


@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    assert not cascade.empty(), path
    return cascade


def _detect(frame: np.ndarray) -> list[Box]:
    """OpenCV tutorial face detection (equalised grey, 1.3 / 4 / 30x30)."""
    grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    found = _cascade().detectMultiScale(
        grey, scaleFactor=1.3, minNeighbors=4, minSize=(30, 30))
    return [tuple(int(v) for v in box) for box in found]


def _iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_render_is_deterministic() -> None:
    src = _source()
    a = src.render(1.23)
    b = src.render(1.23)
    assert np.array_equal(a, b)
    # A freshly built source renders the very same frame.
    assert np.array_equal(a, DemoScene(640, 480).render(1.23))
    assert src.face_boxes(1.23) == src.face_boxes(1.23)


# Frames rendered before the scene moved into its own package, stored as 1/8-size thumbnails (INTER_AREA) in
# tests/data/scene/: a change to the painter that moves a face, changes an expression or the room shows here, while
# the last-bit rounding of OpenCV's SIMD paths, which differs between CPUs, does not (a cross-fade at 2.6 s; one face;
# an empty room; 1280x720). `python tests/test_demo_source.py` writes them again.
GOLDEN = [(640, 480, 3, 0.0), (640, 480, 3, 1.23), (640, 480, 3, 2.6), (640, 480, 3, 7.77), (640, 480, 3, 13.4),
          (640, 480, 3, 19.9), (320, 240, 1, 0.5), (320, 240, 1, 11.1), (1280, 720, 3, 5.05), (400, 300, 0, 3.0)]
GOLDEN_DIR = Path(__file__).parent / "data" / "scene"


def _thumb(width: int, height: int, faces: int, t: float) -> np.ndarray:
    frame = _source(width, height, faces).render(t)
    return cv2.resize(frame, (width // 8, height // 8), interpolation=cv2.INTER_AREA)


def _golden_path(width: int, height: int, faces: int, t: float) -> Path:
    return GOLDEN_DIR / f"{width}x{height}_{faces}_{t:g}.png"


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_frames_match_their_golden_thumbnails() -> None:
    for key in GOLDEN:
        stored = cv2.imread(str(_golden_path(*key)), cv2.IMREAD_COLOR)
        assert stored is not None, _golden_path(*key)
        diff = np.abs(_thumb(*key).astype(np.int16) - stored.astype(np.int16))
        assert diff.mean() < 0.5 and diff.max() <= 12, (key, float(diff.mean()), int(diff.max()))
    assert _source().face_boxes(2.6) == [(191, 188, 93, 93), (122, 166, 99, 98), (378, 144, 193, 194)]
    assert _source().expressions(2.6) == ["sad", "happy", "neutral"]


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_different_times_give_different_frames() -> None:
    src = _source()
    f0 = src.render(0.0)
    for t in (0.1, 1.0, 5.0, 12.3):
        ft = src.render(t)
        assert not np.array_equal(f0, ft), t
    # Consecutive frames at 30 fps differ, but only a little (smooth motion).
    a, b = src.render(4.0), src.render(4.0 + 1 / 30)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert diff.max() > 0
    assert (diff.max(axis=2) > 40).mean() < 0.05


@pytest.mark.unit
@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (320, 240),
                                  (480, 640)])
def test_shape_and_dtype(size: tuple[int, int]) -> None:
    width, height = size
    src = _source(width, height)
    for t in (0.0, 7.7, 19.9, 123.4):
        frame = src.render(t)
        assert frame.shape == (height, width, 3)
        assert frame.dtype == np.uint8
        assert frame.flags["C_CONTIGUOUS"]
        for x, y, w, h in src.face_boxes(t):
            assert 0 <= x and 0 <= y and w > 0 and h > 0
            assert x + w <= width and y + h <= height


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_render_returns_a_fresh_array() -> None:
    src = _source()
    frame = src.render(2.0)
    frame[:] = 0
    assert src.render(2.0).any()


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_animation_loops() -> None:
    src = _source()
    a = src.render(3.0).astype(np.int16)
    b = src.render(3.0 + LOOP_SECONDS).astype(np.int16)
    assert np.abs(a - b).max() <= 1
    assert src.face_boxes(3.0) == src.face_boxes(3.0 + LOOP_SECONDS)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_faces_move_and_change_size() -> None:
    src = _source()
    b0, b3 = src.face_boxes(0.0), src.face_boxes(3.0)
    assert len(b0) == len(b3) == 3
    centres0 = sorted((x + w / 2, y + h / 2) for x, y, w, h in b0)
    centres3 = sorted((x + w / 2, y + h / 2) for x, y, w, h in b3)
    moved = [np.hypot(c0[0] - c3[0], c0[1] - c3[1])
             for c0, c3 in zip(centres0, centres3, strict=True)]
    assert max(moved) > 20
    assert sorted(w for _, _, w, _ in b0) != sorted(w for _, _, w, _ in b3)
    # Over the loop the face width spans roughly 70-200 px at 640x480.
    widths = [w for k in range(100)
              for _, _, w, _ in src.face_boxes(k * LOOP_SECONDS / 100)]
    assert min(widths) < 85
    assert max(widths) > 180


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_face_size_scales_with_frame() -> None:
    small, large = _source(640, 480), _source(1280, 720)
    w_small = max(w for k in range(40) for _, _, w, _ in small.face_boxes(k / 2))
    w_large = max(w for k in range(40) for _, _, w, _ in large.face_boxes(k / 2))
    assert w_large == pytest.approx(1.5 * w_small, rel=0.05)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_fewer_faces() -> None:
    for n in (0, 1, 2):
        src = DemoScene(640, 480, faces=n)
        assert len(src.face_boxes(5.0)) == n
        assert src.render(5.0).shape == (480, 640, 3)
    with pytest.raises(ValueError):
        DemoScene(640, 480, faces=4)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_empty_room_has_no_faces() -> None:
    for size in ((640, 480), (1280, 720)):
        frame = DemoScene(*size, faces=0).render(0.0)
        assert _detect(frame) == []


@pytest.mark.system
@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_haar_finds_the_real_faces(size: tuple[int, int]) -> None:
    src = _source(*size)
    n = 40
    with_one = with_two = 0
    for k in range(n):
        t = k * LOOP_SECONDS / n
        frame = src.render(t)
        truth = src.face_boxes(t)
        found = _detect(frame)
        if found:
            with_one += 1
            for box in found:
                best = max((_iou(box, g) for g in truth), default=0.0)
                assert best >= 0.3, (t, box, truth)
        if len(found) >= 2:
            with_two += 1
    assert with_one >= 0.9 * n, with_one
    assert with_two >= 0.5 * n, with_two


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_kept_frames_are_the_painted_frames() -> None:
    """The render cache (common/scene/cache.py) gives the very pixels of painting, kept or not, in a new array."""
    scene = _source()
    cached = CachedScene(scene)
    for t in (0.0, 1.5, 2.6, 7.77, 13.4, 19.9, 1.5 + LOOP_SECONDS):
        first, again = cached.render(t), cached.render(t)
        assert np.array_equal(first, scene.render(t)) and np.array_equal(again, first), t
        again[:] = 0  # the caller's own array: what is kept does not change
        assert np.array_equal(cached.render(t), first)
    assert cached.misses == 6 and cached.hits == 15  # 1.5 s and a loop later: one frame
    assert 0 < cached.nbytes < 6 * 640 * 480 * 3 // 2  # the faces' patches, not whole frames


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_the_cache_keeps_to_its_budget() -> None:
    scene = _source(320, 240)
    cached = CachedScene(scene, budget_bytes=200_000)
    times = [k / 10 for k in range(40)]
    for t in times * 2:
        assert np.array_equal(cached.render(t), scene.render(t)), t
    assert cached.full and 0 < cached.nbytes <= 200_000 and cached.hits > 0


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_a_demo_source_shows_the_loop_again_and_warms_it_live() -> None:
    src = DemoSource((160, 120), fps=2.0)  # 40 frames a loop
    assert src.per_loop == round(LOOP_SECONDS * 2)
    scene = src.scene.scene
    frames = [src.read() for _ in range(src.per_loop + 3)]
    for i in (0, 1, 17, src.per_loop - 1):
        assert np.array_equal(frames[i], scene.render(i / 2.0)), i
    for i in range(3):
        assert np.array_equal(frames[src.per_loop + i], frames[i])
    live = DemoSource((160, 120), fps=2.0)
    assert live.scene is src.scene  # one cache per size in a process, shared by its demo streams
    assert np.array_equal(live.render_at(5 + src.per_loop), frames[5])
    assert src.scene._warming is not None
    src.scene._warming.join(30)
    assert len(src.scene._frames) == src.per_loop
    assert DemoSource((160, 120), fps=29.97).per_loop == 0  # frames never repeat: painted, not kept


if __name__ == "__main__":
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for key in GOLDEN:
        cv2.imwrite(str(_golden_path(*key)), _thumb(*key))


@pytest.mark.system
@pytest.mark.timeout(60)
def test_a_process_that_ends_while_the_demo_loop_is_being_made_ends_cleanly() -> None:
    """The warm-up thread is inside OpenCV most of the time: the process must not end under it (C++ then aborts with
    "terminate called without an active exception")."""
    import subprocess
    import sys

    code = ("from dogfilter.common.media.sources import DemoSource\n"
            "DemoSource((640, 480), 30.0).render_at(0)\n")  # live: the rest of the loop is being made as we leave
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr
