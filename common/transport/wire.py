"""The wire format: every message of the pipeline, and its msgpack encoding.

A message is a ZeroMQ multipart message::

    [header, part_0, part_1, ...]

``header`` is a msgpack map (schema version, kind, stream, epoch, frame number, per-stage timestamps, faces,
free-form ``meta`` and a description of each binary part); each ``part_i`` is the raw bytes of one array
(``image``: the H×W×C uint8 frame; ``crops``: N×48×48 uint8 grey face crops), sent zero-copy, or a JPEG of the
image for links where bandwidth matters more than CPU.  No pickle anywhere: msgpack carries only plain data and
arrays are rebuilt with ``numpy.frombuffer`` after their shape, dtype and size are checked.

Message kinds and who sends them:

=============  ===========================  =====================================================
kind           from → to                    carries
=============  ===========================  =====================================================
``frame``      capture → detect             image; ``meta.still``: unrelated photos (an image folder), not video
``detections`` detect → composite           image, faces (boxes; empty list = "no face"), crops
``crops``      composite → classify         crops, ``meta.job``
``emotions``   classify → composite         faces[i].probs, ``meta.job``, ``meta.classes``
``composited`` composite → display          painted image, faces with their emotion
``eos``        capture → … → display        ``meta.last``: the last frame number of the stream
``ready``      worker → dispatcher          ``meta.credit``: how many more messages it accepts
``heartbeat``  worker → dispatcher          liveness, when idle
``reset``      dispatcher → worker          "I do not know you": resend your full credit
=============  ===========================  =====================================================

Anything that does not decode to a valid message raises :class:`WireError`; receivers count it, log it and go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import msgpack
import numpy as np
import zmq

SCHEMA = 1
KINDS = frozenset(
    {"frame", "detections", "crops", "emotions", "composited", "eos", "ready", "heartbeat", "reset"}
)
PART_NAMES = ("image", "crops")
MAX_HEADER_BYTES = 256 * 1024
MAX_PART_BYTES = 64 * 1024 * 1024  # a 4K BGR frame is 25 MB
MAX_DIM = 8192
MAX_FACES = 256
CROP_SIZE = 48


class WireError(ValueError):
    """A message that is malformed, oversized or of an unknown schema."""


@dataclass
class Message:
    kind: str
    stream: str = "cam0"
    frame: int = 0
    epoch: int = 0  # capture's start time in ms: a restarted capture starts a new epoch of its stream
    ts: dict[str, float] = field(default_factory=dict)
    faces: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    image: np.ndarray | None = None
    crops: np.ndarray | None = None
    # the image as it arrived (zmq frame + encoding), so an unmodified image is forwarded without a copy
    _image_src: tuple[int, Any, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def stamp(self, stage: str) -> None:
        self.ts[stage] = time.time()

    def stats(self, stage: str, counters: dict[str, int]) -> None:
        """Attach a stage's counters, so the display can show drops of every stage."""
        self.meta.setdefault("stats", {})[stage] = dict(counters)


def now() -> float:
    return time.time()


# --------------------------------------------------------------------------------------------------- encoding


def encode(msg: Message, jpeg_quality: int | None = None) -> list[Any]:
    """Message -> multipart frames. Arrays are passed as buffers (zero-copy with ``send_multipart(copy=False)``).

    ``jpeg_quality`` (1..100) sends the image as JPEG instead of raw pixels.
    """
    parts: list[Any] = []
    part_info: list[dict[str, Any]] = []
    if msg.image is not None:
        src = msg._image_src
        if src is not None and src[0] == id(msg.image) and (jpeg_quality is None or src[2]["enc"] == "jpeg"):
            parts.append(src[1])  # forward what we received, untouched: no copy, no re-encode
            part_info.append(src[2])
        else:
            img = np.ascontiguousarray(msg.image)
            if img.dtype != np.uint8 or img.ndim not in (2, 3):
                raise WireError(f"image must be uint8 HxW or HxWxC, got {img.dtype} {img.shape}")
            info = {"name": "image", "shape": list(img.shape), "dtype": "uint8", "enc": "raw"}
            if jpeg_quality is not None:
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
                if not ok:
                    raise WireError("JPEG encoding failed")
                info["enc"] = "jpeg"
                parts.append(buf)
            else:
                parts.append(img)
            part_info.append(info)
    if msg.crops is not None:
        crops = np.ascontiguousarray(msg.crops, dtype=np.uint8)
        parts.append(crops)
        part_info.append({"name": "crops", "shape": list(crops.shape), "dtype": "uint8", "enc": "raw"})
    header = {
        "v": SCHEMA,
        "kind": msg.kind,
        "stream": msg.stream,
        "epoch": msg.epoch,
        "frame": msg.frame,
        "ts": msg.ts,
        "faces": msg.faces,
        "meta": msg.meta,
        "parts": part_info,
    }
    return [msgpack.packb(header, use_bin_type=True), *parts]


def send(sock: zmq.Socket, msg: Message, flags: int = 0, jpeg_quality: int | None = None) -> None:
    sock.send_multipart(encode(msg, jpeg_quality), flags=flags, copy=False)


# --------------------------------------------------------------------------------------------------- decoding


def _buf(frame: Any) -> memoryview:
    if isinstance(frame, zmq.Frame):
        return frame.buffer
    return memoryview(frame)


def _check_number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise WireError(f"{what} is not a finite number")
    return x


