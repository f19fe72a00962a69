"""The faces benchmark (``dogfilter-bench --only faces``): faces at every pose, found, landmarked and posed, before
(BlazeFace alone: ``--landmarks off``) and after (BlazeFace + face mesh + head pose), in the same run.

rendered  faces of known pose (``common/scene/posed.py``: a real face's texture on the canonical face, turned by
          known angles, over the demo's room): faces found by |yaw| bucket, as stills (a full scan) and in video (a
          head turning from frontal to the side at 90°/s, followed); eye and nose-tip error in % of the
          inter-ocular distance (before: BlazeFace's keypoints); yaw, pitch and roll error.  The renderer stretches
          a frontal photo over the turned side: past ~45° it stops looking like a face (its truth is exact, its
          pixels less so), so the real photos below are the yardstick there.
real      the photos of ``tests/data/faces`` (public domain, CC0) with hand-placed boxes, poses, eyes and nose tips
          (``labels.json``, placed by eye on zoomed grids, never from a detector): faces found by pose and false
          boxes, and the eye and nose-tip error.
clips     the real clips of ``tests/data/clips`` (CC BY 2.0): faces found a frame and the tracks they were cut into;
          on a real head turning to profile, the frames it was found on and the furthest yaw read.
steady    a still rendered head under camera noise (σ 4 grey levels): anchor jitter, px RMS, raw and smoothed
          (the composite's One-Euro filter); a head turning at 90°/s: the smoothed pose's and nose's lag, frames.
cost      CPU per face of each step, one thread: the detector's region pass (before), the mesh, the pose fit, the
          smoothing; and detect's whole cost per frame of a 3-face video.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dogfilter.common.media.sources import VideoSource
from dogfilter.common.scene import DemoScene
from dogfilter.common.scene.posed import distance_for, pose_at, render
from dogfilter.common.transport.wire import Face
from dogfilter.common.vision import facemesh, headpose
from dogfilter.common.vision.detectors import BlazeFaceDetector
from dogfilter.common.vision.smoothing import FaceSmoother

FACES = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
BUCKETS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 75), (75, 91))


def _bucket(yaw: float) -> str:
    a = abs(yaw)
    lo, hi = next(b for b in BUCKETS if b[0] <= a < b[1])
    return f"{lo}–{min(hi, 90)}°"


def _found(face: Face, truth: np.ndarray) -> bool:
    """A face box on the true face: its centre inside the landmarks' box, its width 0.5-2× theirs."""
    lo, hi = truth.min(0), truth.max(0)
    x, y, w, h = face.box
    cx, cy = x + w / 2, y + h / 2
    tw = float(hi[0] - lo[0]) or 1.0
    return bool(lo[0] <= cx <= hi[0] and lo[1] <= cy <= hi[1] and 0.5 * tw <= w <= 2.5 * max(tw, hi[1] - lo[1]))


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The right and left eye centres of 468 landmarks, as the anchors define them."""
    a = facemesh.anchors(landmarks)
    return np.array(a["right_eye"]), np.array(a["left_eye"])


def _points(face: Face) -> dict[str, tuple[float, float]] | None:
    """Eyes and nose tip: the anchors (after) or BlazeFace's keypoints (before)."""
    if face.anchors is not None:
        a = face.anchors
        return {"right_eye": a.right_eye, "left_eye": a.left_eye, "nose_tip": a.nose_tip}
    if face.keypoints and len(face.keypoints) >= 3:
        k = face.keypoints
        return {"right_eye": k[0], "left_eye": k[1], "nose_tip": k[2]}
    return None


def _errors(face: Face, truth: dict[str, Any], iod: float) -> dict[str, float]:
    pts = _points(face)
    if pts is None:
        return {}
    return {k: float(np.hypot(pts[k][0] - v[0], pts[k][1] - v[1])) / iod for k, v in truth.items() if v is not None}


