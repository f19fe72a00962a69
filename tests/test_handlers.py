"""The stages' handlers on their own, without sockets or processes: what each decides, message in, messages out,
driven by a fake clock (``now`` is passed in: common/stage.py)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from dogfilter.common.media.sources import Source
from dogfilter.common.transport.metrics import Counters
from dogfilter.common.transport.seal import Sealer
from dogfilter.common.transport.wire import Face, Message
from dogfilter.common.vision.identity import FaceIdentities
from dogfilter.services.capture import Capture, FileFeed
from dogfilter.services.composite import Reorder

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


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
    got, now = [], 100.0
    while sent := cap.tick(now):
        (m,) = sent
        now += 0.01  # the fake clock: the stream that waited longest goes next
        got.append((m.stream, m.kind, m.frame))
        assert cap.sealer.check(m)
    assert got[:2] == [("a", "frame", 0), ("b", "frame", 0)]  # turns
    assert [g for g in got if g[0] == "a"] == [("a", "frame", 0), ("a", "frame", 1), ("a", "frame", 2), ("a", "eos", 3)]
    assert ("b", "eos", 1) in got and cap.finished()


def test_the_flow_limiter_admits_frames_as_display_says_they_left() -> None:
    cap = _capture([FileFeed("a", Frames(100), 1)], mode="live", max_in_flight=3, max_age_s=0.2)
    sent = cap.tick(100.0, room=10)
    assert len(sent) == 10  # display has not spoken yet: no limit (never a stall when it cannot)
    assert cap.on_message(Message("done", "a", 0, 1), 100.01) == []
    assert not cap.admit(100.01) and cap.tick(100.01, room=10) == []  # now it does: 9 on their way, over 3
    for m in sent[1:8]:
        cap.on_message(Message("done", m.stream, m.frame, m.epoch), 100.02)
    assert cap.admit(100.02)  # 2 left on their way
    assert len(cap.tick(100.02, room=10)) == 1  # and one more may go: 3
    assert cap.admit(100.26) and len(cap.in_flight) == 1  # unheard of for max_age_s + 50 ms: expired
    assert cap.admit(100.3) and not cap.in_flight


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


def test_iou_of_xywh_boxes_is_the_iou_of_their_corners_exactly() -> None:
    """The identities' IoU on the wire's (x, y, w, h) boxes, computed inline, is :func:`boxes.iou` of the corners,
    to the last bit, for ints, floats and numpy numbers, overlapping, touching, apart, nested and empty."""
    from dogfilter.common.vision.boxes import iou, iou_xywh

    rng = np.random.default_rng(20)
    cases = [((0, 0, 10, 10), (0, 0, 10, 10)), ((0, 0, 10, 10), (10, 0, 10, 10)), ((0, 0, 10, 10), (50, 50, 5, 5)),
             ((0, 0, 100, 100), (10, 10, 5, 5)), ((3, 3, 0, 0), (3, 3, 0, 0)), ((-20, -5, 40, 30), (-10, 0, 15, 50))]
    for _ in range(2000):
        a = [*rng.integers(-50, 600, 2), *rng.integers(0, 200, 2)]
        b = [a[0] + rng.uniform(-80, 80), a[1] + int(rng.integers(-80, 80)), *rng.uniform(0, 200, 2)]
        cases.append((tuple(a), tuple(b)))
    for a, b in cases:
        corners = [tuple(float(v) for v in (x, y, x + w, y + h)) for x, y, w, h in
                   ((float(v) for v in box) for box in (a, b))]
        assert iou_xywh(a, b) == iou(*corners), (a, b)
    assert iou_xywh((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)


@pytest.mark.parametrize("live", [True, False])
def test_a_followed_face_is_read_again_every_reclassify_ms_live_and_every_frame_in_file_mode(live: bool) -> None:
    """Live: a face whose emotion is known is sent to the classifier again only every ``reclassify_s`` (3 of 9
    frames at 30 frames/s and 100 ms); its mask keeps its reading in between, and that is not a late answer. A new
    face beside it is asked about at once. File mode: every face of every frame."""
    from dogfilter.common.transport.protocol import Peer
    from dogfilter.common.vision.masks import Painter, load_masks
    from dogfilter.services.composite import Composite, Settings

    sealer = Sealer(b"k" * 32)
    comp = Composite(Painter(load_masks([])), sealer, Counters("composite", logging.getLogger("t")),
                     Settings(live=live, reclassify_s=0.1, deadline_s=1.0))
    worker = Peer(b"w", 8, {"classes": ["happy", "sad", "surprise", "neutral"]}, 0.0)
    asked, painted = [], []
    for i in range(12):
        now = i * 0.033
        boxes = [(40, 30, 50, 50)] + ([(200, 30, 40, 40)] if i >= 9 else [])  # a second face walks in at 9
        msg = sealer.seal(Message("detections", "cam0", i, 1, faces=[Face(box=b) for b in boxes],
                                  image=np.zeros((120, 260, 3), np.uint8), crops=np.zeros((len(boxes), 48, 48),
                                                                                          np.uint8)))
        assert comp.on_message(msg, now) == []
        job = comp.next_job()
        if job is not None:
            asked.append((i, [f.box[0] for f in job.msg.faces]))
            assert len(job.msg.crops) == len(job.msg.faces)
            comp.on_reply(worker, job, Message("emotions", "cam0", i, 1, faces=[
                Face(box=f.box, probs=[0.9, 0.05, 0.03, 0.02]) for f in job.msg.faces]), now)
        (out,) = comp.tick(now)
        painted += [(f.emotion, f.stale) for f in out.faces]
    if live:  # 0: new; 4 and 8: 132 ms after it was last asked about; 9: the new face only
        assert asked == [(0, [40]), (4, [40]), (8, [40]), (9, [200])]
        assert comp.counters["faces_read_earlier"] == 6 + 1 + 4
    else:
        assert asked == [(i, [40] + ([200] if i >= 9 else [])) for i in range(12)]
        assert comp.counters["faces_read_earlier"] == 0
    assert set(painted) == {("happy", False)}  # every face wears its emotion's mask, none marked late


def test_counters_of_several_processes_of_a_stage_are_added_up_and_bounded() -> None:
    """Two detect workers report their own counters on the frames they pass (``detect@worker``): the display shows
    their sum, not whichever spoke last; ever-new workers and stage names cannot grow its statistics."""
    from dogfilter.common.media.sinks import MAX_STAGES, MAX_WORKERS, StreamStats

    s = StreamStats()
    for i in range(10):
        worker = f"detect@detect.{1 + i % 2}@host:{100 + i % 2}"
        s.absorb(Message("composited", meta={"stats": {worker: {"frames": 5 * (i // 2 + 1), "faces": 3},
                                                      "composite": {"frames": i + 1}}}))
    assert s.stages["detect"] == {"frames": 25 + 25, "faces": 6} and s.stages["composite"] == {"frames": 10}
    for i in range(200):  # hostile or just many restarts
        s.absorb(Message("composited", meta={"stats": {f"detect@w{i}": {"frames": 1}, f"stage{i}": {"x": 1}}}))
    assert len(s._workers["detect"]) == MAX_WORKERS and len(s.stages) <= MAX_STAGES
    assert s.stages["detect"] == {"frames": MAX_WORKERS}  # the workers heard last


@pytest.mark.parametrize(("reclassify_s", "most_frames"), [(0.0, 1), (0.1, 6)])
def test_a_change_of_expression_reaches_the_mask_within_a_few_frames(reclassify_s: float, most_frames: int) -> None:
    """Live at 30 frames/s: reading every frame, the mask follows a new expression at the next frame; reading a
    known face every 100 ms (the default), within 6 frames (0.2 s) whatever the phase of the change."""
    from dogfilter.common.transport.protocol import Peer
    from dogfilter.common.vision.masks import Painter, load_masks
    from dogfilter.services.composite import Composite, Settings

    happy, surprise = [0.9, 0.03, 0.05, 0.02], [0.05, 0.03, 0.9, 0.02]
    lags = []
    for change in range(20, 28):
        sealer = Sealer(b"k" * 32)
        comp = Composite(Painter(load_masks([])), sealer, Counters("composite", logging.getLogger("t")),
                         Settings(live=True, reclassify_s=reclassify_s, deadline_s=1.0))
        worker = Peer(b"w", 8, {"classes": ["happy", "sad", "surprise", "neutral"]}, 0.0)
        for i in range(60):
            face = Face(box=(40, 30, 50, 50))
            assert not comp.on_message(sealer.seal(Message("detections", "cam0", i, 1, faces=[face],
                                                          image=np.zeros((120, 160, 3), np.uint8),
                                                          crops=np.zeros((1, 48, 48), np.uint8))), i / 30)
            job = comp.next_job()
            if job is not None:
                comp.on_reply(worker, job, Message("emotions", "cam0", i, 1, faces=[
                    Face(box=face.box, probs=surprise if i >= change else happy)]), i / 30)
            (out,) = comp.tick(i / 30)
            if i >= change and out.faces[0].emotion == "surprise":
                lags.append(i - change)
                break
    assert len(lags) == 8 and max(lags) <= most_frames, lags


def test_without_a_classify_worker_jobs_go_with_their_frames_and_the_queue_stays_bounded() -> None:
    """No worker takes jobs: each frame is painted by its deadline (its face's last known emotion, else the default)
    and its job dropped, counted; a frame dropped from a full buffer takes its job with it too."""
    from dogfilter.common.vision.masks import Painter, load_masks
    from dogfilter.services.composite import MAX_BUFFERED, Composite, Settings

    sealer = Sealer(b"k" * 32)
    comp = Composite(Painter(load_masks([])), sealer, Counters("composite", logging.getLogger("t")),
                     Settings(live=True, reclassify_s=0.0, deadline_s=0.04))
    shown = 0
    for i in range(3000):
        now = i * 0.033
        msg = sealer.seal(Message("detections", "cam0", i, 1, faces=[Face(box=(10, 10, 40, 40))],
                                  image=np.zeros((120, 160, 3), np.uint8), crops=np.zeros((1, 48, 48), np.uint8)))
        comp.on_message(msg, now)
        shown += len(comp.tick(now))
        assert len(comp.queue) <= 2
    assert shown >= 2990 and comp.counters["jobs_dropped"] >= 2990
    for i in range(3000, 3000 + 2 * MAX_BUFFERED):  # frames that never reach their deadline: the buffer drops them
        msg = sealer.seal(Message("detections", "cam0", i, 1, faces=[Face(box=(10, 10, 40, 40))],
                                  image=np.zeros((120, 160, 3), np.uint8), crops=np.zeros((1, 48, 48), np.uint8)))
        comp.on_message(msg, 0.0)
        comp.tick(0.0)
    assert len(comp.queue) <= MAX_BUFFERED + 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("host", [None, "tcp://10.77.0.2:5551"])
def test_detect_forgets_an_ended_stream_of_any_host(host) -> None:
    """A stream's end drops its tracked faces at once, also on a worker that serves several hosts (--connect),
    where each host's streams are tracked under their own key."""
    from dogfilter.common.vision.detectors import create_detector
    from dogfilter.services.detect import Detect

    det = Detect(create_detector("blazeface"), Counters("detect", logging.getLogger("t")), live=False,
                 max_age_s=0.2, detect_size=640)
    tracker = det.detector.tracker
    frame = Message("frame", "cam0", 0, 1, image=np.zeros((240, 320, 3), np.uint8))
    det.on_message(frame, 0.0, host)
    assert len(tracker.streams) == 1
    det.on_message(Message("eos", "cam0", 1, 1), 0.0, host)
    assert len(tracker.streams) == 0


# ------------------------------------------------------------------ one shape, a fake clock: every stage's handler


def _counters(stage: str) -> Counters:
    return Counters(stage, logging.getLogger("t"))


def _frame(kind: str, frame: int, captured: float, epoch: int = 1, faces: int = 1, **kw) -> Message:
    """A message about frame ``frame`` of cam0, captured (so its age counts from) ``captured`` on the fake clock."""
    return Message(kind, "cam0", frame, epoch, ts={"capture": captured}, image=np.zeros((120, 160, 3), np.uint8),
                   faces=[Face(box=(10 + 50 * i, 10, 40, 40)) for i in range(faces)], **kw)


def test_every_stage_handler_has_the_one_shape() -> None:
    """on_message(msg, now), tick(now) and wait_s(now) on all five handlers (common/stage.py)."""
    import inspect

    from dogfilter.common.stage import NAMES, Handler, stage

    for name in NAMES:
        m = stage(name).module()
        cls = getattr(m, name.capitalize())
        for entry in ("on_message", "tick", "wait_s"):
            params = list(inspect.signature(getattr(cls, entry)).parameters)
            want = ["self", "msg", "now"] if entry == "on_message" else ["self", "now"]
            assert params[:len(want)] == want, (name, entry, params)
            assert entry in Handler.__dict__


def test_capture_demo_frames_are_due_by_the_clock_and_stamped_with_it() -> None:
    """The demo's frames are due by the fake clock (30 frames/s): none twice, the instants nobody took counted as
    dropped; each is sealed with its capture time; wait_s says when the next one is due."""
    from dogfilter.common.media.sources import DemoSource
    from dogfilter.services.capture import DemoFeed

    feed = DemoFeed("cam0", DemoSource((64, 48), 30.0), 1, fps=30.0)
    cap = _capture([feed], mode="live")
    (first,) = cap.tick(1000.0)
    assert first.kind == "frame" and "capture" in first.ts and cap.sealer.check(first)
    assert cap.tick(1000.01) == [] and cap.wait_s(1000.01) == pytest.approx(1 / 30 - 0.01)
    (late,) = cap.tick(1000.0 + 3.5 / 30)  # frames 1 and 2 were due while nobody took them
    assert late.frame == 1 and cap.tick(1000.0 + 3.9 / 30) == []
    assert feed.counts["frames_dropped"] == 2


def test_capture_file_streams_end_and_returns_prove_workers() -> None:
    cap = _capture([FileFeed("a", Frames(1), 1)], mode="live", max_in_flight=2)
    frame, eos = cap.tick(5.0, room=5)
    assert (frame.kind, eos.kind) == ("frame", "eos") and cap.finished()
    cap.sent_to(frame, b"worker-1")
    assert cap.on_message(Message("done", "a", 0, 1), 5.1) == [] and cap.proven == [b"worker-1"]
    cap.on_message(Message("done", "a", 0, 1), 5.2)  # twice: not known any more
    assert cap.counters["unknown_acks"] == 1 and cap.proven == [b"worker-1"]


class StubDetector:
    """One face wherever it looks (the handler's decisions, not the detector, are under test)."""

    name = "stub"

    def detect(self, bgr, stream=None, frame=None):
        return [Face(box=(10, 10, 40, 40))]


@pytest.mark.parametrize("live", [True, False])
def test_detect_skips_a_frame_older_than_max_age_at_now_live_only(live: bool) -> None:
    from dogfilter.services.detect import Detect

    det = Detect(StubDetector(), _counters("detect"), live=live, max_age_s=0.2, detect_size=640)
    (fresh,) = det.on_message(_frame("frame", 0, captured=10.0, meta={"job": 3}), now=10.19)
    assert fresh.kind == "detections" and len(fresh.faces) == 1 and fresh.crops.shape == (1, 48, 48)
    assert ("job" in fresh.meta) != live  # live: no confirmation asked of composite
    (old,) = det.on_message(_frame("frame", 1, captured=10.0), now=10.21)
    if live:
        assert old.kind == "skip" and old.meta["reason"] == "stale" and det.counters["stale_frames"] == 1
    else:  # file mode: every frame, however long it waited
        assert old.kind == "detections" and det.counters["stale_frames"] == 0
    assert det.tick(11.0) == [] and det.wait_s(11.0) > 0


class StubClassifier:
    classes = ["happy", "sad"]

    def __init__(self) -> None:
        self.batches: list[int] = []

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        self.batches.append(len(crops))
        return np.tile([0.75, 0.25], (len(crops), 1))


def _job(job: int, faces: int) -> Message:
    return Message("crops", "cam0", job, 1, faces=[Face(box=(0, 0, 48, 48)) for _ in range(faces)],
                   crops=np.zeros((faces, 48, 48), np.uint8), meta={"job": job})


def test_classify_runs_a_batch_when_it_is_full_or_its_wait_is_over() -> None:
    """A batch waits ``batch_wait_s`` from its first job for others (by the clock passed in), or goes at once when
    it holds ``max_batch`` faces; a job that would overfill it starts the next one; one reply per job, in order."""
    from dogfilter.services.classify import Classify

    clf = StubClassifier()
    cls = Classify(clf, _counters("classify"), "w", max_batch=4, batch_wait_s=0.01)
    assert cls.on_message(_job(1, 1), now=50.0) == [] and cls.wait_s(50.004) == pytest.approx(0.006)
    assert cls.tick(50.009) == [] and clf.batches == []  # still waiting for company
    (reply,) = cls.tick(50.01)
    assert reply.kind == "emotions" and reply.meta["job"] == 1 and reply.faces[0].probs == [0.75, 0.25]
    assert cls.wait_s(50.01) > 0.5  # nothing waits: the loop may sleep
    assert cls.on_message(_job(2, 2), now=51.0) == []
    assert [r.meta["job"] for r in cls.on_message(_job(3, 2), now=51.0)] == [2, 3]  # 4 faces: full, at once
    assert cls.on_message(_job(4, 3), now=51.0) == []
    assert [r.meta["job"] for r in cls.on_message(_job(5, 2), now=51.001)] == [4]  # 5 would overfill it
    assert [r.meta["job"] for r in cls.tick(51.02)] == [5]
    assert clf.batches == [1, 4, 3, 2]


def _composite(live: bool = True, **kw):
    from dogfilter.common.vision.masks import Painter, load_masks
    from dogfilter.services.composite import Composite, Settings

    sealer = Sealer(b"k" * 32)
    settings = Settings(live=live, deadline_s=0.04, reclassify_s=0.0, max_age_s=0.2, **kw)
    return Composite(Painter(load_masks([])), sealer, _counters("composite"), settings), sealer


def test_composite_paints_a_frame_when_its_deadline_passes_at_a_tick() -> None:
    """No reply: the frame waits until ``now`` reaches its deadline (40 ms), then is painted with the default
    emotion (marked stale); a reply before the deadline lets it go at once, with its emotion."""
    from dogfilter.common.transport.protocol import Peer

    comp, sealer = _composite()
    assert comp.on_message(sealer.seal(_frame("detections", 0, 20.0, crops=np.zeros((1, 48, 48), np.uint8))),
                           now=20.0) == []
    assert comp.tick(20.039) == [] and comp.wait_s(20.0) == pytest.approx(0.04)
    (out,) = comp.tick(20.04)
    assert out.kind == "composited" and out.faces[0].emotion == "neutral" and out.faces[0].stale
    comp.on_message(sealer.seal(_frame("detections", 1, 20.05, crops=np.zeros((1, 48, 48), np.uint8))), now=20.05)
    job = comp.next_job()
    worker = Peer(b"w", 8, {"classes": ["happy", "sad"]}, 0.0)
    comp.on_reply(worker, job, Message("emotions", "cam0", 1, 1, faces=[Face(box=(10, 10, 40, 40),
                                                                              probs=[0.9, 0.1])]), now=20.06)
    (out,) = comp.tick(20.06)  # before its deadline: its emotions are back
    assert out.frame == 1 and out.faces[0].emotion == "happy" and not out.faces[0].stale


def test_composite_drops_a_frame_too_old_at_the_tick_it_would_be_painted() -> None:
    """Live means live: a frame whose deadline passed while the loop was held up is not painted once it is older
    than max_age at ``now`` (counted); the next, fresh one is."""
    comp, sealer = _composite()
    crops = np.zeros((1, 48, 48), np.uint8)
    comp.on_message(sealer.seal(_frame("detections", 0, 30.0, crops=crops)), now=30.1)  # deadline 30.14
    assert comp.tick(30.13) == []
    assert comp.tick(30.21) == [] and comp.counters["stale_frames"] == 1 and comp.counters["frames"] == 0
    comp.on_message(sealer.seal(_frame("detections", 1, 30.2, crops=crops)), now=30.21)
    (out,) = comp.tick(30.25)
    assert out.frame == 1 and comp.counters["frames"] == 1


def test_composite_file_mode_refuses_a_frame_too_far_ahead_with_busy_and_keeps_old_frames() -> None:
    """File mode: a frame ``FILE_WINDOW`` ahead of the next one due is refused (Busy: its sender sends it again),
    and no frame is too old, whatever the clock says."""
    from dogfilter.common.stage import Busy
    from dogfilter.services.composite import FILE_WINDOW

    comp, sealer = _composite(live=False)
    skip = _frame("skip", FILE_WINDOW, 0.0, faces=0)
    skip.image = None
    with pytest.raises(Busy):
        comp.on_message(sealer.seal(skip), now=100.0)
    assert comp.counters["busy"] == 1
    comp.on_message(sealer.seal(_frame("detections", 0, 0.0, faces=0)), now=100.0)  # no face: nothing to ask
    (out,) = comp.tick(1000.0)
    assert out.frame == 0 and comp.counters["stale_frames"] == 0


def test_composite_and_display_drop_frames_of_an_older_epoch_and_reset_on_a_newer_one() -> None:
    """The epoch guard (common/stage.py epoch_order), the same in both: a restarted capture (a newer epoch) resets
    the stream; a frame from before the restart is dropped, counted."""
    from dogfilter.services.display import Display

    comp, sealer = _composite()
    disp = Display(sealer, _counters("display"), live=True, max_age_s=0.2, exit_after=[])
    for epoch, frame, now in ((5, 0, 1.0), (6, 0, 1.1), (5, 1, 1.2)):
        comp.on_message(sealer.seal(_frame("detections", frame, now, epoch=epoch, faces=0)), now=now)
        disp.on_message(sealer.seal(_frame("composited", frame, now, epoch=epoch, faces=0)), now=now)
    assert comp.streams["cam0"].epoch == 6 and disp.epochs["cam0"] == 6
    assert comp.counters["stale_frames"] == 1 and disp.counters["stale_frames"] == 1


@pytest.mark.parametrize("live", [True, False])
def test_display_drops_a_frame_older_than_max_age_at_now_live_only(live: bool) -> None:
    from dogfilter.services.display import Display

    sealer = Sealer(b"k" * 32)
    disp = Display(sealer, _counters("display"), live=live, max_age_s=0.2, exit_after=[])
    (shown,) = disp.on_message(sealer.seal(_frame("composited", 0, 40.0)), now=40.19)
    assert shown.frame == 0 and disp.total.frames == 1
    got = disp.on_message(sealer.seal(_frame("composited", 1, 40.0)), now=40.3)
    assert (got == [] and disp.counters["stale_frames"] == 1) if live else [m.frame for m in got] == [1]
    assert disp.on_message(Message("composited", "cam0", 2, 1), now=40.3) == []  # no seal: dropped
    assert disp.counters["unsealed"] == 1
    end = sealer.seal(Message("eos", "cam0", 2, 1, meta={"last": 1}))
    assert disp.on_message(end, now=40.4) == [] and disp.finished() and disp.tick(41.0) == []


def test_a_stop_while_a_live_recording_writes_a_frame_keeps_the_recording(tmp_path) -> None:
    """SIGTERM while the video writer is in its write (the handler runs right after it returns, as Python runs
    handlers): the frame is written and counted before the stop, so the recording that a live stop commits holds
    every frame it counts.  Without that, one frame more than counted failed the commit's check and the
    recording was thrown away (the virtual-camera test's flake)."""
    import signal

    import cv2

    from dogfilter.common import service
    from dogfilter.common.media.sinks import Recorder, finish
    from dogfilter.services.display import record

    class SignalledInWrite:  # the writer, with SIGTERM arriving while it writes
        def __init__(self, writer: cv2.VideoWriter) -> None:
            self.writer = writer

        def write(self, img: np.ndarray) -> None:
            self.writer.write(img)
            signal.raise_signal(signal.SIGTERM)

        def release(self) -> None:
            self.writer.release()

    path = tmp_path / "rec.avi"
    rec = Recorder(str(path))
    frame = _frame("composited", 0, 1.0)
    record({None: rec}, frame)
    rec.writer = SignalledInWrite(rec.writer)  # type: ignore[assignment]  # a stand-in for cv2.VideoWriter
    before = signal.signal(signal.SIGTERM, service.interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            record({None: rec}, frame)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert rec.n == 2
    finish([rec], complete=True)  # what the live display does at a stop
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    cap.release()


def test_a_stop_inside_an_uninterrupted_step_comes_right_after_it_unless_the_step_fails() -> None:
    import signal

    from dogfilter.common import service
    from dogfilter.common.errors import DogfilterError

    done = []
    before = signal.signal(signal.SIGTERM, service.interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with service.uninterrupted():
                signal.raise_signal(signal.SIGTERM)
                with service.uninterrupted():  # nested: the stop waits for the outer step
                    done.append(1)
                done.append(2)
        assert done == [1, 2]
        with pytest.raises(DogfilterError, match="disk full"):  # the step's own error goes on
            with service.uninterrupted():
                signal.raise_signal(signal.SIGTERM)
                raise DogfilterError("disk full")
        with service.uninterrupted():  # nothing pending is left behind
            pass
        with pytest.raises(KeyboardInterrupt):  # outside a step: at once
            signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)


def test_composite_smooths_each_faces_pose_and_anchors_in_frame_order() -> None:
    """A still face whose detected pose and points shake by a few units frame to frame (as a face mesh's do under
    camera noise) is painted steadier: the composite's smoother (one per face) takes out most of the shake."""
    from dogfilter.common.transport.wire import Anchors, Pose

    comp, sealer = _composite()
    rng = np.random.default_rng(5)
    raw, painted = [], []
    for i in range(40):
        yaw = 20.0 + float(rng.normal(0, 2.0))
        eye = 30.0 + float(rng.normal(0, 1.0))
        msg = _frame("detections", i, 40.0 + i / 30, crops=np.zeros((1, 48, 48), np.uint8))
        msg.faces[0].pose = Pose(yaw, 0.0, 0.0, (0.0, 0.0, 50.0))
        msg.faces[0].anchors = Anchors.make([(eye, 25.0), (eye + 20, 25.0)] + [(40.0, 40.0)] * 8, 0.1, 0.3, 0.3, 0.3)
        raw.append((yaw, eye))
        comp.on_message(sealer.seal(msg), now=40.0 + i / 30)
        for out in comp.tick(40.0 + i / 30 + 0.05):
            f = out.faces[0]
            assert f.pose is not None and f.anchors is not None
            painted.append((f.pose.yaw, f.anchors.right_eye[0]))
    assert len(painted) == 40
    r, p = np.array(raw)[10:], np.array(painted)[10:]
    assert (p.std(0) < 0.5 * r.std(0)).all(), (r.std(0), p.std(0))
    assert np.allclose(p.mean(0), r.mean(0), atol=1.0)  # steadier, not elsewhere
