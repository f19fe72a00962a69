"""The wire format: round trips, zero-copy forwarding, and rejection of malformed or oversized input."""

from __future__ import annotations

import re
import struct

import cv2
import msgpack
import numpy as np
import pytest
import zmq

from dogfilter.commands.bench_faults import bomb_jpeg
from dogfilter.common.transport import imagehead, wire
from dogfilter.common.transport.protocol import send

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _frame(h: int = 48, w: int = 64) -> np.ndarray:
    return (np.arange(h * w * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(h, w, 3)


def _roundtrip(msg: wire.Message, **kw) -> wire.Message:
    return wire.decode([bytes(memoryview(p)) for p in wire.encode(msg, **kw)])


def test_roundtrip_keeps_every_field_and_pixel() -> None:
    img = _frame()
    crops = np.random.default_rng(0).integers(0, 255, (2, 48, 48), dtype=np.uint8)
    faces = [wire.Face(box=(1, 2, 30, 30), score=0.9), wire.Face(box=(10, 5, 20, 20), probs=[0.1, 0.2, 0.7])]
    msg = wire.Message("detections", "camA", 41, 1234, ts={"capture": 1.5}, faces=faces, meta={"fps": 30.0},
                       image=img, crops=crops)
    out = _roundtrip(msg)
    assert (out.kind, out.stream, out.frame, out.epoch) == ("detections", "camA", 41, 1234)
    assert out.ts == {"capture": 1.5} and out.faces == faces and out.meta == {"fps": 30.0}
    assert np.array_equal(out.image, img) and np.array_equal(out.crops, crops)


def test_jpeg_image_is_close_to_raw() -> None:
    img = np.full((120, 160, 3), 90, np.uint8)
    img[30:90, 40:120] = (20, 200, 60)
    out = _roundtrip(wire.Message("frame", image=img), jpeg_quality=90)
    assert out.image.shape == img.shape
    assert np.abs(out.image.astype(int) - img).mean() < 3


def test_unmodified_image_is_forwarded_without_a_copy() -> None:
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-fwd")
    b.connect("inproc://wire-fwd")
    send(a, wire.Message("frame", image=_frame(480, 640)), block=True)
    got = wire.decode(b.recv_multipart(copy=False))
    fwd = got.derive("detections", crops=np.zeros((0, 48, 48), np.uint8))  # the next hop's message
    parts = wire.encode(fwd)
    assert isinstance(parts[1], zmq.Frame)  # the received frame itself, not a copy of its bytes
    assert np.array_equal(wire.decode([bytes(memoryview(p)) for p in parts]).image, got.image)
    a.close()
    b.close()


def _header(**over) -> bytes:
    h = {"v": wire.SCHEMA, "kind": "frame", "stream": "s", "epoch": 0, "frame": 0, "ts": {}, "faces": [],
         "meta": {}, "parts": [{"name": "image", "shape": [4, 4, 3], "dtype": "uint8", "enc": "raw"}]}
    h.update(over)
    return msgpack.packb(h)


GOOD_PIXELS = bytes(48)
BOMB = bomb_jpeg(60000, 60000)
BROKEN = bomb_jpeg(16, 16)[:-40] + b"\x00" * 40 + b"\xff\xd9"


def test_image_headers_give_the_declared_size_without_decoding() -> None:
    assert imagehead.jpeg_size(BOMB) == (60000, 60000, 3) and len(BOMB) < 700
    ok, png = cv2.imencode(".png", np.zeros((5, 7, 4), np.uint8))
    assert imagehead.declared_size(png.tobytes()) == (7, 5, 4)
    assert imagehead.declared_size(b"\xff\xd8\xff\xd9") is None and imagehead.declared_size(b"junk") is None
    assert imagehead.over_limit((60000, 60000, 3), 50_000_000) and not imagehead.over_limit((640, 480, 3), 10**6)


def test_the_browser_camera_refuses_a_bomb_undecoded() -> None:
    from dogfilter.common.media.webcam import decode_frame

    ts = struct.pack(">d", 1.0)
    assert decode_frame(ts + bomb_jpeg(32767, 32767), 4 << 20, 4_000_000) is None
    assert decode_frame(ts + BROKEN, 4 << 20, 4_000_000) is None
    assert decode_frame(ts + cv2.imencode(".jpg", np.zeros((32, 32, 3), np.uint8))[1].tobytes(), 4 << 20,
                        4_000_000)[0].shape == (32, 32, 3)


MAL, BIG, BAD = "malformed", "oversized", "bad_value"  # the fault each is counted as


@pytest.mark.parametrize("frames, why, fault", [
    ([], "empty", MAL),
    ([b"\xc1garbage"], "not msgpack", MAL),
    ([msgpack.packb([1, 2, 3])], "Expected `object`, got `array`", MAL),
    ([_header(v=99), GOOD_PIXELS], "schema version", MAL),
    ([_header(kind="pickle"), GOOD_PIXELS], "unknown message kind", MAL),
    ([_header(frame=-1), GOOD_PIXELS], "at `$.frame`", MAL),
    ([_header(stream=""), GOOD_PIXELS], "at `$.stream`", MAL),
    ([_header()], "describes 1 parts", MAL),
    ([_header(), bytes(47)], "does not match shape", MAL),
    ([_header(parts=[{"name": "image", "shape": [4, 4, 3], "dtype": "float64", "enc": "raw"}]), GOOD_PIXELS],
     "dtype", MAL),
    ([_header(parts=[{"name": "image", "shape": [99999, 4, 3], "dtype": "uint8", "enc": "raw"}]), GOOD_PIXELS],
     "at `$.parts[0].shape[0]`", MAL),
    ([_header(parts=[{"name": "image", "shape": [4, 4, 3], "dtype": "uint8", "enc": "jpeg"}]), b"notajpeg"],
     "not a JPEG", MAL),
    ([_header(parts=[{"name": "image", "shape": [240, 320, 3], "dtype": "uint8", "enc": "jpeg"}]), BOMB],
     "the JPEG says 60000x60000", BAD),  # a decompression bomb: refused from its own header, undecoded
    ([_header(parts=[{"name": "image", "shape": [16, 16, 3], "dtype": "uint8", "enc": "jpeg"}]), BROKEN],
     "corrupt JPEG", MAL),  # the right size in its header, then garbage: the decoder's failure is a WireError
    ([_header(parts=[{"name": "image", "shape": [4, 4], "dtype": "uint8", "enc": "raw"}]), bytes(16)],
     "length 3, got 2 - at `$.parts[0].shape`", MAL),  # grey: the painter handles BGR only
    ([_header(parts=[{"name": "image", "shape": [4, 4, 4], "dtype": "uint8", "enc": "raw"}]), bytes(64)],
     "Invalid enum value 4 - at `$.parts[0].shape[2]`", MAL),
    ([_header(kind="eos"), GOOD_PIXELS], "unknown field `parts`", MAL),  # an end of stream carries no pixels
    ([_header(faces=[{"box": [0, 0, -5, 10]}]), GOOD_PIXELS], "at `$.faces[0].box[2]`", BAD),
    ([_header(faces=[{"box": "0,0,5,5"}]), GOOD_PIXELS], "at `$.faces[0].box`", MAL),
    ([_header(faces=[{"box": [0, 0, 5, 5], "p": 1.5}]), GOOD_PIXELS], "at `$.faces[0].p`", BAD),
    ([_header(faces=[{"box": [0, 0, 5, 5], "pickle": 1}]), GOOD_PIXELS], "unknown field `pickle`", BAD),
    ([_header(faces=[{"box": [9, 9, 5, 5]}]), GOOD_PIXELS], "outside the frame", BAD),
    ([_header(ts={"capture": float("nan")}), GOOD_PIXELS], "at `$.ts[...]`", BAD),
    ([_header(meta={"fps": "thirty"}), GOOD_PIXELS], "at `$.meta.fps`", BAD),
    ([_header(meta={"classes": ["a", "a"]}), GOOD_PIXELS], "not distinct", BAD),
    ([_header(epoch=2**52), GOOD_PIXELS], "in the future", BAD),
    ([_header(parts=[{"name": "image", "shape": [9000, 9000, 3], "dtype": "uint8", "enc": "raw"}]), GOOD_PIXELS],
     "pixel cap", BIG),
    ([b"\x00" * (wire.MAX_HEADER_BYTES + 1)], "over the", BIG),
])
def test_malformed_input_is_rejected_with_a_reason(frames: list[bytes], why: str, fault: str) -> None:
    with pytest.raises(wire.WireError, match=re.escape(why)) as e:
        wire.decode(frames)
    assert e.value.fault == fault


def test_an_unknown_meta_key_is_dropped() -> None:
    assert wire.decode([_header(meta={"fps": 30.0, "pickle": "x"}), GOOD_PIXELS]).meta == {"fps": 30.0}


def test_crop_count_must_match_faces() -> None:
    msg = wire.Message("detections", faces=[wire.Face(box=(0, 0, 5, 5))], image=_frame(),
                       crops=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(wire.WireError, match="2 crops for 1 faces"):
        _roundtrip(msg)
