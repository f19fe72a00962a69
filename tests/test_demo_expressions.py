"""The demo source's faces change expression, and the real models read them as intended (common/scene/).

The measurement is ``tools/check_demo_expressions.py`` (BlazeFace finds the faces in still frames, the default
emotion model classifies its crops); run it for the full table.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from dogfilter.common.scene import EXPRESSIONS, LOOP_SECONDS, DemoScene
from dogfilter.common.scene.expressions import EXPRESSION_SPECS, invert_pushes, push_field
from dogfilter.common.scene.motion import expression_at
from dogfilter.common.scene.sprites import people


@functools.cache
def _source(faces: int = 3) -> DemoScene:
    return DemoScene(640, 480, faces)


def _schedule(faces: int, step: float = 0.05) -> list[list[str]]:
    """``expressions(t)`` over one loop, every ``step`` seconds."""
    src = _source(faces)
    return [src.expressions(k * step) for k in range(round(LOOP_SECONDS / step))]


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_expressions_follow_the_face_boxes() -> None:
    src = _source()
    seen = set()
    for k in range(200):
        t = k * 0.1
        names = src.expressions(t)
        assert len(names) == len(src.face_boxes(t))
        assert set(names) <= set(EXPRESSIONS)
        assert len(set(names)) == len(names), (t, names)  # no two faces show the same expression
        assert names == src.expressions(t + LOOP_SECONDS)
        seen.update(names)
    assert seen == set(EXPRESSIONS)


@pytest.mark.unit
@pytest.mark.timeout(60)
@pytest.mark.parametrize("faces", [1, 2, 3])
def test_every_ten_seconds_show_all_expressions(faces: int) -> None:
    step = 0.05
    frames = _schedule(faces, step)
    window = round(10.0 / step)
    n = len(frames)
    for start in range(n):  # every 10 s window, wrapping around the loop
        shown = set()
        for k in range(start, start + window):
            shown.update(frames[k % n])
        assert shown == set(EXPRESSIONS), (start * step, shown)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_each_expression_holds_long_enough() -> None:
    # Per face (its index in the paths, visible or not): runs of one intended expression last >= 1.5 s.
    step = 0.05
    n = round(LOOP_SECONDS / step)
    for face in range(3):
        names = []
        for k in range(n):
            current, previous, mix = expression_at(face, k * step)
            names.append(current if mix >= 0.5 else previous)
        # Rotate so that the sequence starts at a switch, then measure the runs.
        first = next(k for k in range(n) if names[k] != names[k - 1])
        names = names[first:] + names[:first]
        runs, length = [], 1
        for a, b in zip(names, names[1:], strict=False):
            if a == b:
                length += 1
            else:
                runs.append(length)
                length = 1
        runs.append(length)
        assert min(runs) * step >= 1.5, (face, runs)


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_expression_warps_do_not_fold() -> None:
    """The smooth moves keep the face in one piece (positive Jacobian), and their inverse is exact."""
    ys, xs = np.mgrid[0:420:2, 100:430:2].astype(np.float64)
    for name in EXPRESSIONS:
        pushes = EXPRESSION_SPECS[name].pushes
        if not pushes:
            continue
        dx, dy, dxx, dxy, dyx, dyy = push_field(xs, ys, pushes)
        det = (1.0 + dxx) * (1.0 + dyy) - dxy * dyx
        assert det.min() > 0.2, name
        px, py = invert_pushes(xs + dx, ys + dy, pushes)
        assert np.abs(px - xs).max() < 0.5 and np.abs(py - ys).max() < 0.5, name


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_expressions_change_the_face_only() -> None:
    """Same head, same place: only the face inside it changes (hat, hair and outline stay)."""
    for pyramids in people():
        neutral = pyramids[0][-1]
        for other in pyramids[1:]:
            sprite = other[-1]
            assert sprite.face_width == neutral.face_width
            # The face-box centre lands on the same photo pixel.
            a = neutral.bgra[round(neutral.center[1]) - 120:round(neutral.center[1]) - 80]
            b = sprite.bgra[round(sprite.center[1]) - 120:round(sprite.center[1]) - 80]
            assert a.shape == b.shape
            assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() < 2.0  # the hat does not move


@pytest.mark.system
@pytest.mark.timeout(120)
def test_models_read_the_intended_expressions() -> None:
    pytest.importorskip("onnxruntime")
    from tools.check_demo_expressions import format_table, measure

    tallies = measure("blazeface", step=0.1)
    print(format_table(tallies, "blazeface, every 0.1 s"))
    # Measured (every 0.1 s, 150 faces each, none missed): 99-100 % of each expression's faces read as intended
    # (argmax of single frames, cross-fade frames included), >= 96 % for every person, mean probability of the
    # intended class 0.72-0.78.  Margins below that, for other machines' numerics:
    for name, tally in tallies.items():
        assert tally.faces >= 140, (name, tally.faces, tally.missed)
        assert tally.share(name) >= 0.9, (name, tally.share(name))
        assert tally.mean_p >= 0.6, (name, tally.mean_p)
        for person, (right, total) in tally.by_person.items():
            assert right >= 0.8 * total, (name, person, right, total)
