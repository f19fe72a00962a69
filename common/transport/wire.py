"""The wire format: every message of the pipeline, its msgpack encoding, and the checks of every value in it.

A message is a ZeroMQ multipart message::

    [header, part_0, part_1, ...]

``header`` is a msgpack map (kind, schema version, stream, epoch, frame number, per-stage timestamps, faces,
``meta`` and a description of each binary part), declared below as one :class:`Header` type per kind (a union
tagged by ``kind``) and decoded and checked by msgspec; each ``part_i`` is the raw bytes of one array (``image``: the
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

Decoding checks every value a stage acts on — types, ranges, lengths and patterns declared with the types (a
meta key no stage knows is dropped), then, in a few small functions, what a type cannot say: face boxes against
the frame, part sizes, the pixel cap, distinct class labels, the epoch against our clock — so a message that
parses is also a message whose values are sane.  A JPEG part is decoded only
after its own frame header (``imagehead``) says it is the size the message declares (itself under the pixel cap),
and only frames of H×W×3 uint8 and crops of N×48×48 pass.  Anything else, a decoder's failure included, raises
:class:`WireError`; receivers count it by kind of fault, log it (rate-limited) and go on.
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, TypedDict, get_args

import cv2
import msgspec
import numpy as np
import zmq

from dogfilter.common.transport import imagehead, shm, shmnames

SCHEMA: Final = 4  # 3: declared types (msgspec), faces with named fields; 4: faces carry pose and anchors
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


# --------------------------------------------------------------------------------------------------- the types

_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
Count = Id
Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Finite = Annotated[float, msgspec.Meta(ge=-1e18, le=1e18)]  # NaN and ±inf fail both bounds
Coord = Annotated[int, msgspec.Meta(ge=-4 * MAX_DIM, le=4 * MAX_DIM)]
Size = Annotated[int, msgspec.Meta(gt=0, le=4 * MAX_DIM)]
PointCoord = Annotated[float, msgspec.Meta(ge=-4 * MAX_DIM, le=4 * MAX_DIM)]
Label32 = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=_PRINTABLE)]
Label64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
Label160 = Annotated[str, msgspec.Meta(min_length=1, max_length=160, pattern=_PRINTABLE)]
Stream = Annotated[str, msgspec.Meta(pattern=f"^{STREAM_RE.pattern}$")]
Box = tuple[Coord, Coord, Size, Size]  # x, y, w, h in frame pixels
Point = tuple[PointCoord, PointCoord]


Angle = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=10.0)]
Depth = Annotated[float, msgspec.Meta(gt=0.0, le=1e6)]


class Pose(msgspec.Struct, forbid_unknown_fields=True, array_like=True):
    """The head's pose (``common/vision/headpose.py``): degrees from facing the camera (yaw > 0: the nose towards the
    image's right; pitch > 0: looking up; roll > 0: tilted counter-clockwise), and where the canonical face is, in
    centimetres in the camera's axes (x right, y down, z ahead; the camera: principal point at the frame's centre,
    63° vertical field of view)."""

    yaw: Angle
    pitch: Angle
    roll: Angle
    t: tuple[Finite, Finite, Depth]


class Anchors(msgspec.Struct, forbid_unknown_fields=True, array_like=True):
    """Named points of the face's landmarks (frame pixels; the subject's sides: the right eye is on the image's left
    when the face looks at the camera), and how open its mouth and eyes are and how raised its brows (ratios,
    ``common/vision/facemesh.signals``)."""

    right_eye: Point
    left_eye: Point
    nose_tip: Point
    mouth_right: Point
    mouth_left: Point
    upper_lip: Point
    lower_lip: Point
    brow: Point
    chin: Point
    forehead: Point
    mouth: Ratio
    right_eye_open: Ratio
    left_eye_open: Ratio
    brows: Ratio

    @classmethod
    def make(cls, points: list[tuple[float, float]], mouth: float, right_eye_open: float, left_eye_open: float,
             brows: float) -> Anchors:
        """From the points in :data:`ANCHOR_POINTS` order and the four ratios."""
        named = dict(zip(ANCHOR_POINTS, points, strict=True))
        return cls(**named, mouth=mouth, right_eye_open=right_eye_open, left_eye_open=left_eye_open, brows=brows)

    def scaled(self, k: float) -> Anchors:
        return Anchors.make([(x * k, y * k) for x, y in self.points()], self.mouth, self.right_eye_open,
                            self.left_eye_open, self.brows)

    def points(self) -> list[tuple[float, float]]:
        """The points in :data:`ANCHOR_POINTS` order."""
        return [getattr(self, name) for name in ANCHOR_POINTS]


ANCHOR_POINTS: Final = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left", "upper_lip", "lower_lip",
                        "brow", "chin", "forehead")


class Face(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """One face, from detect to display: each stage fills in what it knows (a field left at its default is not
    sent).  ``box`` is checked against the frame after decoding (:func:`_check_faces`)."""

    box: Box
    score: Unit | None = None  # the detector's confidence
    keypoints: Annotated[list[Point], msgspec.Meta(max_length=8)] | None = None  # eyes, nose, mouth, ears (BlazeFace)
    probs: Annotated[list[Unit], msgspec.Meta(min_length=2, max_length=16)] | None = None  # classify's answer
    emotion: Label32 | None = None  # the emotion painted (composite)
    p: Unit | None = None  # its smoothed probability
    stale: bool = False  # painted with an earlier reading (its answer missed the frame), or never classified
    track: Id | None = None  # which face it is across frames (composite)
    pose: Pose | None = None  # the head's pose in 3-D (detect, from the face mesh; smoothed by the composite)
    anchors: Anchors | None = None  # named landmarks (detect, from the face mesh; smoothed by the composite)

    def scaled(self, k: float) -> Face:
        """The same face in a picture ``k`` times the size (a pose does not change: the camera scales with it)."""
        x, y, w, h = self.box
        kps = [(px * k, py * k) for px, py in self.keypoints] if self.keypoints else None
        return Face(box=(round(x * k), round(y * k), max(1, round(w * k)), max(1, round(h * k))), score=self.score,
                    keypoints=kps, pose=self.pose, anchors=self.anchors.scaled(k) if self.anchors else None)


class Meta(TypedDict, total=False):
    """Every meta key any stage reads, and its type (a key no stage knows is dropped on decode)."""

    fps: Annotated[float, msgspec.Meta(ge=0.1, le=1000.0)]
    mode: Literal["live", "file"]
    still: bool  # unrelated photos, not video: detect must not carry faces from one to the next
    job: Id  # the dispatcher's id of a job; replies and done name it
    credit: Annotated[int, msgspec.Meta(ge=1, le=1024)]  # ready: how many jobs a worker takes at once
    classes: Annotated[list[Label32], msgspec.Meta(min_length=2, max_length=16)]  # distinct (checked apart)
    last: Annotated[int, msgspec.Meta(ge=-1, le=MAX_ID)]  # eos: the last frame number of the stream
    stats: Annotated[dict[Label32, Annotated[dict[Label64, Count], msgspec.Meta(max_length=64)]],
                     msgspec.Meta(max_length=16)]
    workers: Annotated[dict[Label160, Count], msgspec.Meta(max_length=64)]
    seal: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
    reason: Label32
    worker: Label160
    model: Label64
    device: Label32
    detector: Label32
    client_ts: Finite  # a browser's own clock, echoed back for its round-trip time
    retry: bool  # done{retry}: not taken (the receiver is full); send it again shortly
    shm: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{16}$")]  # ready: the shared memory the worker maps (shm.py)


class ShmRef(msgspec.Struct, forbid_unknown_fields=True):
    """Where an image's pixels lie in a shared-memory segment of capture's on this host (``shm.py``): checked by
    the receiver's :class:`~.shm.Reader` (this pipeline's segment, within bounds, of this generation)."""

    seg: Annotated[str, msgspec.Meta(pattern=f"^{shmnames.NAME_RE.pattern}$")]
    gen: Annotated[int, msgspec.Meta(ge=2, le=2**62)]
    off: Annotated[int, msgspec.Meta(ge=0, le=2**40)]


class ImagePart(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An H×W×3 uint8 BGR frame (a grey or BGRA frame is converted at the source), raw, JPEG, or in shared memory
    (``shm``: its part on the wire is empty)."""

    name: Literal["image"]
    shape: tuple[Annotated[int, msgspec.Meta(gt=0, le=MAX_DIM)], Annotated[int, msgspec.Meta(gt=0, le=MAX_DIM)],
                 Literal[3]]
    dtype: Literal["uint8"]
    enc: Literal["raw", "jpeg", "shm"]
    shm: ShmRef | None = None


