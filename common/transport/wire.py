"""The wire format: every message of the pipeline, its msgpack encoding, and the checks of every value in it.

A message is a ZeroMQ multipart message::

    [header, part_0, part_1, ...]

``header`` is a msgpack map (schema version, kind, stream, epoch, frame number, per-stage timestamps, faces,
``meta`` and a description of each binary part); each ``part_i`` is the raw bytes of one array (``image``: the
H×W×3 uint8 BGR frame; ``crops``: N×48×48 uint8 grey face crops), sent zero-copy, or a JPEG of the image for links
where bandwidth matters more than CPU.  No pickle anywhere: msgpack carries only plain data, and arrays are rebuilt
with ``numpy.frombuffer`` after their shape, dtype and size are checked.

Message kinds and who sends them:

=============  ===========================  =====================================================
kind           from → to                    carries
=============  ===========================  =====================================================
``frame``      capture → detect             image; ``meta.still``: unrelated photos, not video
``detections`` detect → composite           image, faces (boxes; empty list = "no face"), crops
``skip``       detect → composite           no image: this frame was dropped (``meta.reason``), do not wait for it
``crops``      composite → classify         crops, faces (their boxes)
``emotions``   classify → composite         faces[i].probs (in the worker's announced ``classes``)
``composited`` composite → display          painted image, faces with their emotion
``eos``        capture → … → display        ``meta.last``: the last frame number of the stream
``ready``      worker → dispatcher          ``meta.credit``: how many jobs it takes at once; what it runs
``done``       worker → dispatcher          job ``meta.job`` is finished: its credit is free again
``heartbeat``  worker → dispatcher          liveness, when idle
``reset``      dispatcher → worker          "I do not know you": announce yourself again
=============  ===========================  =====================================================

Every job a dispatcher hands out carries ``meta.job`` (an id the dispatcher issued; replies and ``done`` name it).
Frames, skips and ends of stream carry ``meta.seal`` (capture's proof of the stream's identity: see ``seal.py``).

Decoding checks every value a stage acts on — types, ranges, lengths, the meta keys and their types, face boxes
against the frame — so a message that parses is also a message whose values are sane.  A JPEG part is decoded only
after its own frame header (``imagehead``) says it is the size the message declares (itself under the pixel cap),
and only frames of H×W×3 uint8 and crops of N×48×48 pass.  Anything else, a decoder's failure included, raises
:class:`WireError`; receivers count it by kind of fault, log it (rate-limited) and go on.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import cv2
import msgpack
import numpy as np
import zmq

from dogfilter.common.transport import imagehead

SCHEMA = 2
KINDS = frozenset({"frame", "detections", "skip", "crops", "emotions", "composited", "eos", "ready", "done",
                   "heartbeat", "reset"})
CONTROL = frozenset({"ready", "done", "heartbeat", "reset"})
#: the parts each kind must carry (others carry none)
PARTS = {"frame": {"image"}, "detections": {"image", "crops"}, "crops": {"crops"}, "composited": {"image"}}
PART_NAMES = ("image", "crops")
MAX_HEADER_BYTES = 256 * 1024
MAX_DIM = 32768
MAX_FACES = 128
MAX_ID = 2**53  # frame numbers, epochs and job ids stay exact in every JSON/JS reader
MAX_CLOCK_SKEW_MS = 60_000  # an epoch (capture's start time, ms) may be this far ahead of our clock, no further
CROP_SIZE = 48
STREAM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


def _max_pixels_from_env() -> int:
    try:
        return max(1, int(float(os.environ.get("DOGFILTER_MAX_PIXELS", "") or 50_000_000)))
    except ValueError:
        return 50_000_000


@dataclass
class Limits:
    """How big a frame may be. Every stage must agree, so it comes from the shared ``--max-pixels`` option."""

    max_pixels: int = field(default_factory=_max_pixels_from_env)

    @property
    def max_part_bytes(self) -> int:
        return 4 * self.max_pixels + 4096  # BGRA at the cap

    @property
    def max_message_bytes(self) -> int:
        return self.max_part_bytes + MAX_HEADER_BYTES


LIMITS = Limits()


def configure(max_pixels: int) -> None:
    """Set the frame-size cap of this process (services call it once, from their options)."""
    LIMITS.max_pixels = int(max_pixels)


class WireError(ValueError):
    """A message that is malformed, oversized, of an unknown schema, or carries a value out of range.

    ``fault`` names the kind of fault for the counters (``malformed``, ``oversized``, ``bad_value``).
    """

    def __init__(self, message: str, fault: str = "malformed") -> None:
        super().__init__(message)
        self.fault = fault


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
    jpeg: bytes | None = None  # the image as JPEG, undecoded (decode(keep_jpeg=True): forwarded to a browser as is)
    # the image as it arrived (zmq frame + encoding), so an unmodified image is forwarded without a copy
    _image_src: tuple[int, Any, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def stamp(self, stage: str) -> None:
        self.ts[stage] = time.time()

    def stats(self, stage: str, counters: dict[str, int]) -> None:
        """Attach a stage's counters, so the display can show drops of every stage."""
        self.meta.setdefault("stats", {})[stage] = {k: int(v) for k, v in counters.items()}

    def derive(self, kind: str, **fields: Any) -> Message:
        """The next hop's message about the same frame: stream, epoch, frame number, timestamps, faces and meta
        carried over (copies), the image forwarded untouched (zero-copy) unless ``fields`` replace them."""
        meta = dict(self.meta)
        if "stats" in meta:
            meta["stats"] = dict(meta["stats"])
        out = Message(kind, self.stream, self.frame, self.epoch, ts=dict(self.ts), faces=[dict(f) for f in self.faces],
                      meta=meta, image=self.image)
        out._image_src = self._image_src
        for name, value in fields.items():
            setattr(out, name, value)
        return out

    @property
    def key(self) -> tuple[str, int, int]:
        """Which frame of which run of which stream this message is about."""
        return self.stream, self.epoch, self.frame


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
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise WireError(f"image must be uint8 HxWx3, got {img.dtype} {img.shape}")
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


