"""The stages' handlers on their own, without sockets or processes: what each decides, message in, messages out."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import numpy as np
import pytest

from dogfilter.common.media.sources import Source
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.wire import Message
from dogfilter.common.vision.identity import FaceIdentities
from dogfilter.services.capture import Capture, FileFeed
from dogfilter.services.composite import Reorder

pytestmark = pytest.mark.timeout(30)


class Frames(Source):
    kind = "video"

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def read(self) -> np.ndarray | None:
        self.left -= 1
        return np.zeros((8, 8, 3), np.uint8) if self.left >= 0 else None


def _capture(feeds: list, **kw) -> Capture:
    return Capture(feeds, Sealer(b"k" * 32), Counters("capture", logging.getLogger("t")), mode=kw.pop("mode", "file"),
                   fps={}, size=None, **kw)


def test_streams_take_turns_and_each_ends_with_its_own_sealed_end() -> None:
    cap = _capture([FileFeed("a", Frames(3), 1), FileFeed("b", Frames(1), 1)])
    got = []
    while (m := cap.next_message(time.monotonic())) is not None:
        got.append((m.stream, m.kind, m.frame))
        assert cap.sealer.check(m)
    assert got[:2] == [("a", "frame", 0), ("b", "frame", 0)]  # turns
    assert [g for g in got if g[0] == "a"] == [("a", "frame", 0), ("a", "frame", 1), ("a", "frame", 2), ("a", "eos", 3)]
    assert ("b", "eos", 1) in got and cap.finished()


def test_the_flow_limiter_admits_frames_as_display_says_they_left() -> None:
    cap = _capture([FileFeed("a", Frames(100), 1)], mode="live", max_in_flight=3, max_age_s=0.2)
    sent = []
    while cap.admit(time.monotonic()) and len(sent) < 10:
        sent.append(cap.next_message(time.monotonic()))
    assert len(sent) == 10  # display has not spoken yet: no limit (never a stall when it cannot)
    cap.on_return(Message("done", "a", 0, 1))
    assert not cap.admit(time.monotonic())  # now it does: 9 on their way, over 3
    for m in sent[1:8]:
        cap.on_return(Message("done", m.stream, m.frame, m.epoch))
    assert cap.admit(time.monotonic())  # 2 left on their way
    time.sleep(0.3)
    cap.next_message(time.monotonic())
    assert cap.admit(time.monotonic() + 0.3) and len(cap.in_flight) <= 1  # unheard-of frames expire


def test_reorder_waits_for_a_missing_frame_then_goes_on_and_counts_it_lost() -> None:
    r = Reorder(None, gap_s=0.1)
    for f in (0, 2, 3):
        r.add(f, SimpleNamespace(waiting=False, deadline=0.0))
    assert len(r.pop_ready(0.0)) == 1 and r.pop_ready(0.05) == []  # frame 1 is awaited
    assert len(r.pop_ready(0.2)) == 2 and r.lost == 1 and r.lost_frames == [(1, 1)]
    assert not r.add(2, SimpleNamespace(waiting=False, deadline=0.0))  # its turn has passed


def test_a_face_learns_by_label_so_two_models_never_mix() -> None:
    ids = FaceIdentities(smooth=0.5)
    (t,) = ids.assign(0, [[10, 10, 50, 50]])
    ids.teach(t, ["happy", "sad"], [0.9, 0.1])
    ids.teach(t, ["sad", "happy", "surprise"], [0.1, 0.6, 0.3])  # another model, another order
    assert t.emotion[0] == "happy" and t.probs["happy"] == pytest.approx(0.75)
    (t2,) = ids.assign(1, [[12, 11, 50, 50]])
    assert t2 is t and ids.known([11, 10, 50, 50])