class CropsPart(msgspec.Struct, forbid_unknown_fields=True):
    """N×48×48 uint8 grey face crops, raw."""

    name: Literal["crops"]
    shape: tuple[Annotated[int, msgspec.Meta(ge=0, le=MAX_FACES)], Literal[48], Literal[48]]
    dtype: Literal["uint8"]
    enc: Literal["raw"]


Part = ImagePart | CropsPart


class Header(msgspec.Struct, kw_only=True, tag_field="kind", omit_defaults=True, forbid_unknown_fields=True):
    """What every message says before its parts.  One subclass per kind (the tag): those with pixels declare
    which parts they carry, in order; the others carry none."""

    v: Literal[4]  # SCHEMA
    stream: Stream = "cam0"
    epoch: Id = 0  # capture's start time in ms: a restarted capture starts a new epoch of its stream
    frame: Id = 0
    ts: Annotated[dict[Label32, Finite], msgspec.Meta(max_length=16)] = {}
    faces: Annotated[list[Face], msgspec.Meta(max_length=MAX_FACES)] = []
    meta: Meta = {}


class FrameHeader(Header, tag="frame", kw_only=True):
    parts: tuple[ImagePart]


class DetectionsHeader(Header, tag="detections", kw_only=True):
    parts: tuple[ImagePart, CropsPart]


