"""Mask painting: the tutorial's placement and white-background rule, RGBA blending, clipping at the edge."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision import blend, masks

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def tutorial_apply_mask(face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The tutorial's Step 4 function, verbatim."""
    mask_h, mask_w, _ = mask.shape
    face_h, face_w, _ = face.shape
    factor = min(face_h / mask_h, face_w / mask_w)
    new_mask_w = int(factor * mask_w)
    new_mask_h = int(factor * mask_h)
    new_mask_shape = (new_mask_w, new_mask_h)
    resized_mask = cv2.resize(mask, new_mask_shape)
    face_with_mask = face.copy()
    non_white_pixels = (resized_mask < 250).all(axis=2)
    off_h = int((face_h - new_mask_h) / 2)
    off_w = int((face_w - new_mask_w) / 2)
    face_with_mask[off_h: off_h + new_mask_h, off_w: off_w + new_mask_w][non_white_pixels] = \
        resized_mask[non_white_pixels]
    return face_with_mask


def _tutorial_scene(assets, name: str) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    frame = cv2.copyMakeBorder(cv2.imread(str(assets / "child.png")), 120, 40, 40, 40, cv2.BORDER_REFLECT)
    box = (60, 150, 200, 210)
    x, y, w, h = box
    y0, y1, x0, x1 = int(y - 0.25 * h), int(y + 0.75 * h), x, x + w
    expected = frame.copy()
    expected[y0:y1, x0:x1] = tutorial_apply_mask(frame[y0:y1, x0:x1], cv2.imread(str(assets / name)))
    return frame, box, expected


@pytest.mark.parametrize("name", ["dog.png", "dalmation.png", "sheepdog.png"])
def test_white_background_mask_matches_the_tutorial_pixel_for_pixel(assets, tmp_path, name: str) -> None:
    frame, box, expected = _tutorial_scene(assets, name)
    flat = tmp_path / "white_bg.png"  # what the tutorial's cv2.imread sees: 3 channels, white background
    cv2.imwrite(str(flat), cv2.imread(str(assets / name)))
    ours = frame.copy()
    assert masks.paint(ours, box, masks.load_mask(flat))
    assert np.array_equal(ours, expected)
    assert (ours != frame).sum() > 1000


@pytest.mark.parametrize("name", ["dog.png", "dalmation.png", "sheepdog.png"])
def test_tutorial_rgba_png_is_blended_by_its_alpha_in_the_same_place(assets, name: str) -> None:
    frame, box, expected = _tutorial_scene(assets, name)
    ours = frame.copy()
    assert masks.paint(ours, box, masks.load_mask(assets / name))
    changed_tut, changed_ours = (expected != frame).any(axis=2), (ours != frame).any(axis=2)
    overlap = (changed_tut & changed_ours).sum() / changed_tut.sum()
    assert overlap > 0.97  # same pixels painted; only anti-aliased edges differ
    assert np.abs(ours.astype(int) - expected).mean() < 2.0