def _renders(quick: bool) -> list[tuple[float, float, float, Any]]:
    rng = np.random.default_rng(7)
    rooms = [DemoScene(640, 480, faces=0).render(t) for t in (0.0, 3.0)]
    yaws = range(-90, 91, 30 if quick else 15)
    out: list[tuple[float, float, float, Any]] = []
    for i, yaw in enumerate(yaws):
        for j, (pitch, roll) in enumerate([(0, 0), (-20, 10), (20, -10)][:1 if quick else 3]):
            width = float(rng.choice([60.0, 110.0, 180.0]))
            pose = pose_at(yaw, pitch, roll, distance_for(width, 480), float(rng.uniform(-8, 8)),
                           float(rng.uniform(-4, 4)))
            out.append((yaw, pitch, roll, render(pose, rooms[(i + j) % 2])))
    return out


def rendered(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    renders = _renders(quick)
    out: dict[str, Any] = {}
    for name, landmarks in (("before", False), ("after", True)):
        det = BlazeFaceDetector(min_face=20.0, landmarks=landmarks)
        rows: dict[str, dict[str, list[float]]] = {}
        for yaw, pitch, roll, pf in renders:
            row = rows.setdefault(_bucket(yaw), {"found": [], "eyes": [], "nose": [], "yaw": [], "pitch": [],
                                                 "roll": [], "false": []})
            faces = det.detect(pf.image)
            hits = [f for f in faces if _found(f, pf.landmarks)]
            row["found"].append(float(bool(hits)))
            row["false"].append(float(len(faces) - len(hits[:1])))
            if not hits:
                continue
            f = hits[0]
            re, le = eye_centres(pf.landmarks)
            # the eye distance of the same face seen from the front (a turned face's shrinks to nothing)
            fr, fl = eye_centres(headpose.rendered_landmarks(headpose.Pose(np.eye(3), pf.pose.t), 640, 480))
            frontal_iod = float(np.linalg.norm(fl - fr))
            truth = {"right_eye": re if pf.visible[33] else None, "left_eye": le if pf.visible[263] else None,
                     "nose_tip": pf.landmarks[4]}
            e = _errors(f, truth, frontal_iod)
            if "nose_tip" in e:
                row["nose"].append(e["nose_tip"])
            row["eyes"] += [e[k] for k in ("right_eye", "left_eye") if k in e]
            if f.pose is not None:
                row["yaw"].append(abs(f.pose.yaw - yaw))
                row["pitch"].append(abs(f.pose.pitch - pitch))
                row["roll"].append(abs(f.pose.roll - roll))
        out[name] = rows
    # harder pictures, |yaw| ≤ 30°: dim light, the lower face covered (a hand, a microphone), small faces
    rng = np.random.default_rng(11)
    room_dim = DemoScene(640, 480, faces=0).render(2.0)
    cases: list[tuple[str, Any, np.ndarray]] = []
    for _ in range(4 if quick else 12):
        yaw = float(rng.uniform(-30, 30))
        pf = render(pose_at(yaw, 0, 0, distance_for(110, 480), float(rng.uniform(-8, 8))), room_dim)
        dim = np.clip(pf.image * 0.3 + rng.normal(0, 3, pf.image.shape), 0, 255).astype(np.uint8)
        cases.append(("dim light (×0.3, noise)", pf, dim))
        covered = pf.image.copy()
        chin, nose = pf.landmarks[152], pf.landmarks[4]
        half = 0.35 * float(np.ptp(pf.landmarks[:, 0]))
        cv2.rectangle(covered, (int(nose[0] - half), int(nose[1] + 0.35 * (chin[1] - nose[1]))),
                      (int(nose[0] + half), int(chin[1] + 10)), (40, 40, 40), -1)
        cases.append(("lower face covered", pf, covered))
        small = render(pose_at(yaw, 0, 0, distance_for(float(rng.uniform(24, 32)), 480), float(rng.uniform(-20, 20)),
                               float(rng.uniform(-10, 10))), room_dim)
        cases.append(("small (24–32 px)", small, small.image))
    for name, landmarks in (("before", False), ("after", True)):
        det = BlazeFaceDetector(min_face=20.0, landmarks=landmarks)
        hard: dict[str, dict[str, list[float]]] = {}
        for case, pf, img in cases:
            row = hard.setdefault(case, {"found": [], "eyes": []})
            hits = [f for f in det.detect(img) if _found(f, pf.landmarks)]
            row["found"].append(float(bool(hits)))
            if hits:
                re, le = eye_centres(pf.landmarks)
                e = _errors(hits[0], {"right_eye": re, "left_eye": le}, float(np.linalg.norm(le - re)))
                row["eyes"] += list(e.values())
        out[f"{name} hard"] = hard
    # video: a head turning from frontal to each side at 90°/s, followed
    room = DemoScene(640, 480, faces=0).render(1.0)
    for name, landmarks in (("before", False), ("after", True)):
        turned: dict[str, list[float]] = {}
        for sign in (1, -1):
            det = BlazeFaceDetector(landmarks=landmarks)
            for i in range(0, 31, 3 if quick else 1):
                yaw = sign * 3.0 * i
                pf = render(pose_at(yaw, 5, 0, distance_for(130, 480), -sign * 5 + 0.2 * i * sign), room)
                faces = det.detect(pf.image, stream=f"turn{sign}", frame=i)
                turned.setdefault(_bucket(yaw), []).append(float(any(_found(f, pf.landmarks) for f in faces)))
        out[f"{name} turning"] = turned
    log("faces: rendered done")
    return out


def real(log: Callable[[str], None]) -> dict[str, Any]:
    path = FACES / "labels.json"
    if not path.is_file():
        return {}
    labels = json.loads(path.read_text())["images"]
    out: dict[str, Any] = {}
    for name, landmarks in (("before", False), ("after", True)):
        det = BlazeFaceDetector(min_face=20.0, landmarks=landmarks)
        by_pose: dict[str, dict[str, list[float]]] = {}
        false = 0
        images = 0
        for file, info in labels.items():
            img = cv2.imread(str(FACES / file))
            if img is None:
                continue
            images += 1
            faces = det.detect(img)
            used: set[int] = set()
            for lab in info.get("faces", []):
                x, y, w, h = lab["box"]
                truth = np.array([[x, y], [x + w, y + h]], np.float64)
                row = by_pose.setdefault(lab.get("pose", "frontal"), {"found": [], "eyes": [], "nose": []})
                hit = next((i for i, f in enumerate(faces) if i not in used and _found(f, truth)), None)
                row["found"].append(float(hit is not None))
                if hit is None:
                    continue
                used.add(hit)
                re, le, nose = lab.get("right_eye"), lab.get("left_eye"), lab.get("nose_tip")
                if re is not None and le is not None and nose is not None:
                    iod = float(np.hypot(le[0] - re[0], le[1] - re[1]))
                    e = _errors(faces[hit], {"right_eye": re, "left_eye": le, "nose_tip": nose}, iod)
                    row["eyes"] += [e["right_eye"], e["left_eye"]]
                    row["nose"].append(e["nose_tip"])
            # a box on no labelled face: a false box, unless it is a face too small to label (under ~24 px)
            false += sum(1 for i, f in enumerate(faces) if i not in used and f.box[2] >= 30)
        out[name] = {"by_pose": by_pose, "false": false, "images": images}
    log("faces: real photos done")
    return out


CLIPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "clips"
#: the turning face of selfie_turn_to_profile.mp4: frontal at 150, three-quarter, near profile by 172 (by eye)
TURN = ("selfie_turn_to_profile.mp4", 150, 172)


def clip_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video file, in order, as the product reads one (``VideoSource``: checked, then decoded)."""
    src = VideoSource(str(path))
    try:
        while (frame := src.read()) is not None:
            yield frame
    finally:
        src.close()


def clips(log: Callable[[str], None]) -> dict[str, Any]:
    """Real video (tests/data/clips, CC BY 2.0): faces found a frame, how many tracks the faces were cut into,
    and on the turn to profile, the frames with the face and the furthest yaw read."""
    out: dict[str, Any] = {}
    if not CLIPS.is_dir():
        return out
    for name, landmarks in (("before", False), ("after", True)):
        for clip in sorted(CLIPS.glob("*.mp4")):
            det = BlazeFaceDetector(landmarks=landmarks)
            counts: list[int] = []
            turn_found: list[float] = []
            yaws: list[float] = []
            ids: set[int] = set()
            turn_ids: set[int] = set()
            for i, frame in enumerate(clip_frames(clip)):
                faces = det.detect(frame, "clip", i)
                counts.append(len(faces))
                tracks = det.tracker.streams["clip"].tracks
                ids.update(t.id for t in tracks)
                if clip.name == TURN[0] and TURN[1] <= i <= TURN[2]:
                    turn_found.append(float(bool(faces)))
                    turn_ids.update(t.id for t in tracks)
                    yaws += [abs(f.pose.yaw) for f in faces if f.pose is not None]
            row: dict[str, Any] = {"frames": len(counts), "faces_per_frame": float(np.mean(counts)) if counts else 0.0,
                                   "tracks": len(ids)}
            if turn_found:
                row.update(turn_found=float(np.mean(turn_found)), turn_tracks=len(turn_ids),
                           turn_max_yaw=max(yaws) if yaws else None)
            out[f"{name} {clip.name}"] = row
    log("faces: clips done")
    return out


def steady(log: Callable[[str], None], still_frames: int = 60) -> dict[str, float]:
    """Anchor jitter (px RMS, raw and smoothed) of a still rendered head under camera noise over ``still_frames``
    frames (the first 10 left out), and the smoothed yaw's and nose's lag (frames) on a head turning at 90°/s;
    ``tests/test_faces3d.py`` holds them to the issue's targets."""
    rng = np.random.default_rng(3)
    room = DemoScene(640, 480, faces=0).render(0.0)
    det = BlazeFaceDetector()
    base = render(pose_at(15, 5, 0, distance_for(150, 480)), room).image
    raw, smooth = [], []
    smoother = FaceSmoother()
    for i in range(still_frames):
        f = det.detect(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8), "still", i)[0]
        assert f.anchors is not None
        raw.append(f.anchors.points())
        smoother(f, i / 30)
        assert f.anchors is not None
        smooth.append(f.anchors.points())

    def jitter(p: list) -> float:
        a = np.array(p[10:])
        return float(np.sqrt(((a - a.mean(0)) ** 2).sum(-1).mean()))

    det, smoother = BlazeFaceDetector(), FaceSmoother()
    r, s = [], []
    for i in range(21):
        f = det.detect(render(pose_at(-30 + 3 * i, 5, 0, distance_for(150, 480), -8 + 0.5 * i), room).image,
                       "turn", i)[0]
        assert f.pose is not None and f.anchors is not None
        r.append((f.pose.yaw, f.anchors.nose_tip[0]))
        smoother(f, i / 30)
        assert f.pose is not None and f.anchors is not None
        s.append((f.pose.yaw, f.anchors.nose_tip[0]))
    ra, sa = np.array(r), np.array(s)
    lag = (ra[5:] - sa[5:]).mean(0) / np.median(np.diff(ra, axis=0), axis=0)
    log("faces: steadiness done")
    return {"jitter_raw": jitter(raw), "jitter_smoothed": jitter(smooth), "lag_yaw": float(lag[0]),
            "lag_nose": float(lag[1])}


