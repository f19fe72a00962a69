"""Source kinds in one registry (common/media/sources.SOURCES): a --source spec names a kind, the kind opens it and
says what capture, the launcher and the one-shot path need to know of it."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from dogfilter.commands import inline
from dogfilter.common.media import sources
from dogfilter.common.media.sources import SOURCES, Opening, Source, open_source, source_class
from dogfilter.services import capture

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def test_each_spec_names_its_kind(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    want = {"demo": "demo", "pipewire:": "pipewire", "pipewire:cam": "pipewire", "0": "camera", "12": "camera",
            str(tmp_path): "images", str(tmp_path / "a.png"): "images", str(tmp_path / "clip.mp4"): "video",
            "demo2": "video"}
    assert {spec: source_class(spec) for spec in want} == {spec: SOURCES[kind] for spec, kind in want.items()}
    assert list(SOURCES)[-1] == "video"  # anything else: a video file (which says why not, if it is none)
    assert {cls.kind for cls in SOURCES.values()} == set(SOURCES) - {"pipewire"} | {"camera"}


def test_what_each_kind_tells_capture() -> None:
    demo, video = sources.DemoSource, sources.VideoSource
    assert demo.own_size and demo.on_demand and not demo.paces_itself
    assert sources.CameraSource.paces_itself and sources.PipeWireSource.paces_itself
    assert not video.paces_itself and not video.own_size and not video.on_demand and not sources.ImagesSource.on_demand


def test_frames_in_comes_from_the_kind(tmp_path: Path) -> None:
    frame = np.full((32, 48, 3), 90, np.uint8)
    for name in ("1.png", "2.jpg"):
        cv2.imwrite(str(tmp_path / name), frame)
    (tmp_path / "notes.txt").write_text("not a picture")
    clip = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for _ in range(5):
        w.write(frame)
    w.release()
    assert inline.frames_in(str(tmp_path)) == 2
    assert inline.frames_in(str(tmp_path / "1.png")) == 1
    assert inline.frames_in(str(clip)) == 5
    assert inline.frames_in("demo") is None and inline.frames_in("0") is None


class Counting(Source):
    """A kind made up here: ``count:N`` gives N grey frames."""

    kind = "count"

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.startswith("count:")

    @classmethod
    def open(cls, spec: str, how: Opening) -> Source:
        return cls(int(spec.split(":", 1)[1]))

    @classmethod
    def frames_in(cls, spec: str) -> int | None:
        return int(spec.split(":", 1)[1])

    def read(self) -> np.ndarray | None:
        self.left -= 1
        return np.zeros((16, 16, 3), np.uint8) if self.left >= 0 else None


def test_a_new_kind_is_one_class_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "SOURCES", {"count": Counting, **SOURCES})
    src = open_source("count:3")
    assert isinstance(src, Counting) and inline.frames_in("count:3") == 3
    o = argparse.Namespace(stream=[], source=["count:2"], size=None, fps=0.0, loop=False, max_pixels=1 << 20,
                           frames=0, mode="file")
    (feed,), _ = capture.open_feeds(o, wake=None)
    assert isinstance(feed.source, Counting)
    assert [feed.take(0.0) is not None for _ in range(3)] == [True, True, False]