def _solid_rgba(color: tuple[int, int, int], size: int = 100) -> masks.Mask:
    bgr = np.zeros((size, size, 3), np.uint8)
    bgr[:] = color
    alpha = np.zeros((size, size), np.uint8)
    alpha[:, : size // 2] = 255  # left half opaque, right half transparent
    return masks.Mask("solid", bgr, alpha)


def test_rgba_mask_is_blended_by_its_alpha_in_the_tutorials_region() -> None:
    frame = np.full((300, 300, 3), 50, np.uint8)
    box = (100, 100, 80, 80)  # region: rows 80..160, cols 100..180
    assert masks.paint(frame, box, _solid_rgba((0, 0, 255)))
    assert (frame[85:155, 105:135] == (0, 0, 255)).all()  # opaque half painted
    assert (frame[85:155, 145:175] == 50).all()  # transparent half untouched
    assert (frame[:78] == 50).all() and (frame[162:] == 50).all()  # nothing outside the region


def test_face_at_the_frame_edge_gets_a_clipped_mask_not_none() -> None:
    frame = np.full((200, 200, 3), 50, np.uint8)
    box = (-30, -10, 100, 100)  # region starts left of and above the frame
    assert masks.paint(frame, box, _solid_rgba((255, 0, 0)))
    assert (frame[0:60, 0:15] == (255, 0, 0)).all()


def test_product_masks_are_rgba_and_distinct() -> None:
    table = masks.default_masks()
    assert {"happy", "sad", "surprise"} <= set(table)
    seen = set()
    for emotion in ("happy", "sad", "surprise"):
        m = table[emotion]
        assert m.alpha is not None and 0.05 < (m.alpha > 128).mean() < 0.7, emotion
        seen.add(m.bgr[m.alpha > 128].mean(axis=0).round().tobytes())
    assert len(seen) == 3


def test_resized_masks_stay_within_their_memory_bound_and_a_rolled_mask_is_painted_in_place() -> None:
    """Faces of ever-new sizes (and a few huge ones) keep at most CACHE_BYTES of resized masks; the mask turned with
    the head covers the same place as the upright one, turned."""
    mask = masks.load_mask(masks.MASK_DIR / "dog.png")
    for side in (*range(40, 400, 3), 3000, 3100, 60):
        mask.resized(side, side)
    held = sum(s.nbytes for s in mask._cache.values())
    assert held <= masks.CACHE_BYTES and len(mask._cache) <= 64 and (60, 60) in mask._cache
    upright, rolled = (np.full((300, 300, 3), 127, np.uint8) for _ in range(2))
    masks.paint(upright, (100, 120, 100, 100), mask)
    masks.paint(rolled, (100, 120, 100, 100), mask, roll_deg=90.0)
    x0, y0, x1, y1 = masks.mask_region((100, 120, 100, 100))  # square, as the mask is: it turns about its centre
    m_up, m_roll = (np.any(f[y0:y1, x0:x1] != 127, axis=2) for f in (upright, rolled))
    turned = np.rot90(m_up, k=-1)  # positive roll: clockwise on screen
    assert (m_roll & turned).sum() / (m_roll | turned).sum() > 0.85


def _painted_before_20(frame: np.ndarray, box: tuple[int, int, int, int], mask: masks.Mask, roll: float) -> None:
    """The painter as it was before issue #20 (a float blend of a fresh copy; a turned mask warped whole into the
    square that holds it): the reference the in-place painter is held to."""
    x0, y0, x1, y1 = masks.mask_region(box)
    rw, rh = x1 - x0, y1 - y0
    mh, mw = mask.shape
    factor = min(rh / mh, rw / mw)
    nw, nh = int(factor * mw), int(factor * mh)
    ox, oy = x0 + int((rw - nw) / 2), y0 + int((rh - nh) / 2)
    if abs(roll) > 0.5:
        src = mask.level(nw, nh, masks.ROLL_UPSCALE)
        sh, sw = src.shape[:2]
        side = int(np.ceil(np.hypot(nw, nh)))
        t = np.radians(-roll)
        lin = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) @ np.diag([nw / sw, nh / sh])
        M = np.hstack([lin, (np.array([side / 2, side / 2]) - lin @ np.array([sw / 2, sh / 2]))[:, None]])
        r = cv2.warpAffine(src, M, (side, side), flags=cv2.INTER_LINEAR)
        bgr, a = cv2.cvtColor(r, cv2.COLOR_BGRA2BGR), r[:, :, 3].astype(np.float32) * np.float32(1 / 255)
        ox, oy, nw, nh = ox - (side - nw) // 2, oy - (side - nh) // 2, side, side
    else:
        bgra = cv2.resize(mask.level(nw, nh, 1.0), (nw, nh), interpolation=cv2.INTER_AREA)
        bgr, a = np.ascontiguousarray(bgra[:, :, :3]), bgra[:, :, 3].astype(np.float32) / 255.0
    H, W = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, ox), max(0, oy), min(W, ox + nw), min(H, oy + nh)
    roi = frame[fy0:fy1, fx0:fx1]
    m_a = a[fy0 - oy:fy1 - oy, fx0 - ox:fx1 - ox]
    roi[:] = cv2.blendLinear(bgr[fy0 - oy:fy1 - oy, fx0 - ox:fx1 - ox], roi, m_a, 1.0 - m_a)