# --------------------------------------------------------------------------------------------------- value checks


def _bad(what: str) -> WireError:
    return WireError(what, "bad_value")


def _number(x: Any, what: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise _bad(f"{what} is not a finite number")
    if not lo <= x <= hi:
        raise _bad(f"{what} is out of range")
    return x


def _integer(x: Any, what: str, lo: int = 0, hi: int = MAX_ID) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        raise _bad(f"{what} is not an integer in {lo}..{hi}")
    return x


def _text(x: Any, what: str, max_len: int = 64) -> str:
    if not isinstance(x, str) or not 0 < len(x) <= max_len or not x.isprintable():
        raise _bad(f"{what} is not a short printable string")
    return x


def _counts(x: Any, what: str, max_keys: int, key_len: int = 64) -> dict[str, int]:
    if not isinstance(x, dict) or len(x) > max_keys:
        raise _bad(f"{what} is not a map of at most {max_keys} counts")
    for k, v in x.items():
        _text(k, f"{what} key", key_len)
        _integer(v, f"{what} value")
    return x


def _stats(x: Any, what: str) -> dict[str, dict[str, int]]:
    if not isinstance(x, dict) or len(x) > 16:
        raise _bad(f"{what} is not a map of at most 16 stages")
    for stage, counts in x.items():
        _text(stage, "stats stage", 32)
        _counts(counts, f"stats of {stage}", 64)
    return x


def _classes(x: Any, what: str) -> list[str]:
    if not isinstance(x, list) or not 2 <= len(x) <= 16 or len(set(x)) != len(x):
        raise _bad(f"{what} is not a list of 2 to 16 distinct labels")
    for c in x:
        _text(c, "class label", 32)
    return x


_HEX = re.compile(r"[0-9a-f]{32}")


def _flag(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise _bad(f"{what} is not true/false")
    return v


def _mode(v: Any, what: str) -> str:
    if v not in ("live", "file"):
        raise _bad(f"{what} is not live or file")
    return v


def _seal(v: Any, what: str) -> str:
    if not isinstance(v, str) or not _HEX.fullmatch(v):
        raise _bad(f"{what} is not 32 hex digits")
    return v


def _probs(v: Any, what: str) -> list[float]:
    if not isinstance(v, list) or not 2 <= len(v) <= 16:
        raise _bad(f"{what} is not a list of 2 to 16 probabilities")
    return [_number(p, what, 0.0, 1.0) for p in v]


def _points(v: Any, what: str) -> list[list[float]]:
    if not isinstance(v, list) or len(v) > 8 or not all(isinstance(pt, list) and len(pt) == 2 for pt in v):
        raise _bad(f"{what} are not at most 8 [x, y] points")
    return [[_number(c, what, -4 * MAX_DIM, 4 * MAX_DIM) for c in pt] for pt in v]


#: every meta key any stage reads, and the check of its value
META: dict[str, Callable[[Any, str], Any]] = {
    "fps": lambda v, w: _number(v, w, 0.1, 1000.0),
    "mode": _mode,
    "still": _flag,
    "job": _integer,
    "credit": lambda v, w: _integer(v, w, 1, 1024),
    "classes": _classes,
    "last": lambda v, w: _integer(v, w, -1),
    "stats": _stats,
    "workers": lambda v, w: _counts(v, w, 64, 160),
    "seal": _seal,
    "reason": lambda v, w: _text(v, w, 32),
    "worker": lambda v, w: _text(v, w, 160),
    "model": lambda v, w: _text(v, w, 64),
    "device": lambda v, w: _text(v, w, 32),
    "detector": lambda v, w: _text(v, w, 32),
    "client_ts": _number,  # a browser's own clock, echoed back for its round-trip time
    "retry": _flag,  # done{retry}: not taken (the receiver is full); send it again shortly
}

#: every face key but the box (checked apart, against the frame), and the check of its value
FACE: dict[str, Callable[[Any, str], Any]] = {
    "score": lambda v, w: _number(v, w, 0.0, 1.0),
    "probs": _probs,
    "kp": _points,
    "emotion": lambda v, w: _text(v, w, 32),
    "p": lambda v, w: _number(v, w, 0.0, 1.0),
    "stale": _flag,
    "track": _integer,
}


def _check_meta(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict) or len(meta) > 32:
        raise WireError("meta is not a map")
    for k, v in meta.items():
        check = META.get(k) if isinstance(k, str) else None
        if check is None:
            raise _bad(f"unknown meta key {str(k)[:32]!r}")
        check(v, f"meta.{k}")
    return meta


def _check_face(face: Any, frame_hw: tuple[int, int] | None) -> dict[str, Any]:
    if not isinstance(face, dict):
        raise WireError("face is not a map")
    box = face.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise WireError("face box is not [x, y, w, h]")
    x, y, w, h = (_number(v, "face box value", -4 * MAX_DIM, 4 * MAX_DIM) for v in box)
    if w <= 0 or h <= 0:
        raise _bad("face box has a bad size")
    if frame_hw is not None:  # the box must overlap the frame and be no bigger than twice it
        fh, fw = frame_hw
        if w > 2 * fw or h > 2 * fh or x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
            raise _bad("face box lies outside the frame or is far bigger than it")
    for k, v in face.items():
        if k == "box":
            continue
        check = FACE.get(k) if isinstance(k, str) else None
        if check is None:
            raise _bad(f"unknown face key {str(k)[:32]!r}")
        check(v, f"face {k}")
    return face


def _check_part(info: Any, nbytes: int) -> tuple[str, tuple[int, ...], str]:
    if not isinstance(info, dict):
        raise WireError("part description is not a map")
    name, shape, dtype, enc = info.get("name"), info.get("shape"), info.get("dtype"), info.get("enc")
    if name not in PART_NAMES:
        raise WireError(f"unknown part {str(name)[:32]!r}")
    if dtype != "uint8":
        raise WireError(f"part {name}: dtype {str(dtype)[:16]!r} is not uint8")
    if enc not in ("raw", "jpeg") or (enc == "jpeg" and name != "image"):
        raise WireError(f"part {name}: unknown encoding {str(enc)[:16]!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise WireError(f"part {name}: bad shape")
    if name == "image":  # what every stage handles: H×W×3 (BGR); a grey or BGRA frame is converted at the source
        if len(shape) != 3 or not all(0 < s <= MAX_DIM for s in shape[:2]):
            raise WireError(f"image: bad shape {shape} (want H×W×3)")
        if shape[2] != 3:
            raise WireError(f"image: bad channel count {shape[2]} (want 3)")
        if shape[0] * shape[1] > LIMITS.max_pixels:
            raise WireError(f"image: {shape[1]}x{shape[0]} is over the {LIMITS.max_pixels} pixel cap", "oversized")
    else:
        if len(shape) != 3 or not 0 <= shape[0] <= MAX_FACES or shape[1:] != [CROP_SIZE, CROP_SIZE]:
            raise WireError(f"crops: bad shape {shape} (want N×{CROP_SIZE}×{CROP_SIZE})")
    if nbytes > LIMITS.max_part_bytes:
        raise WireError(f"part {name}: {nbytes} bytes is over the {LIMITS.max_part_bytes} byte limit", "oversized")
    if enc == "raw" and math.prod(shape) != nbytes:
        raise WireError(f"part {name}: {nbytes} bytes does not match shape {shape}")
    return name, tuple(shape), enc


def _buf(frame: Any) -> memoryview:
    """The bytes of a part: a zmq frame, bytes, or an array (an encoded message decoded in the same process)."""
    mv = frame.buffer if isinstance(frame, zmq.Frame) else memoryview(frame)
    if mv.ndim == 1 and mv.itemsize == 1:
        return mv
    return mv.cast("B") if mv.nbytes else memoryview(b"")


def _header(frames: list[Any]) -> dict[str, Any]:
    if not frames:
        raise WireError("empty message")
    head = _buf(frames[0])
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(head)} bytes is over the {MAX_HEADER_BYTES} byte limit", "oversized")
    try:
        h = msgpack.unpackb(head, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several types; all mean the same here
        raise WireError(f"header is not msgpack ({type(e).__name__})") from None
    if not isinstance(h, dict):
        raise WireError("header is not a map")
    if h.get("v") != SCHEMA:
        raise WireError(f"schema version {str(h.get('v'))[:16]!r} is not {SCHEMA}")
    return h


def decode(frames: list[Any], keep_jpeg: bool = False, admit: Callable[[Message], None] | None = None) -> Message:
    """Multipart frames -> Message, validating every value. Raises WireError.  ``keep_jpeg``: a JPEG image part is
    checked (its own header: a JPEG of the size the message says) but left encoded, in ``msg.jpeg`` (for a receiver
    that only passes it on).  ``admit``: called with the message before a JPEG part is decoded (it has its header
    values, not its parts yet); it raises WireError to refuse it (e.g. a frame without capture's seal) undecoded."""
    h = _header(frames)
    kind = h.get("kind")
    if kind not in KINDS:
        raise WireError(f"unknown message kind {str(kind)[:32]!r}")
    stream, frame_no, epoch = h.get("stream"), h.get("frame"), h.get("epoch", 0)
    if not isinstance(stream, str) or not STREAM_RE.fullmatch(stream):
        raise WireError("stream id is not a short name (letters, digits, . _ : @ -)")
    for name, v in (("frame number", frame_no), ("epoch", epoch)):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_ID:
            raise WireError(f"{name} is not a non-negative integer")
    if epoch > time.time() * 1000 + MAX_CLOCK_SKEW_MS:
        raise _bad("epoch is in the future")
    ts, faces, meta, parts = h.get("ts", {}), h.get("faces", []), h.get("meta", {}), h.get("parts", [])
    if not isinstance(ts, dict) or len(ts) > 16:
        raise WireError("timestamps are not a map")
    for k, v in ts.items():
        _text(k, "timestamp name", 32)
        _number(v, "timestamp")
    if not isinstance(faces, list) or len(faces) > MAX_FACES:
        raise WireError("faces is not a list (or too long)")
    _check_meta(meta)
    if not isinstance(parts, list) or len(parts) != len(frames) - 1:
        raise WireError(f"header describes {len(parts) if isinstance(parts, list) else '?'} parts, "
                        f"message has {len(frames) - 1}")
    msg = Message(kind=kind, stream=stream, frame=cast(int, frame_no), epoch=epoch, ts=ts, meta=meta)  # checked above
    if admit is not None and not keep_jpeg and any(isinstance(i, dict) and i.get("enc") == "jpeg" for i in parts):
        admit(msg)  # decoding costs: the receiver refuses what it would drop anyway first
    frame_hw: tuple[int, int] | None = None
    for info, fr in zip(parts, frames[1:], strict=True):
        shape = _decode_part(msg, info, fr, keep_jpeg)
        frame_hw = (shape[0], shape[1]) if info.get("name") == "image" else frame_hw
    have = {name for name in PART_NAMES if getattr(msg, name) is not None} | ({"image"} if msg.jpeg else set())
    if have != PARTS.get(kind, set()):
        raise WireError(f"a {kind} message carries {sorted(have) or 'no parts'}, not {sorted(PARTS.get(kind, ()))}")
    msg.faces = [_check_face(f, frame_hw) for f in faces]
    if msg.crops is not None and kind in ("detections", "crops") and len(msg.crops) != len(faces):
        raise WireError(f"{len(msg.crops)} crops for {len(faces)} faces")
    return msg


def _decode_part(msg: Message, info: Any, fr: Any, keep_jpeg: bool = False) -> tuple[int, ...]:
    buf = _buf(fr)
    name, shape, enc = _check_part(info, len(buf))
    if getattr(msg, name) is not None or (name == "image" and msg.jpeg is not None):
        raise WireError(f"part {name} appears twice")
    if enc == "jpeg":  # the JPEG's own size, from its frame header, before a decoder believes it
        size = imagehead.jpeg_size(buf)
        if size is None:
            raise WireError("image: not a JPEG (no frame header)")
        if (size[1], size[0]) != shape[:2]:
            raise WireError(f"image: the JPEG says {size[0]}x{size[1]}, the header {shape[1]}x{shape[0]}", "bad_value")
    if enc == "jpeg" and keep_jpeg:
        msg.jpeg = bytes(buf)
        return shape
    if enc == "jpeg":
        try:
            arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            arr = None
        if arr is None:
            raise WireError("image: corrupt JPEG")
        if arr.shape != shape:
            raise WireError(f"image: JPEG is {arr.shape}, header says {list(shape)}")
    else:
        arr = np.frombuffer(buf, np.uint8).reshape(shape)
    setattr(msg, name, arr)
    if name == "image":
        msg._image_src = (id(arr), fr, info)
    return shape