class CropsHeader(Header, tag="crops", kw_only=True):
    parts: tuple[CropsPart]


class CompositedHeader(Header, tag="composited", kw_only=True):
    parts: tuple[ImagePart]


class SkipHeader(Header, tag="skip"):
    pass


class EmotionsHeader(Header, tag="emotions"):
    pass


class EosHeader(Header, tag="eos"):
    pass


class ReadyHeader(Header, tag="ready"):
    pass


class DoneHeader(Header, tag="done"):
    pass


class HeartbeatHeader(Header, tag="heartbeat"):
    pass


class ResetHeader(Header, tag="reset"):
    pass


AnyHeader = (FrameHeader | DetectionsHeader | CropsHeader | CompositedHeader | SkipHeader | EmotionsHeader
             | EosHeader | ReadyHeader | DoneHeader | HeartbeatHeader | ResetHeader)
#: kind → its header type, read off the union (one list of the kinds: AnyHeader)
HEADERS: dict[str, type[Header]] = {str(cls.__struct_config__.tag): cls for cls in get_args(AnyHeader)}
KINDS = frozenset(HEADERS)
CONTROL = frozenset({"ready", "done", "heartbeat", "reset"})
#: the parts each kind must carry, in this order (others carry none)
PARTS: dict[str, tuple[str, ...]] = {"frame": ("image",), "detections": ("image", "crops"), "crops": ("crops",),
                                     "composited": ("image",)}
_DECODER = msgspec.msgpack.Decoder(AnyHeader)
_ENCODER = msgspec.msgpack.Encoder()


