"""Which face detector finds turned faces best: BlazeFace short / full range (dogfilter) vs OpenCV YuNet.

How the product's detector was chosen (docs/benchmarks.md, "Which detector for turned faces"):

    YUNET=PATH python -m tools.compare_detectors synthetic   # rendered faces of known pose -> recall by yaw
    YUNET=PATH python -m tools.compare_detectors report      # the table of the synthetic run
    YUNET=PATH python -m tools.compare_detectors photos      # tests/data/faces -> counts + PNGs with boxes
    YUNET=PATH python -m tools.compare_detectors timing      # ms per 640x480 frame, one thread

YuNet is not part of the product; its model is not committed.  ``YUNET`` is the path of
``face_detection_yunet_2023mar.onnx`` (opencv_zoo, MIT licence; 232,589 bytes, sha256
8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4; the same bytes are
``onnx/yunet_s_640_640.onnx`` of ShiqiYu/libfacedetection.train at 0047ac24afb1).  Results go to ``OUT`` (default
``build/compare_detectors``).

A detection finds a rendered face if its box centre is inside the bounding box of the 468 true landmarks and its
width is 0.5x..2x that box's width.  Any other detection on a rendered frame is a false box; when two or more
detections match one face, the extra ones are counted as duplicates.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2
import numpy as np

cv2.setNumThreads(1)
ROOT = Path(__file__).resolve().parent.parent
HERE = Path(os.environ.get("OUT", ROOT / "build" / "compare_detectors"))
HERE.mkdir(parents=True, exist_ok=True)
YUNET = Path(os.environ.get("YUNET", HERE / "yunet.onnx"))
PHOTOS = ROOT / "tests" / "data" / "faces"
PROFILE_PHOTOS = ["iss_rubins_profile.jpg", "iss_linteris_profile_pitch_down.jpg", "cameraman_nearprofile.jpg",
                  "woman_threequarter_over_shoulder.jpg", "iss_frick_threequarter_smile.jpg",
                  "iss_wiseman_threequarter_pitch_up.jpg"]


class YuNet:
    """cv2.FaceDetectorYN at the frame's size (scale 1) or on the frame downscaled by ``scale``."""

    def __init__(self, scale: float = 1.0, score: float = 0.6) -> None:
        self.scale = scale
        self.det = cv2.FaceDetectorYN.create(str(YUNET), "", (320, 320), score_threshold=score)
        self.size = None

    def detect(self, bgr: np.ndarray) -> list[tuple[np.ndarray, float]]:
        h, w = bgr.shape[:2]
        if self.scale != 1.0:
            sw, sh = round(w * self.scale), round(h * self.scale)
            img = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA)
        else:
            sw, sh, img = w, h, bgr
        if self.size != (sw, sh):
            self.det.setInputSize((sw, sh))
            self.size = (sw, sh)
        _, faces = self.det.detect(img)
        out = []
        if faces is not None:
            for f in faces:
                x, y, bw, bh = f[:4] / self.scale
                out.append((np.array([x, y, x + bw, y + bh], np.float32), float(f[14])))
        return out