def _ms(fn: Callable[[], Any], n: int) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def cost(quick: bool, log: Callable[[str], None]) -> dict[str, float]:
    from dogfilter.common.scene.group import group_photo
    from dogfilter.common.vision.blazeface import BlazeFace

    cv2.setNumThreads(1)
    n = 20 if quick else 100
    shot = group_photo(seed=3, n=3, sizes=(60.0, 160.0), turn=1.0)
    img = shot.image
    bf = BlazeFace("short", min_face=25.0)
    dets = bf.detect(img)
    mesh = facemesh.FaceMesh()
    rois = [facemesh.roi_from_keypoints(d.box, d.keypoints) for d in dets]
    lms, _ = mesh(img, rois)
    rois = [facemesh.roi_from_landmarks(lm) for lm in lms]
    k = max(1, len(dets))
    follow = [((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2, 1.8 * (d.box[2] - d.box[0])) for d in dets]
    out = {"faces": float(len(dets)),
           "detector region pass (before), per face": _ms(lambda: bf.detect_rois(img, follow, 48, 0.5), n) / k,
           "mesh, per face": _ms(lambda: mesh(img, rois), n) / k,
           "pose fit, per face": _ms(lambda: [headpose.fit(lm, 640, 480) for lm in lms], n) / k}
    from dogfilter.common.vision.detectors import pose_and_anchors

    faces = [Face(box=(0, 0, 10, 10)) for _ in lms]
    for f, lm in zip(faces, lms, strict=True):
        f.pose, f.anchors = pose_and_anchors(lm, 640, 480)
    smoothers = [FaceSmoother() for _ in faces]
    clock = iter(range(10**9))

    def smooth() -> None:
        t = next(clock) / 30
        for s, f in zip(smoothers, faces, strict=True):
            s(Face(box=f.box, pose=f.pose, anchors=f.anchors), t)

    out["smoothing (composite), per face"] = _ms(smooth, n) / k
    # detect's whole cost per frame of a 3-face video (tracking: scans spread over frames)
    frames = [group_photo(seed=3, n=3, sizes=(60.0, 160.0), turn=1.0).image]
    for name, landmarks, every in (("before", False, 1), ("after", True, 1), ("after, --mesh-every 2", True, 2)):
        det = BlazeFaceDetector(landmarks=landmarks, mesh_every=every)
        i = iter(range(10**9))
        out[f"detect per frame, 3 faces ({name})"] = _ms(lambda d=det, it=i: d.detect(  # type: ignore[misc]
            frames[0], "v", next(it)), 2 * n)
    log("faces: cost done")
    return out


def _pct(v: list[float]) -> str:
    return f"{100 * np.mean(v):.0f} %" if v else "–"


def _med(v: list[float], scale: float = 100.0, unit: str = " %") -> str:
    return f"{scale * np.median(v):.1f}{unit}" if v else "–"


def run(quick: bool, log: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    out = {"rendered": rendered(quick, log), "real": real(log), "clips": clips(log), "steady": steady(log),
           "cost": cost(quick, log)}
    rnd = out["rendered"]
    lines = ["## Faces at every pose: before (BlazeFace alone) and after (+ face mesh, head pose), same run", "",
             "Rendered faces of known pose (a real face's texture on the canonical face; the texture is stretched "
             "past ~45°, so the real photos below are the yardstick there):", "",
             "| yaw | faces | found, still before | after | found in video (turning 90°/s) before | after | eyes err "
             "before (% IOD, median) | after | nose tip before | after | yaw err° after | pitch err° | roll err° |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lo, hi in BUCKETS:
        key = f"{lo}–{min(hi, 90)}°"
        b, a = rnd["before"].get(key), rnd["after"].get(key)
        if b is None or a is None:
            continue
        tb, ta = rnd["before turning"].get(key, []), rnd["after turning"].get(key, [])
        lines.append(f"| {key} | {len(b['found'])} | {_pct(b['found'])} | {_pct(a['found'])} | {_pct(tb)} | "
                     f"{_pct(ta)} | {_med(b['eyes'])} | {_med(a['eyes'])} | {_med(b['nose'])} | "
                     f"{_med(a['nose'])} | {_med(a['yaw'], 1, '')} | {_med(a['pitch'], 1, '')} | "
                     f"{_med(a['roll'], 1, '')} |")
    lines += ["", "| harder pictures, \\|yaw\\| ≤ 30° | faces | found before | after | eyes err before | after |",
              "|---|---|---|---|---|---|"]
    for case, b in rnd["before hard"].items():
        a = rnd["after hard"][case]
        lines.append(f"| {case} | {len(b['found'])} | {_pct(b['found'])} | {_pct(a['found'])} | {_med(b['eyes'])} | "
                     f"{_med(a['eyes'])} |")
    fb = sum(sum(r["false"]) for r in rnd["before"].values())
    fa = sum(sum(r["false"]) for r in rnd["after"].values())
    n = sum(len(r["found"]) for r in rnd["after"].values())
    lines += ["", f"False boxes on {n} rendered frames: before {fb:.0f}, after {fa:.0f}.", ""]
    rl = out["real"]
    if rl:
        lines += [f"Real photos (tests/data/faces, {rl['after']['images']} photos, hand-labelled):", "",
                  "| pose | faces | found before | after | eyes err before (% IOD, median) | after | nose tip before "
                  "| after |", "|---|---|---|---|---|---|---|---|"]
        for pose in ("frontal", "three-quarter", "profile"):
            b, a = rl["before"]["by_pose"].get(pose), rl["after"]["by_pose"].get(pose)
            if b is None or a is None:
                continue
            lines.append(f"| {pose} | {len(b['found'])} | {_pct(b['found'])} | {_pct(a['found'])} | "
                         f"{_med(b['eyes'])} | {_med(a['eyes'])} | {_med(b['nose'])} | {_med(a['nose'])} |")
        lines += ["", f"False boxes (30 px or more, on no labelled face): before {rl['before']['false']}, after "
                  f"{rl['after']['false']}.", ""]
    cl = out["clips"]
    if cl:
        lines += ["Real clips (tests/data/clips, CC BY 2.0; no labels: what was found, and in how many pieces):", "",
                  "| clip | frames | faces a frame before | after | tracks before | after |",
                  "|---|---|---|---|---|---|"]
        for clip in sorted({k.split(" ", 1)[1] for k in cl}):
            b, a = cl[f"before {clip}"], cl[f"after {clip}"]
            lines.append(f"| {clip} | {b['frames']} | {b['faces_per_frame']:.2f} | {a['faces_per_frame']:.2f} | "
                         f"{b['tracks']} | {a['tracks']} |")
        b, a = cl.get(f"before {TURN[0]}", {}), cl.get(f"after {TURN[0]}", {})
        if "turn_found" in a:
            yaw = a.get("turn_max_yaw")
            lines += ["", f"The real turn to profile ({TURN[0]} frames {TURN[1]}–{TURN[2]}): the face found on "
                      f"{100 * b['turn_found']:.0f} % of the frames before, {100 * a['turn_found']:.0f} % after; "
                      f"{b['turn_tracks']} track(s) before, {a['turn_tracks']} after"
                      + (f"; furthest yaw read {yaw:.0f}°." if yaw is not None else "."), ""]
    s = out["steady"]
    lines += [f"Steadiness (rendered head, 640×480): still head with camera noise, anchor jitter {s['jitter_raw']:.2f} "
              f"px RMS raw → {s['jitter_smoothed']:.2f} smoothed; turning at 90°/s, lag of the smoothed yaw "
              f"{s['lag_yaw']:.2f} frames, of the nose {s['lag_nose']:.2f} frames.", "",
              "| cost, one thread | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in out["cost"].items() if k != "faces"]
    return lines, out