@dataclass
class Message:
    kind: str
    stream: str = "cam0"
    frame: int = 0
    epoch: int = 0  # capture's start time in ms: a restarted capture starts a new epoch of its stream
    ts: dict[str, float] = field(default_factory=dict)
    faces: list[Face] = field(default_factory=list)
    meta: Meta = field(default_factory=lambda: Meta())
    image: np.ndarray | None = None
    crops: np.ndarray | None = None
    jpeg: bytes | None = None  # the image as JPEG, undecoded (decode(keep_jpeg=True): forwarded to a browser as is)
    # the image as it arrived (zmq frame + its description), so an unmodified image is forwarded without a copy
    _image_src: tuple[int, Any, ImagePart] | None = field(default=None, repr=False, compare=False)

    def stamp(self, stage: str) -> None:
        self.ts[stage] = time.time()

    def stats(self, stage: str, counters: dict[str, int]) -> None:
        """Attach a stage's counters, so the display can show drops of every stage."""
        self.meta.setdefault("stats", {})[stage] = {k: int(v) for k, v in counters.items()}

    def derive(self, kind: str, **fields: Any) -> Message:
        """The next hop's message about the same frame: stream, epoch, frame number, timestamps, faces and meta
        carried over (copies), the image forwarded untouched (zero-copy) unless ``fields`` replace them."""
        meta = self.meta.copy()
        if "stats" in meta:
            meta["stats"] = dict(meta["stats"])
        out = Message(kind, self.stream, self.frame, self.epoch, ts=dict(self.ts),
                      faces=[copy.copy(f) for f in self.faces], meta=meta, image=self.image)
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


def encode(msg: Message, jpeg_quality: int | None = None, handles: bool = False) -> list[Any]:
    """Message -> multipart frames. Arrays are passed as buffers (zero-copy with ``send_multipart(copy=False)``).

    ``jpeg_quality`` (1..100) sends the image as JPEG instead of raw pixels.  ``handles``: an image in shared memory
    (``shm.py``) goes as its handle (the receiver is on this host and said it maps our segments); else as pixels.
    """
    cls = HEADERS.get(msg.kind)
    if cls is None:
        raise WireError(f"unknown message kind {msg.kind[:32]!r}")
    parts: list[Any] = []
    part_info: list[Part] = []
    if msg.image is not None:
        src = msg._image_src
        if src is not None and src[0] == id(msg.image) and (
                handles if src[2].enc == "shm" else jpeg_quality is None or src[2].enc == "jpeg"):
            parts.append(src[1])  # forward what we received, untouched: no copy, no re-encode
            part_info.append(src[2])
        else:
            img = np.ascontiguousarray(msg.image)
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise WireError(f"image must be uint8 HxWx3, got {img.dtype} {img.shape}")
            h, w = img.shape[:2]
            if jpeg_quality is not None:
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
                if not ok:
                    raise WireError("JPEG encoding failed")
                parts.append(buf)
                part_info.append(ImagePart("image", (h, w, 3), "uint8", "jpeg"))
            else:
                parts.append(img)
                part_info.append(ImagePart("image", (h, w, 3), "uint8", "raw"))
    if msg.crops is not None:
        crops = np.ascontiguousarray(msg.crops, dtype=np.uint8)
        if crops.ndim != 3:
            raise WireError(f"crops must be N×{CROP_SIZE}×{CROP_SIZE}, got {crops.shape}")
        parts.append(crops)
        part_info.append(CropsPart("crops", (crops.shape[0], crops.shape[1], crops.shape[2]), "uint8", "raw"))
    have = tuple(p.name for p in part_info)
    if have != PARTS.get(msg.kind, ()):
        raise WireError(f"a {msg.kind} message carries {list(have) or 'no parts'}, not {list(PARTS.get(msg.kind, ()))}")
    head: dict[str, Any] = {"parts": tuple(part_info)} if part_info else {}
    header = cls(v=SCHEMA, stream=msg.stream, epoch=msg.epoch, frame=msg.frame, ts=msg.ts, faces=msg.faces,
                 meta=msg.meta, **head)
    return [_ENCODER.encode(header), *parts]


# --------------------------------------------------------------------------------------------------- decoding


def _buf(frame: Any) -> memoryview:
    """The bytes of a part: a zmq frame, bytes, or an array (an encoded message decoded in the same process)."""
    mv = frame.buffer if isinstance(frame, zmq.Frame) else memoryview(frame)
    if mv.ndim == 1 and mv.itemsize == 1:
        return mv
    return mv.cast("B") if mv.nbytes else memoryview(b"")