class Blaze:
    def __init__(self, kind: str) -> None:
        from dogfilter.common.vision.blazeface import BlazeFace
        self.bf = BlazeFace(kind, min_face=20.0)

    def detect(self, bgr: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return [(np.asarray(d.box, np.float32), float(d.score)) for d in self.bf.detect(bgr)]


def detectors() -> dict[str, object]:
    return {"blaze_short": Blaze("short"), "blaze_full": Blaze("full"),
            "yunet_640x480": YuNet(1.0, LOW), "yunet_320x240": YuNet(0.5, LOW)}


LOW = 0.3  # YuNet runs at this score threshold; the report filters at 0.6 (the brief's setting) and a few others
VARIANTS = {"blaze_short": ("blaze_short", 0.0), "blaze_full": ("blaze_full", 0.0),
            "yunet_640x480": ("yunet_640x480", 0.6), "yunet_320x240": ("yunet_320x240", 0.6),
            "yunet640@0.5": ("yunet_640x480", 0.5), "yunet640@0.4": ("yunet_640x480", 0.4),
            "yunet640@0.3": ("yunet_640x480", 0.3), "yunet320@0.4": ("yunet_320x240", 0.4)}


def score_row(row: dict, variant: str) -> dict:
    """hit / false / dup of one detector variant on one rendered frame (boxes filtered by its threshold)."""
    name, thr = VARIANTS[variant]
    gt = np.array(row["gt"], np.float32)
    m = [bool(matches(np.array(b[:4]), gt)) for b in row[name]["boxes"] if b[4] >= thr]
    return {"hit": any(m), "false": sum(1 for x in m if not x), "dup": max(0, sum(m) - 1)}


def matches(box: np.ndarray, gt: np.ndarray) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    gw, bw = gt[2] - gt[0], box[2] - box[0]
    return gt[0] <= cx <= gt[2] and gt[1] <= cy <= gt[3] and 0.5 * gw <= bw <= 2.0 * gw


def yaw_bucket(yaw: float) -> str:
    a = abs(yaw)
    return "0-15" if a <= 15 else "15-45" if a <= 45 else "45-75" if a <= 75 else "75-90"


def poses():
    """(yaw, pitch, roll, size, dx_px, dy_px, background t): the full grid, two placements each."""
    from itertools import product
    offsets = [(0, 0), (-170, -90), (160, 80), (-120, 100), (150, -100), (60, -40)]
    ts = [0.0, 3.0, 7.5]
    yaws = [0, 15, -15, 30, -30, 45, -45, 60, -60, 75, -75, 90, -90]
    out = []
    for i, (yaw, pitch, roll, size) in enumerate(product(yaws, (-30, 0, 30), (-20, 0, 20), (40, 80, 160))):
        for k in range(2):
            dx, dy = offsets[(2 * i + k) % len(offsets)]
            if size == 160:  # keep the big face inside the frame
                dx, dy = int(dx * 0.6), int(dy * 0.6)
            out.append((yaw, pitch, roll, size, dx, dy, ts[(i + k) % len(ts)]))
    return out


def render_case(case, bgs):
    from dogfilter.common.scene.posed import distance_for, pose_at, render
    from dogfilter.common.vision import headpose
    yaw, pitch, roll, size, dx, dy, t = case
    f = float(headpose.camera(640, 480)[0, 0])
    z = distance_for(size, 480)
    pf = render(pose_at(yaw, pitch, roll, z, dx * z / f, dy * z / f), bgs[t])
    lm = pf.landmarks
    gt = np.array([*lm.min(0), *lm.max(0)], np.float32)
    return pf.image, gt


def synthetic(limit: int | None = None) -> None:
    from dogfilter.common.scene import DemoScene
    scene = DemoScene(640, 480, faces=0)
    bgs = {t: scene.render(t) for t in (0.0, 3.0, 7.5)}
    dets = detectors()
    cases = poses()[:limit]
    rows = []
    t0 = time.time()
    for n, case in enumerate(cases):
        img, gt = render_case(case, bgs)
        inside = gt[0] >= 0 and gt[1] >= 0 and gt[2] <= 640 and gt[3] <= 480
        row = {"case": list(case), "gt": gt.tolist(), "inside": bool(inside)}
        for name, d in dets.items():
            found = d.detect(img)
            row[name] = {"boxes": [[*map(float, b), s] for b, s in found]}
        rows.append(row)
        if n % 100 == 0:
            json.dump({"rows": rows, "empty": {}}, open(HERE / "synthetic.json", "w"))
            print(f"{n}/{len(cases)} {time.time() - t0:.0f}s", flush=True)
    # face-free backgrounds: false boxes only
    empty = {}
    for name, d in dets.items():
        empty[name] = [[s for _, s in d.detect(scene.render(t))] for t in (0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 12.0)]
    json.dump({"rows": rows, "empty": empty}, open(HERE / "synthetic.json", "w"))
    report_synthetic(rows, empty)


def report_synthetic(rows, empty) -> None:
    names = list(VARIANTS)
    rows = [r for r in rows if r["inside"]]
    rows = [{**{v: score_row(r, v) for v in names}, "case": r["case"]} for r in rows]
    print(f"\n{len(rows)} rendered frames (face fully inside the frame)")
    buckets = ["0-15", "15-45", "45-75", "75-90"]
    print("\nrecall by |yaw| bucket (n per bucket in brackets)")
    print(f"{'detector':15s}" + "".join(f"{b:>14s}" for b in buckets) + f"{'all':>8s}{'false/img':>10s}{'dup/img':>8s}")
    for name in names:
        line = f"{name:15s}"
        for b in buckets:
            sel = [r for r in rows if yaw_bucket(r["case"][0]) == b]
            line += f"{np.mean([r[name]['hit'] for r in sel]):>9.3f} ({len(sel):3d})"
        line += f"{np.mean([r[name]['hit'] for r in rows]):>8.3f}"
        line += f"{np.mean([r[name]['false'] for r in rows]):>10.3f}{np.mean([r[name]['dup'] for r in rows]):>8.3f}"
        print(line)
    for key, idx, vals in (("|yaw|", 0, [0, 15, 30, 45, 60, 75, 90]), ("pitch", 1, [-30, 0, 30]),
                           ("roll", 2, [-20, 0, 20]), ("size px", 3, [40, 80, 160])):
        print(f"\nrecall by {key}")
        print(f"{'detector':15s}" + "".join(f"{v:>7d}" for v in vals))
        for name in names:
            line = f"{name:15s}"
            for v in vals:
                sel = [r for r in rows if (abs(r["case"][idx]) if idx == 0 else r["case"][idx]) == v]
                line += f"{np.mean([r[name]['hit'] for r in sel]):>7.2f}"
            print(line)
    print("\nrecall by |yaw| x size")
    for name in names:
        print(name)
        for s in (40, 80, 160):
            line = f"  {s:4d}px"
            for y in (0, 15, 30, 45, 60, 75, 90):
                sel = [r for r in rows if abs(r["case"][0]) == y and r["case"][3] == s]
                line += f"{np.mean([r[name]['hit'] for r in sel]):>6.2f}"
            print(line)
    print("\nrecall at |yaw| 60-90 by yaw sign (+: face turned to image right)")
    for name in names:
        pos = [r[name]["hit"] for r in rows if r["case"][0] >= 60]
        neg = [r[name]["hit"] for r in rows if r["case"][0] <= -60]
        print(f"  {name:15s} +{np.mean(pos):.2f}  -{np.mean(neg):.2f}")
    print("\nboxes on 8 face-free backgrounds:",
          {v: sum(1 for scores in empty[n] for s in scores if s >= t) for v, (n, t) in VARIANTS.items()})


def photos() -> None:
    dets = detectors()
    out = {}
    colours = {"blaze_short": (0, 255, 0), "blaze_full": (255, 0, 0), "yunet_640x480": (0, 0, 255),
               "yunet_320x240": (0, 255, 255)}
    (HERE / "photos").mkdir(exist_ok=True)
    for p in sorted(PHOTOS.glob("*.jpg")):
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        res = {}
        panels = []
        for name, d in dets.items():
            # yunet_320x240: the photo at half its size (as 320x240 is half of 640x480); YuNet filtered at 0.6
            found = [(b, s) for b, s in d.detect(img) if s >= VARIANTS[name][1]]
            res[name] = [[*map(lambda v: round(float(v), 1), b), round(s, 3)] for b, s in found]
            vis = img.copy()
            for b, s in found:
                x0, y0, x1, y1 = map(int, b)
                cv2.rectangle(vis, (x0, y0), (x1, y1), colours[name], 2)
                cv2.putText(vis, f"{s:.2f}", (x0, max(12, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colours[name], 1)
            cv2.putText(vis, f"{name}: {len(found)}", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
            panels.append(vis)
        out[p.name] = res
        grid = np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])])
        scale = min(1.0, 1400 / grid.shape[1])
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(HERE / "photos" / (p.stem + ".png")), grid)
        print(f"{p.name:42s} " + "  ".join(f"{k}={len(v)}" for k, v in res.items()), flush=True)
    json.dump(out, open(HERE / "photos.json", "w"), indent=1)


