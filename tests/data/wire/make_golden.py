"""The golden messages of the wire (``tests/test_wire_golden.py`` checks them): run it to write them again, after a
change of the format that was meant (and a new ``wire.SCHEMA``)::

    .venv/bin/python tests/data/wire/make_golden.py

Each ``NAME.msgpack`` holds one multipart message as a msgpack array of its frames (header, then parts).
``valid-*``: one message of every kind, as the stages send them; decoding it must give ``VALID[name]`` and encoding
that must give the stored frames again, byte for byte.  ``invalid-*``: hostile or broken input, each built apart from
the wire's encoder (plain msgpack), with the fault it must be counted as and a piece of the reason (``INVALID``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from dogfilter.commands.bench_faults import bomb_jpeg
from dogfilter.common.transport import wire
from dogfilter.common.transport.wire import Face, Message

HERE = Path(__file__).resolve().parent
EPOCH = 1_700_000_000_000  # capture's start, ms: in the past of any clock that reads these
SEAL = "00112233445566778899aabbccddeeff"
TS = {"capture": 1_700_000_000.25, "detect_in": 1_700_000_000.2525, "detect": 1_700_000_000.2575}
STATS = {"capture": {"frames": 120, "frames_dropped": 2}, "detect@detect.1@host:4242": {"frames": 118, "faces": 354}}
KP = [(30.5, 40.0), (50.5, 40.25), (40.0, 50.0), (40.0, 60.5), (22.0, 44.0), (58.0, 44.0)]
POSE = wire.Pose(12.5, -3.25, 1.5, (1.0, -2.5, 55.0))
ANCHORS = wire.Anchors.make([(30.5, 40.0), (50.5, 40.25), (40.0, 50.0), (33.0, 60.0), (47.0, 60.0), (40.0, 59.0),
                             (40.0, 61.0), (40.0, 36.0), (40.0, 72.0), (40.0, 30.0)], 0.125, 0.25, 0.3125, 0.375)


def _image() -> np.ndarray:
    return (np.arange(12 * 16 * 3) % 251).astype(np.uint8).reshape(12, 16, 3)


def _crops(n: int) -> np.ndarray:
    return (np.arange(n * 48 * 48) % 253).astype(np.uint8).reshape(n, 48, 48)


def valid() -> dict[str, Message]:
    """One message of every kind."""
    found = [Face(box=(2, 1, 6, 6), score=0.93, keypoints=KP, pose=POSE, anchors=ANCHORS),
             Face(box=(9, 3, 5, 5), score=0.71)]
    painted = [Face(box=(2, 1, 6, 6), score=0.93, keypoints=KP, emotion="happy", p=0.875, track=7, pose=POSE,
                    anchors=ANCHORS),
               Face(box=(9, 3, 5, 5), score=0.71, emotion="neutral", stale=True, track=8)]
    return {
        "valid-frame": Message("frame", "cam0", 41, EPOCH, ts={"capture": TS["capture"]},
                               meta={"fps": 30.0, "mode": "live", "job": 9001, "seal": SEAL,
                                     "stats": {"capture": STATS["capture"]}}, image=_image()),
        "valid-frame-still": Message("frame", "photos", 0, EPOCH, meta={"mode": "file", "still": True, "job": 1,
                                                                        "seal": SEAL}, image=_image()),
        "valid-detections": Message("detections", "cam0", 41, EPOCH, ts=dict(TS), faces=found,
                                    meta={"fps": 30.0, "mode": "live", "seal": SEAL, "stats": STATS},
                                    image=_image(), crops=_crops(2)),
        "valid-detections-none": Message("detections", "cam0", 42, EPOCH, ts=dict(TS), meta={"seal": SEAL},
                                         image=_image(), crops=_crops(0)),
        "valid-skip": Message("skip", "cam0", 43, EPOCH, ts={"capture": TS["capture"]},
                              meta={"seal": SEAL, "reason": "stale"}),
        "valid-crops": Message("crops", "cam0", 41, EPOCH, faces=[Face(box=f.box) for f in found],
                               meta={"job": 77}, crops=_crops(2)),
        "valid-emotions": Message("emotions", "cam0", 41, EPOCH,
                                  faces=[Face(box=(2, 1, 6, 6), probs=[0.8, 0.1, 0.05, 0.05]),
                                         Face(box=(9, 3, 5, 5), probs=[0.25, 0.25, 0.25, 0.25])],
                                  meta={"job": 77, "worker": "classify.1@host:4242",
                                        "stats": {"classify@classify.1": {"batches": 3, "faces": 6}}}),
        "valid-composited": Message("composited", "cam0", 41, EPOCH, ts=dict(TS), faces=painted,
                                    meta={"fps": 30.0, "seal": SEAL, "stats": STATS}, image=_image()),
        "valid-eos": Message("eos", "cam0", 44, EPOCH, meta={"last": 43, "seal": SEAL}),
        "valid-ready": Message("ready", meta={"credit": 4, "classes": ["happy", "sad", "surprise", "neutral"],
                                              "worker": "classify.1@host:4242", "model": "fernet", "device": "cpu"}),
        "valid-done": Message("done", "cam0", 41, EPOCH, meta={"job": 9001, "retry": True}),
        "valid-heartbeat": Message("heartbeat", meta={"workers": {"classify.1@host:4242": 2}}),
        "valid-reset": Message("reset"),
    }


def _head(kind: str = "frame", parts: list[dict[str, Any]] | None = None, **over: Any) -> bytes:
    """A header as a peer may write it, with plain msgpack (schema 3 unless ``v`` says otherwise)."""
    h: dict[str, Any] = {"kind": kind, "v": wire.SCHEMA, "stream": "cam0", "epoch": EPOCH, "frame": 1}
    if parts is not None:
        h["parts"] = parts
    h.update(over)
    return msgpack.packb(h, use_bin_type=True)


def _img(h: int = 12, w: int = 16, c: int = 3, enc: str = "raw") -> dict[str, Any]:
    return {"name": "image", "shape": [h, w, c][: 3 if c else 2], "dtype": "uint8", "enc": enc}


PIX = bytes(12 * 16 * 3)
MAL, BIG, BAD = "malformed", "oversized", "bad_value"


def invalid() -> dict[str, tuple[list[bytes], str, str]]:
    """name → (frames, the fault, a piece of the reason)."""
    img = [_img()]
    crops1 = {"name": "crops", "shape": [1, 48, 48], "dtype": "uint8", "enc": "raw"}
    old = msgpack.packb({"v": 2, "kind": "frame", "stream": "cam0", "epoch": EPOCH, "frame": 1, "ts": {},
                         "faces": [], "meta": {}, "parts": img})
    return {
        "invalid-not-msgpack": ([b"\xc1garbage", PIX], MAL, "not msgpack"),
        "invalid-not-a-map": ([msgpack.packb([1, 2, 3])], MAL, "Expected `object`, got `array`"),
        "invalid-schema-2": ([old, PIX], MAL, "schema version"),  # what the hand-checked wire sent
        "invalid-unknown-kind": ([_head("pickle", img), PIX], MAL, "unknown message kind"),
        "invalid-no-kind": ([msgpack.packb({"v": wire.SCHEMA})], MAL, "unknown message kind"),
        "invalid-stream-name": ([_head("frame", img, stream="../etc"), PIX], MAL, "at `$.stream`"),
        "invalid-negative-frame": ([_head("frame", img, frame=-1), PIX], MAL, "at `$.frame`"),
        "invalid-unknown-header-key": ([_head("frame", img, pickle=1), PIX], MAL, "unknown field `pickle`"),
        "invalid-part-missing": ([_head("frame", img)], MAL, "describes 1 parts, message has 0"),
        "invalid-detections-without-crops": ([_head("detections", img), PIX], MAL, "at `$.parts`"),
        "invalid-eos-with-pixels": ([_head("eos", img), PIX], MAL, "unknown field `parts`"),
        "invalid-part-size": ([_head("frame", img), PIX[:-1]], MAL, "does not match shape"),
        "invalid-grey-image": ([_head("frame", [_img(c=0)]), bytes(12 * 16)], MAL, "at `$.parts[0].shape`"),
        "invalid-bgra-image": ([_head("frame", [_img(c=4)]), bytes(12 * 16 * 4)], MAL, "at `$.parts[0].shape[2]`"),
        "invalid-float-pixels": ([_head("frame", [{**_img(), "dtype": "float64"}]), PIX], MAL, "dtype"),
        "invalid-over-pixel-cap": ([_head("frame", [_img(9000, 9000)]), PIX], BIG, "pixel cap"),
        "invalid-not-a-jpeg": ([_head("frame", [_img(enc="jpeg")]), b"notajpeg"], MAL, "not a JPEG"),
        "invalid-jpeg-bomb": ([_head("frame", [_img(enc="jpeg")]), bomb_jpeg(60000, 60000)], BAD,
                              "the JPEG says 60000x60000"),
        "invalid-crops-for-faces": ([_head("detections", [*img, crops1], faces=[]), PIX, bytes(48 * 48)], MAL,
                                    "1 crops for 0 faces"),
        "invalid-box-not-a-list": ([_head("frame", img, faces=[{"box": "0,0,5,5"}]), PIX], MAL,
                                   "at `$.faces[0].box`"),
        "invalid-box-size": ([_head("frame", img, faces=[{"box": [0, 0, -5, 5]}]), PIX], BAD,
                             "at `$.faces[0].box[2]`"),
        "invalid-box-outside-frame": ([_head("frame", img, faces=[{"box": [16, 0, 5, 5]}]), PIX], BAD,
                                      "outside the frame"),
        "invalid-box-huge": ([_head("frame", img, faces=[{"box": [0, 0, 8000, 8000]}]), PIX], BAD,
                             "outside the frame"),
        "invalid-face-unknown-key": ([_head("frame", img, faces=[{"box": [0, 0, 5, 5], "eval": 1}]), PIX], BAD,
                                     "unknown field `eval`"),
        "invalid-face-probability": ([_head("emotions", faces=[{"box": [0, 0, 5, 5], "probs": [1.5, 0.0]}])], BAD,
                                     "at `$.faces[0].probs[0]`"),
        "invalid-face-keypoints": ([_head("frame", img, faces=[{"box": [0, 0, 5, 5], "keypoints": [[1, 2, 3]]}]),
                                    PIX], BAD, "at `$.faces[0].keypoints[0]`"),
        "invalid-pose-yaw": ([_head("frame", img, faces=[{"box": [0, 0, 5, 5], "pose": [200.0, 0.0, 0.0,
                                                                                        [0.0, 0.0, 50.0]]}]),
                              PIX], BAD, "at `$.faces[0].pose[0]`"),
        "invalid-pose-behind-camera": ([_head("frame", img, faces=[{"box": [0, 0, 5, 5], "pose": [0.0, 0.0, 0.0,
                                                                                                  [0.0, 0.0, -5.0]]}]),
                                        PIX], BAD, "at `$.faces[0].pose[3][2]`"),
        "invalid-anchors-short": ([_head("frame", img, faces=[{"box": [0, 0, 5, 5], "anchors": [[1.0, 2.0]]}]),
                                   PIX], BAD, "at `$.faces[0].anchors`"),
        "invalid-timestamp-nan": ([_head("frame", img, ts={"capture": float("nan")}), PIX], BAD, "at `$.ts[...]`"),
        "invalid-meta-fps": ([_head("frame", img, meta={"fps": "thirty"}), PIX], BAD, "at `$.meta.fps`"),
        "invalid-meta-seal": ([_head("frame", img, meta={"seal": "not hex"}), PIX], BAD, "at `$.meta.seal`"),
        "invalid-meta-credit": ([_head("ready", meta={"credit": 10_000})], BAD, "at `$.meta.credit`"),
        "invalid-meta-classes-one": ([_head("ready", meta={"classes": ["only-one"]})], BAD, "at `$.meta.classes`"),
        "invalid-meta-classes-twice": ([_head("ready", meta={"classes": ["happy", "happy"]})], BAD,
                                       "not distinct"),
        "invalid-meta-stats-label": ([_head("heartbeat", meta={"stats": {"x" * 40: {}}})], BAD,
                                     "at `key` in `$.meta.stats`"),
        "invalid-epoch-future": ([_head("eos", epoch=2**52)], BAD, "in the future"),
    }


def pack(frames: list[Any]) -> bytes:
    return msgpack.packb([bytes(memoryview(f)) for f in frames], use_bin_type=True)


def unpack(data: bytes) -> list[bytes]:
    return msgpack.unpackb(data, raw=False)


def main() -> int:
    for old in HERE.glob("*.msgpack"):
        old.unlink()
    for name, msg in valid().items():
        (HERE / f"{name}.msgpack").write_bytes(pack(wire.encode(msg)))
    for name, (frames, _, _) in invalid().items():
        (HERE / f"{name}.msgpack").write_bytes(pack(frames))
    print(f"wrote {len(valid())} valid and {len(invalid())} invalid messages to {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