_PATH = re.compile(r" - at (`key` in )?`\$(.*)`$")


def _refused(e: msgspec.ValidationError) -> WireError:
    """The WireError of a header its types refuse: a wrong structure is ``malformed``, a value out of its range
    (in the timestamps, faces or meta) ``bad_value``, as the receivers have always counted them."""
    text = str(e)
    m = _PATH.search(text)
    key, path = (m.group(1) is not None, m.group(2)) if m else (False, "")
    if path == ".v":
        return WireError(f"schema version: {text} (this is {SCHEMA})")
    if path == ".kind" or "`kind`" in text:
        return WireError(f"unknown message kind: {text}")
    # inside the timestamps, faces and meta: a value out of range, an unknown face key; but a face or its box
    # that is not even a map or a list is malformed
    structure = text.startswith(("Expected `array`", "Expected `object`", "Object missing"))
    inner = path.startswith((".ts[", ".meta.", ".faces[")) or key and path.startswith((".ts", ".meta"))
    if inner and not (structure and (path.endswith(".box") or path.count(".") == 1 and path.startswith(".faces["))):
        return WireError(f"bad value: {text}", "bad_value")
    return WireError(f"bad header: {text}")


def _header(frames: list[Any]) -> Header:
    if not frames:
        raise WireError("empty message")
    head = _buf(frames[0])
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(head)} bytes is over the {MAX_HEADER_BYTES} byte limit", "oversized")
    try:
        return _DECODER.decode(head)
    except msgspec.ValidationError as e:
        raise _refused(e) from None
    except msgspec.DecodeError as e:
        raise WireError(f"header is not msgpack ({str(e)[:60]})") from None


# the checks a type cannot express: each raises WireError

def _check_clock(h: Header) -> None:
    if h.epoch > time.time() * 1000 + MAX_CLOCK_SKEW_MS:
        raise WireError("epoch is in the future", "bad_value")


def _check_meta(meta: Meta) -> None:
    classes = meta.get("classes")
    if classes is not None and len(set(classes)) != len(classes):
        raise WireError("meta.classes: labels are not distinct", "bad_value")


def _check_faces(faces: list[Face], frame_hw: tuple[int, int] | None, n_crops: int | None) -> None:
    if frame_hw is not None:  # a box must overlap the frame and be no bigger than twice it
        fh, fw = frame_hw
        for f in faces:
            x, y, w, h = f.box
            if w > 2 * fw or h > 2 * fh or x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
                raise WireError("face box lies outside the frame or is far bigger than it", "bad_value")
    if n_crops is not None and n_crops != len(faces):
        raise WireError(f"{n_crops} crops for {len(faces)} faces")


def _check_part(info: Part, nbytes: int) -> None:
    if isinstance(info, ImagePart) and info.shape[0] * info.shape[1] > LIMITS.max_pixels:
        raise WireError(f"image: {info.shape[1]}x{info.shape[0]} is over the {LIMITS.max_pixels} pixel cap",
                        "oversized")
    if isinstance(info, ImagePart) and (info.enc == "shm") != (info.shm is not None):
        raise WireError("image: a shared-memory handle goes with enc shm, and only with it")
    if info.enc == "shm" and nbytes:
        raise WireError("image: pixels on the wire beside a shared-memory handle")
    if nbytes > LIMITS.max_part_bytes:
        raise WireError(f"part {info.name}: {nbytes} bytes is over the {LIMITS.max_part_bytes} byte limit", "oversized")
    if info.enc == "raw" and math.prod(info.shape) != nbytes:
        raise WireError(f"part {info.name}: {nbytes} bytes does not match shape {list(info.shape)}")