def timing(reps: int = 3) -> None:
    from dogfilter.common.scene import DemoScene
    scene = DemoScene(640, 480, faces=0)
    bgs = {t: scene.render(t) for t in (0.0, 3.0, 7.5)}
    cases = poses()[::24]  # ~30 frames spread over the grid
    frames = [render_case(c, bgs)[0] for c in cases] + [bgs[0.0], bgs[3.0]]
    print(f"timing on {len(frames)} 640x480 frames, {reps} reps, cv2 threads={cv2.getNumThreads()}")
    res = {}
    for name, d in detectors().items():
        for f in frames[:3]:
            d.detect(f)  # warm-up
        per = []
        for _ in range(reps):
            for f in frames:
                t = time.perf_counter()
                d.detect(f)
                per.append((time.perf_counter() - t) * 1e3)
        res[name] = (float(np.median(per)), float(np.mean(per)), float(np.percentile(per, 90)))
        print(f"  {name:15s} median {res[name][0]:6.1f} ms  mean {res[name][1]:6.1f}  p90 {res[name][2]:6.1f}",
              flush=True)
    json.dump(res, open(HERE / "timing.json", "w"), indent=1)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "synthetic"
    if what == "synthetic":
        synthetic(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    elif what == "report":
        d = json.load(open(HERE / "synthetic.json"))
        report_synthetic(d["rows"], d["empty"])
    elif what == "photos":
        photos()
    elif what == "timing":
        timing()
