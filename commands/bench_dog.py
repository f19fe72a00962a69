"""The dog on the face, flat (before) and in 3-D (after), in one run (``dogfilter-bench --only dog``).

nose      where the dog's nose is drawn against the person's nose tip, as a share of the eyes' distance: on the real
          photos of ``tests/data/faces`` (noses placed by hand), by pose; on rendered faces of known pose (their true
          pose: the drawing alone).  Flat: the nose of the flat mask where it is painted on the face's box (turned
          with the eyes); 3-D: the dog's nose through the face's pose.
ears      on rendered poses, yaw −90° … 90°: is each ear drawn above the eyes (along the head's up direction in the
          picture) and on the head, not beside it (within the skull's outline across the head); at yaw ≥ 60°, the
          far ear's pixels left painted.
reactions frames from a mouth opening (a step of the openings, as the face mesh reads a real mouth) to the tongue
          shown, and from its closing to the tongue gone; the same for a blink and its eyelid; on the real talking
          clip, the frames that showed the tongue.
cost      painting one 640×480 frame with three faces (the composite's work after its copy of the frame), flat and
          in 3-D, ms on one core.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from dogfilter.commands.bench_faces import CLIPS, FACES, _ms, clip_frames, eye_centres
from dogfilter.common.scene.posed import distance_for, pose_at, render
from dogfilter.common.transport.wire import ANCHOR_POINTS, Anchors, Face, Pose
from dogfilter.common.vision import dog3d, masks
from dogfilter.common.vision.detectors import BlazeFaceDetector
from dogfilter.common.vision.facemesh import box_from_landmarks

W, H = 640, 480
FLAT_NOSE = (0.5, 0.835)  # the flat masks' nose centre on their canvas (tools/make_masks.py)
FLAT_EARS = ((0.22, 0.2), (0.78, 0.2))  # about the centre of each flat ear


def _flat_point(face: Face, uv: tuple[float, float], mask: masks.Mask) -> np.ndarray:
    """Where a point of the flat mask's canvas is painted on ``face`` (the painter's placement and roll)."""
    x0, y0, x1, y1 = masks.mask_region(face.box)
    rw, rh = x1 - x0, y1 - y0
    mh, mw = mask.shape
    k = min(rh / mh, rw / mw)
    nw, nh = int(k * mw), int(k * mh)
    ox, oy = x0 + int((rw - nw) / 2), y0 + int((rh - nh) / 2)
    p = np.array([ox + uv[0] * nw, oy + uv[1] * nh])
    c = np.array([ox + nw / 2, oy + nh / 2])
    a = math.radians(masks.roll_from_keypoints(face.keypoints))  # clockwise on screen (y down)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return c + rot @ (p - c)


def _dog_nose(face: Face) -> np.ndarray | None:
    p = dog3d.project(face, np.array([dog3d.DOG_NOSE]), W, H)
    return None if p is None else p[0]


def nose(log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {"real": {}, "rendered": {}}
    mask = masks.default_masks()["happy"]
    labels = json.loads((FACES / "labels.json").read_text())["images"]
    det = BlazeFaceDetector(min_face=20.0)
    for file, info in labels.items():
        img = cv2.imread(str(FACES / file))
        if img is None:
            continue
        h, w = img.shape[:2]
        faces = det.detect(img)
        for lab in info.get("faces", []):
            if not faces or any(lab.get(k) is None for k in ("nose_tip", "right_eye", "left_eye")):
                continue  # the eyes' distance is the unit: faces with both eyes placed
            tip = np.array(lab["nose_tip"], float)
            iod = float(np.hypot(*np.subtract(lab["left_eye"], lab["right_eye"])))
            f = min(faces, key=lambda f: float(np.hypot(*(np.add(f.box[:2], np.divide(f.box[2:], 2)) - tip))))
            if not (f.box[0] <= tip[0] <= f.box[0] + f.box[2] and f.box[1] <= tip[1] <= f.box[1] + f.box[3]):
                continue  # not found
            p = dog3d.project(f, np.array([dog3d.DOG_NOSE]), w, h)
            row = out["real"].setdefault(lab.get("pose", "frontal"), {"flat": [], "3d": []})
            row["flat"].append(float(np.hypot(*(_flat_point(f, FLAT_NOSE, mask) - tip))) / iod)
            row["3d"].append(float(np.hypot(*(p[0] - tip))) / iod if p is not None else float("nan"))
    room = np.full((H, W, 3), 90, np.uint8)
    for yaw in (-60, -45, -30, -15, 0, 15, 30, 45, 60):
        pf = render(pose_at(yaw, 0, 0, distance_for(200, H)), room)
        re, le = eye_centres(pf.landmarks)
        iod = float(np.hypot(*(le - re)))
        face = true_face(pf)
        box = box_from_landmarks(pf.landmarks)
        flat_face = Face(box=(int(box[0]), int(box[1]), int(box[2] - box[0]), int(box[3] - box[1])))
        tip = pf.landmarks[4]
        dog_nose = _dog_nose(face)
        assert dog_nose is not None  # the face has its pose
        out["rendered"][yaw] = {"flat": float(np.hypot(*(_flat_point(flat_face, FLAT_NOSE, mask) - tip))) / iod,
                                "3d": float(np.hypot(*(dog_nose - tip))) / iod}
    log("dog: nose done")
    return out


def true_face(pf: Any) -> Face:
    """A rendered face (``posed.render``) as a perfect detector gives it: its box, its pose and its own nose tip (so
    the nose correction moves nothing); the tests use it too."""
    yaw, pitch, roll = pf.pose.yaw_pitch_roll
    tip = (float(pf.landmarks[4][0]), float(pf.landmarks[4][1]))
    x0, y0, x1, y1 = box_from_landmarks(pf.landmarks).tolist()
    return Face(box=(round(x0), round(y0), round(x1 - x0), round(y1 - y0)),
                pose=Pose(yaw, pitch, roll, tuple(pf.pose.t)),
                anchors=Anchors.make([tip] * len(ANCHOR_POINTS), 0.0, 0.3, 0.3, 0.24))


@dataclass(frozen=True)
class HeadInPicture:
    """A rendered face's head as its picture shows it: the eyes' midpoint, the eyes' distance, the head's up
    direction (chin to forehead) and across it, and the span of the head's outline (the skull ellipsoid the dog's
    cards go behind, :data:`dog3d.HEAD_AXES`) along the across direction."""

    mid: np.ndarray
    iod: float
    up: np.ndarray
    across: np.ndarray
    span: tuple[float, float]

    @classmethod
    def of(cls, pf: Any) -> HeadInPicture:
        re, le = eye_centres(pf.landmarks)
        up = pf.landmarks[10] - pf.landmarks[152]
        up = up / np.linalg.norm(up)
        across = np.array([up[1], -up[0]])
        a, b = np.meshgrid(np.linspace(0, 2 * np.pi, 24), np.linspace(-np.pi / 2, np.pi / 2, 12))
        skull = np.stack([np.cos(a) * np.cos(b), np.sin(b), np.sin(a) * np.cos(b)], -1).reshape(-1, 3)
        outline = pf.pose.project(skull * dog3d.HEAD_AXES + dog3d.HEAD_CENTRE, W, H) @ across
        mid = (re + le) / 2
        return cls(mid, float(np.hypot(*(le - re))), up, across,
                   (float(outline.min() - mid @ across), float(outline.max() - mid @ across)))

    def judge(self, point: np.ndarray) -> tuple[bool, bool]:
        """Of an ear's centre: is it above the eyes (by half their distance, along the head's up), and on the head,
        not beside it (within the head's outline across, give or take a quarter of the eyes' distance)?"""
        d = point - self.mid
        side = float(d @ self.across)
        return (float(d @ self.up) > 0.5 * self.iod,
                self.span[0] - 0.25 * self.iod <= side <= self.span[1] + 0.25 * self.iod)


def ears(log: Callable[[str], None]) -> dict[int, Any]:
    room = np.full((H, W, 3), 90, np.uint8)
    mask = masks.default_masks()["happy"]
    out: dict[int, Any] = {}
    for yaw in (-90, -75, -60, -45, -30, -15, 0, 15, 30, 45, 60, 75, 90):
        pf = render(pose_at(yaw, 0, 0, distance_for(200, H)), room)
        head = HeadInPicture.of(pf)
        box = box_from_landmarks(pf.landmarks)
        flat_face = Face(box=(int(box[0]), int(box[1]), int(box[2] - box[0]), int(box[3] - box[1])))
        row: dict[str, Any] = {"flat": [head.judge(_flat_point(flat_face, uv, mask)) for uv in FLAT_EARS]}
        far = "left_ear" if yaw > 0 else "right_ear"
        for dog in sorted(dog3d.RIGS):
            drawn = dog3d.draw(pf.image.copy(), true_face(pf), _rig(dog), measure=True)
            assert drawn is not None
            seen = [n for n in ("right_ear", "left_ear") if drawn.pixels.get(n, 0) > 0]
            row[dog] = [head.judge(drawn.corners[n].mean(0)) for n in seen]
            row[f"{dog} far"] = drawn.pixels.get(far, 0) if yaw else None
        out[yaw] = row
    log("dog: ears done")
    return out


def _rig(name: str) -> dog3d.Rig:
    r = dog3d.rig(name)
    assert r is not None
    return r


def _step(key: str, low: float, high: float, on: Callable[[dog3d.Live], bool]) -> tuple[int, int]:
    """Frames from the opening (frame 10) to shown, and from the closing (frame 30) to gone."""
    r = dog3d.Reactions()
    shown = []
    for i in range(50):
        v = high if 10 <= i < 30 else low
        vals = {"mouth": 0.04, "eyes": 0.3, "brows": 0.24, key: v}
        a = Anchors.make([(100.0, 100.0)] * len(ANCHOR_POINTS), vals["mouth"], vals["eyes"], vals["eyes"],
                         vals["brows"])
        shown.append(on(r(Face(box=(0, 0, 50, 50), anchors=a, pose=Pose(0, 0, 0, (0, 0, 60))), i / 30)))
    first = next((i for i in range(10, 50) if shown[i]), 99) - 10
    gone = next((i for i in range(30, 50) if not shown[i]), 99) - 30
    return first, gone


def reactions(log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tongue (mouth 0.04 → 0.45)": _step("mouth", 0.04, 0.45, lambda lv: lv.tongue > 0),
        "tongue (mouth 0.04 → 0.34, just past the threshold)": _step("mouth", 0.04, 0.34, lambda lv: lv.tongue > 0),
        "eyelid (eyes 0.3 → 0.05)": _step("eyes", 0.3, 0.05, lambda lv: lv.right_lid > 0.5),
        "ears perk (brows 0.24 → 0.36)": _step("brows", 0.24, 0.36, lambda lv: lv.perk > 0.5),
    }
    det, r = BlazeFaceDetector(), dog3d.Reactions()
    frames = tongue = lids = 0
    for i, img in enumerate(clip_frames(CLIPS / "selfie_talking_smiling.mp4")):
        faces = det.detect(img, "talk", i)
        if faces:
            lv = r(faces[0], i / 30)
            frames += 1
            tongue += lv.tongue > 0
            lids += max(lv.right_lid, lv.left_lid) > 0.5
    out["talking clip"] = {"frames": frames, "tongue": tongue, "lids": lids}
    photos = {"open": [0, 0], "other": [0, 0]}  # [faces, tongue shown]
    still = BlazeFaceDetector(min_face=20.0)
    for path in sorted(FACES.glob("*.jpg")):
        kind = "open" if "mouth_open" in path.name else "other"
        photo = cv2.imread(str(path))
        for face in still.detect(photo) if photo is not None else []:
            photos[kind][0] += 1
            photos[kind][1] += dog3d.Reactions()(face, 0.0).tongue > 0
    out["photos"] = photos
    log("dog: reactions done")
    return out


def cost(quick: bool, log: Callable[[str], None]) -> dict[str, float]:
    from dogfilter.common.scene.group import group_photo

    shot = group_photo(seed=3, n=3, sizes=(60.0, 160.0), turn=1.0)
    faces = BlazeFaceDetector().detect(shot.image)
    for f, emotion in zip(faces, ("happy", "sad", "surprise"), strict=False):
        f.emotion = emotion
    n = 20 if quick else 300
    out: dict[str, float] = {"faces": float(len(faces))}
    runs: dict[str, list[float]] = {}
    painters = {r: masks.Painter(masks.default_masks(), render=r) for r in ("flat", "3d")}
    lives = [dog3d.Live(tongue=0.45, right_lid=1.0) for _ in faces]
    frame = shot.image.copy()
    for _ in range(1 if quick else 5):  # interleaved, so a busy moment of a shared box falls on all of them
        for name, fn in (("flat", lambda: painters["flat"].paint(frame, faces)),
                         ("3d", lambda: painters["3d"].paint(frame, faces)),
                         ("3d, tongue out and an eye closed", lambda: painters["3d"].paint(frame, faces, lives))):
            runs.setdefault(name, []).append(_ms(fn, n))
    for name, v in runs.items():
        out[name], out[f"{name} min"], out[f"{name} max"] = float(np.median(v)), min(v), max(v)
    log("dog: cost done")
    return out


def _share(rows: list[bool]) -> str:
    return f"{sum(rows)}/{len(rows)}" if rows else "–"


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    out: dict[str, Any] = {"nose": nose(log), "ears": ears(log), "reactions": reactions(log), "cost": cost(quick, log)}
    lines = ["## The dog on the face: flat (before) and 3-D (after), same run", "",
             "The dog's nose against the person's nose tip (% of the eyes' distance; target: within 10 % to "
             "|yaw| 60°). Real photos (tests/data/faces, noses placed by hand; the face as detected):", "",
             "| pose | faces | flat: median | flat: within 10 % | 3-D: median | 3-D: within 10 % |",
             "|---|---|---|---|---|---|"]
    for pose, row in out["nose"]["real"].items():
        fl, d3 = np.array(row["flat"]), np.array(row["3d"])
        lines.append(f"| {pose} | {len(fl)} | {100 * np.median(fl):.1f} % | {_share(list(fl < 0.1))} | "
                     f"{100 * np.nanmedian(d3):.1f} % | {_share(list(d3 < 0.1))} |")
    lines += ["", "Rendered faces of known pose (the drawing alone: the true pose and nose tip):", "",
              "| yaw | " + " | ".join(str(y) for y in out["nose"]["rendered"]) + " |",
              "|---|" + "---|" * len(out["nose"]["rendered"]),
              "| flat | " + " | ".join(f"{100 * r['flat']:.0f} %" for r in out["nose"]["rendered"].values()) + " |",
              "| 3-D | " + " | ".join(f"{100 * r['3d']:.1f} %" for r in out["nose"]["rendered"].values()) + " |", ""]
    lines += ["Ears on rendered poses: drawn ears above the eyes / on the head (within the skull's outline, not beside "
              "it), and at yaw ≥ 60° the far ear's pixels left painted (target: 0):", "",
              "| yaw | flat: above | flat: not beside | " + " | ".join(
                  f"{d}: above | {d}: not beside | {d}: far ear px" for d in sorted(dog3d.RIGS)) + " |",
              "|---|---|---|" + "---|---|---|" * len(dog3d.RIGS)]
    for yaw, row in out["ears"].items():
        cells = [_share([a for a, _ in row["flat"]]), _share([b for _, b in row["flat"]])]
        for d in sorted(dog3d.RIGS):
            far = row[f"{d} far"]
            cells += [_share([a for a, _ in row[d]]), _share([b for _, b in row[d]]),
                      "–" if far is None or abs(yaw) < 60 else str(far)]
        lines.append(f"| {yaw} | " + " | ".join(cells) + " |")
    lines += ["", "Reactions (frames at 30 frames/s; target: the tongue within 2 frames of the mouth opening and gone "
              "within 2 of its closing):", "", "| step | frames to shown | frames to gone |", "|---|---|---|"]
    for k, v in out["reactions"].items():
        if k not in ("talking clip", "photos"):
            lines.append(f"| {k} | {v[0]} | {v[1]} |")
    tc = out["reactions"]["talking clip"]
    lines += ["", f"Real talking clip (selfie_talking_smiling.mp4, {tc['frames']} frames with the face): the tongue "
              f"shown on {tc['tongue']} frames, an eyelid more than half closed on {tc['lids']}. Real photos "
              f"(tests/data/faces): the tongue on {out['reactions']['photos']['open'][1]} of the "
              f"{out['reactions']['photos']['open'][0]} mouths wide open (Darwin's plates), on "
              f"{out['reactions']['photos']['other'][1]} of the {out['reactions']['photos']['other'][0]} other faces "
              "(closed, smiling, laughing).", "",
              f"Cost of painting one 640×480 frame with {out['cost']['faces']:.0f} faces (ms on one core, median "
              "(min–max) of 5 interleaved runs of 300): " + ", ".join(
                  f"{k} {c[k]:.2f} ({c[k + ' min']:.2f}–{c[k + ' max']:.2f})" for c in [out["cost"]]
                  for k in ("flat", "3d", "3d, tongue out and an eye closed")) + ".", ""]
    return lines, out