def decode(frames: list[Any], keep_jpeg: bool = False, admit: Callable[[Message], None] | None = None) -> Message:
    """Multipart frames -> Message, validating every value. Raises WireError.  ``keep_jpeg``: a JPEG image part is
    checked (its own header: a JPEG of the size the message says) but left encoded, in ``msg.jpeg`` (for a receiver
    that only passes it on).  ``admit``: called with the message before a JPEG part is decoded (it has its header
    values, not its parts yet); it raises WireError to refuse it (e.g. a frame without capture's seal) undecoded."""
    h = _header(frames)
    _check_clock(h)
    _check_meta(h.meta)
    infos: tuple[Part, ...] = getattr(h, "parts", ())
    if len(infos) != len(frames) - 1:
        raise WireError(f"header describes {len(infos)} parts, message has {len(frames) - 1}")
    kind = str(h.__struct_config__.tag)
    msg = Message(kind, h.stream, h.frame, h.epoch, ts=h.ts, faces=h.faces, meta=h.meta)
    if admit is not None and any(i.enc == "shm" or i.enc == "jpeg" and not keep_jpeg for i in infos):
        admit(msg)  # decoding (or opening a segment) costs: the receiver refuses what it would drop anyway first
    frame_hw = None
    for info, fr in zip(infos, frames[1:], strict=True):
        _decode_part(msg, info, fr, keep_jpeg)
        if isinstance(info, ImagePart):
            frame_hw = info.shape[0], info.shape[1]
    n_crops = len(msg.crops) if msg.crops is not None and kind in ("detections", "crops") else None
    _check_faces(msg.faces, frame_hw, n_crops)
    return msg


def _decode_part(msg: Message, info: Part, fr: Any, keep_jpeg: bool = False) -> None:
    buf = _buf(fr)
    _check_part(info, len(buf))
    if isinstance(info, CropsPart):
        msg.crops = np.frombuffer(buf, np.uint8).reshape(info.shape)
        return
    shape = info.shape
    if info.shm is not None:
        view = msg.image = _shared(info.shm, shape)
        msg._image_src = None if SHM.reader is None or SHM.reader.copy else (id(view), fr, info)  # a copy is ours
        return
    if info.enc == "jpeg":  # the JPEG's own size, from its frame header, before a decoder believes it
        size = imagehead.jpeg_size(buf)
        if size is None:
            raise WireError("image: not a JPEG (no frame header)")
        if (size[1], size[0]) != shape[:2]:
            raise WireError(f"image: the JPEG says {size[0]}x{size[1]}, the header {shape[1]}x{shape[0]}", "bad_value")
        if keep_jpeg:
            msg.jpeg = bytes(buf)
            return
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
    msg.image = arr
    msg._image_src = (id(arr), fr, info)


# --------------------------------------------------------------------------------------------------- shared memory


@dataclass
class _Shared:
    """This process's reader of its pipeline's shared-memory segments (set by detect and the composite; None:
    a handle is refused)."""

    reader: shm.Reader | None = None


SHM = _Shared()


def _shared(ref: ShmRef, shape: tuple[int, int, int]) -> np.ndarray:
    if SHM.reader is None:
        raise WireError("image: a shared-memory handle, and this stage maps none", "shm_refused")
    try:
        return SHM.reader.image(ref.seg, ref.gen, ref.off, shape)
    except shm.Refused as e:
        raise WireError(f"image: {e}", "shm_refused") from None
    except shm.Stale as e:
        raise WireError(f"image: {e}", "shm_stale") from None


def image_intact(msg: Message) -> bool:
    """The message's image is still what it was when it arrived: False only for a shared-memory view whose slot
    capture reused since (a handle's pixels are checked again after use)."""
    src = msg._image_src
    if src is None or src[2].shm is None or SHM.reader is None or src[0] != id(msg.image):
        return True
    return SHM.reader.intact(src[2].shm.seg, src[2].shm.gen)


def share(msg: Message, view: np.ndarray, seg: str, gen: int, off: int) -> None:
    """Capture: the message's image is now ``view``, the slot (``shm.Pool.put``) its pixels were copied into; sent
    as its handle to receivers that map it (``encode(handles=True)``), as pixels to the others."""
    h, w = view.shape[:2]
    msg.image = view
    msg._image_src = (id(view), b"", ImagePart("image", (h, w, 3), "uint8", "shm", ShmRef(seg, gen, off)))