def test_in_place_painter_matches_the_painter_before_it(assets) -> None:
    """#20 paints in place with precomputed blend terms, warping only the turned mask's box: on the tutorial's
    photo, with the product's and the tutorial's RGBA masks, upright and turned, whole and clipped at the frame's
    edge, each pixel is within 2 of the float blend before it (integer rounding), bar under 1 % of a turned mask's
    pixels, at its edges, where the warp's 1/32-pixel steps round the other way (within 16: one step on each axis)."""
    frame = cv2.copyMakeBorder(cv2.imread(str(assets / "child.png")), 120, 40, 40, 40, cv2.BORDER_REFLECT)
    table = [*masks.default_masks().values(), masks.load_mask(assets / "dalmation.png")]
    boxes = [(60, 150, 200, 210), (150, 200, 67, 67), (-40, -20, 150, 150), (230, 300, 120, 120)]
    painted = 0
    for i, mask in enumerate(table):
        for box in boxes:
            for roll in (0.0, 0.4, 0.7, 5.0, -16.0, 33.0, 90.0):
                ours, before = frame.copy(), frame.copy()
                assert masks.paint(ours, box, mask, roll_deg=roll + i)
                _painted_before_20(before, box, mask, roll + i)
                diff = np.abs(ours.astype(int) - before).max(axis=2)
                assert diff.max() <= 16, (mask.name, box, roll)
                assert (diff > 2).sum() <= 0.01 * (before != frame).any(axis=2).sum(), (mask.name, box, roll)
                painted += int((ours != frame).any(axis=2).sum())
    assert painted > 100_000


def test_bad_masks_give_one_clear_error(tmp_path) -> None:
    with pytest.raises(DogfilterError, match="mask not found"):
        masks.load_mask(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(DogfilterError, match="not a readable image"):
        masks.load_mask(tmp_path / "junk.png")
    cv2.imwrite(str(tmp_path / "white.png"), np.full((20, 20, 3), 255, np.uint8))
    with pytest.raises(DogfilterError, match="blank"):
        masks.load_mask(tmp_path / "white.png")


def test_roll_from_keypoints() -> None:
    assert masks.roll_from_keypoints([[10, 10], [30, 10], [20, 20]]) == 0.0
    assert masks.roll_from_keypoints([[10, 10], [30, 30]]) == pytest.approx(45.0)  # left eye lower: head tilted
    assert masks.roll_from_keypoints(None) == 0.0
    assert masks.roll_from_keypoints([[1, 2]]) == 0.0
    assert masks.roll_from_keypoints([["a", 2], [3, 4]]) == 0.0


def _turned_with_numpy_matrices(frame: np.ndarray, bgra: np.ndarray, w: int, h: int, ox: int, oy: int,
                                deg: float) -> None:
    """``_paint_turned`` as it was before its warp's numbers were computed in plain floats (numpy 2×2 matrices)."""
    sh, sw = bgra.shape[:2]
    side = int(np.ceil(np.hypot(w, h)))
    t = np.radians(-deg)
    c, s = np.cos(t), np.sin(t)
    lin = np.array([[c, s], [-s, c]]) @ np.diag([w / sw, h / sh])
    M = np.hstack([lin, (np.array([side / 2, side / 2]) - lin @ np.array([sw / 2, sh / 2]))[:, None]])
    sx, sy = ox - (side - w) // 2, oy - (side - h) // 2
    hx, hy = (abs(c) * w + abs(s) * h) / 2 + 1, (abs(s) * w + abs(c) * h) / 2 + 1
    bx0, bx1 = max(0, int(np.floor(side / 2 - hx))), min(side, int(np.ceil(side / 2 + hx)))
    by0, by1 = max(0, int(np.floor(side / 2 - hy))), min(side, int(np.ceil(side / 2 + hy)))
    H, W = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, sx + bx0), max(0, sy + by0), min(W, sx + bx1), min(H, sy + by1)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    M[:, 2] -= (fx0 - sx, fy0 - sy)
    r = cv2.warpAffine(bgra, M, (fx1 - fx0, fy1 - fy0), flags=cv2.INTER_LINEAR)
    blend.blend(frame[fy0:fy1, fx0:fx1], *blend.blend_terms(r))


def test_turned_mask_is_the_same_picture_as_with_numpy_matrices() -> None:
    """The turned mask's warp is computed in plain floats (cheaper than numpy on 2×2 matrices, per face per frame):
    the same numbers, so the same pictures, bit for bit, over rolls, sizes and positions (inside and clipped)."""
    rng = np.random.default_rng(20)
    mask = masks.load_mask(masks.MASK_DIR / "dog.png")
    frame = rng.integers(0, 256, (240, 320, 3), np.uint8)
    for _ in range(300):
        w, h = (int(v) for v in rng.integers(8, 200, 2))
        ox, oy = int(rng.integers(-100, 300)), int(rng.integers(-100, 220))
        deg = float(rng.uniform(-90, 90))
        src = mask.level(w, h, masks.ROLL_UPSCALE)
        ours, ref = frame.copy(), frame.copy()
        masks._paint_turned(ours, src, w, h, ox, oy, deg)
        _turned_with_numpy_matrices(ref, src, w, h, ox, oy, deg)
        assert np.array_equal(ours, ref), (w, h, ox, oy, deg)