def _check_face(face: Any) -> dict[str, Any]:
    if not isinstance(face, dict):
        raise WireError("face is not a map")
    box = face.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise WireError("face box is not [x, y, w, h]")
    for v in box:
        _check_number(v, "face box value")
    if box[2] <= 0 or box[3] <= 0 or max(abs(v) for v in box) > 4 * MAX_DIM:
        raise WireError("face box has a bad size")
    probs = face.get("probs")
    if probs is not None:
        if not isinstance(probs, list) or not 1 <= len(probs) <= 64:
            raise WireError("face probs is not a list")
        for p in probs:
            _check_number(p, "face probability")
    kps = face.get("kp")
    if kps is not None and (not isinstance(kps, list) or len(kps) > 32):
        raise WireError("face keypoints are not a list")
    return face


def _check_part(info: Any, nbytes: int) -> tuple[str, tuple[int, ...], str]:
    if not isinstance(info, dict):
        raise WireError("part description is not a map")
    name, shape, dtype, enc = info.get("name"), info.get("shape"), info.get("dtype"), info.get("enc")
    if name not in PART_NAMES:
        raise WireError(f"unknown part {name!r}")
    if dtype != "uint8":
        raise WireError(f"part {name}: dtype {dtype!r} is not uint8")
    if enc not in ("raw", "jpeg") or (enc == "jpeg" and name != "image"):
        raise WireError(f"part {name}: unknown encoding {enc!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise WireError(f"part {name}: bad shape")
    if name == "image":
        if len(shape) not in (2, 3) or not all(0 < s <= MAX_DIM for s in shape[:2]):
            raise WireError(f"image: bad shape {shape}")
        if len(shape) == 3 and shape[2] not in (1, 3, 4):
            raise WireError(f"image: bad channel count {shape[2]}")
    else:
        if len(shape) != 3 or not 0 <= shape[0] <= MAX_FACES or shape[1:] != [CROP_SIZE, CROP_SIZE]:
            raise WireError(f"crops: bad shape {shape} (want N×{CROP_SIZE}×{CROP_SIZE})")
    if nbytes > MAX_PART_BYTES:
        raise WireError(f"part {name}: {nbytes} bytes is over the {MAX_PART_BYTES} byte limit")
    if enc == "raw" and int(np.prod(shape)) != nbytes:
        raise WireError(f"part {name}: {nbytes} bytes does not match shape {shape}")
    return name, tuple(shape), enc


def decode(frames: list[Any]) -> Message:
    """Multipart frames -> Message, validating everything. Raises WireError."""
    if not frames:
        raise WireError("empty message")
    head = _buf(frames[0])
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(head)} bytes is over the {MAX_HEADER_BYTES} byte limit")
    try:
        h = msgpack.unpackb(head, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several types; all mean the same here
        raise WireError(f"header is not msgpack ({type(e).__name__})") from None
    if not isinstance(h, dict):
        raise WireError("header is not a map")
    if h.get("v") != SCHEMA:
        raise WireError(f"schema version {h.get('v')!r} is not {SCHEMA}")
    kind = h.get("kind")
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    stream, frame_no, epoch = h.get("stream"), h.get("frame"), h.get("epoch", 0)
    if not isinstance(stream, str) or not 0 < len(stream) <= 128:
        raise WireError("stream id is not a short string")
    for name, v in (("frame number", frame_no), ("epoch", epoch)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise WireError(f"{name} is not a non-negative integer")
    ts, faces, meta, parts = h.get("ts", {}), h.get("faces", []), h.get("meta", {}), h.get("parts", [])
    if not isinstance(ts, dict) or not all(isinstance(k, str) for k in ts):
        raise WireError("timestamps are not a map")
    for v in ts.values():
        _check_number(v, "timestamp")
    if not isinstance(faces, list) or len(faces) > MAX_FACES:
        raise WireError("faces is not a list (or too long)")
    faces = [_check_face(f) for f in faces]
    if not isinstance(meta, dict):
        raise WireError("meta is not a map")
    if not isinstance(parts, list) or len(parts) != len(frames) - 1:
        raise WireError(f"header describes {len(parts) if isinstance(parts, list) else '?'} parts, "
                        f"message has {len(frames) - 1}")
    msg = Message(kind=kind, stream=stream, frame=frame_no, epoch=epoch, ts=ts, faces=faces, meta=meta)
    for info, fr in zip(parts, frames[1:], strict=True):
        buf = _buf(fr)
        name, shape, enc = _check_part(info, len(buf))
        if getattr(msg, name) is not None:
            raise WireError(f"part {name} appears twice")
        if enc == "jpeg":
            arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise WireError("image: corrupt JPEG")
            if list(arr.shape) != list(shape) and not (len(shape) == 3 and shape[2] == 1 and arr.ndim == 2):
                raise WireError(f"image: JPEG is {arr.shape}, header says {shape}")
        else:
            arr = np.frombuffer(buf, np.uint8).reshape(shape)
        setattr(msg, name, arr)
        if name == "image":
            msg._image_src = (id(arr), fr, info)
    if msg.crops is not None and kind in ("detections", "crops") and len(msg.crops) != len(faces):
        raise WireError(f"{len(msg.crops)} crops for {len(faces)} faces")
    return msg


def recv(sock: zmq.Socket, flags: int = 0) -> Message:
    """Receive one message (raises WireError when malformed; the message is consumed either way)."""
    return decode(sock.recv_multipart(flags=flags, copy=False))
