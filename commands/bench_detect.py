"""Face detectors side by side: time per frame on one core, and faces found against ground truth.

    python -m dogfilter.commands.bench_detect   # haar, blazeface (onnxruntime; torch; min_face=60), 640×480, 1280×720
    python -m dogfilter.commands.bench_detect -n 100 --detectors haar blazeface blazeface:model=full --sizes 640x480

Scenes (all made here from what is installed, no photo files):
``demo``   frames of the built-in demo scene (``common.scene.DemoScene``): three real faces moving, rolling ±12°
           and turning (squashed); its ``face_boxes(t)`` are the ground truth.
``video``  consecutive frames of the demo scene at 30 fps, given to the detector as one stream (frame numbers):
           BlazeFace follows the faces it found between spread-out scans (``common/vision/facetrack.py``); Haar, as in
           the tutorial, sees every frame on its own.
``group``  synthetic group photos (:func:`group_photo`): 1–6 people (the demo's three, from matplotlib's Grace
           Hopper photo) on the demo's room, faces 30–300 px wide (scaled with the frame), some rolled up to
           ±25° or turned; ground truth is each face's Haar-style box.

A detected box counts as a found face when its IoU with a ground-truth box is ≥ ``--iou`` (one detection per
face); every other detected box is a false box.  Times: the detector's whole ``detect(frame)`` (for BlazeFace:
resize, network, decoding, NMS; on video also following), the network on one thread (onnxruntime or PyTorch) and
OpenCV on one thread; wall-clock and the thread's CPU time (on a shared machine the wall-clock includes waiting for
a core).  ``× haar``: Haar's mean wall-clock time over this detector's, same scene and size, same run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:  # imported where used: the demo scene and the detectors load only when a bench needs them
    from dogfilter.common.scene import DemoScene
    from dogfilter.common.scene.sprites import Sprite
    from dogfilter.common.vision.detectors import Detector

Box = tuple[float, float, float, float]


@dataclass
class Scene:
    image: np.ndarray
    boxes: list[Box]  # ground truth, x, y, w, h
    rolls: list[float]  # degrees, per face (positive: clockwise on screen)


def _sprites() -> list[tuple[Sprite, ...]]:
    from dogfilter.common.scene import EXPRESSIONS
    from dogfilter.common.scene.sprites import people

    neutral = EXPRESSIONS.index("neutral")  # the photo's own expression: group photos are of calm faces
    return [person[neutral] for person in people()]  # the demo's people, with their Haar boxes


def paste_face(img: np.ndarray, person: int, cx: float, cy: float, width: float, roll_deg: float = 0.0,
               squash: float = 1.0) -> Box:
    """Paste one of the demo's people so that its Haar face box is ``width`` wide, centred at (cx, cy), rolled
    ``roll_deg`` clockwise on screen and squashed horizontally (turned head) by ``squash``.  Returns the
    ground-truth box (the Haar box, narrowed a little as in the demo when turned)."""
    levels = _sprites()[person]
    sprite = next((s for s in levels if s.face_width >= width * 0.98), levels[-1])
    r = width / sprite.face_width
    th = math.radians(roll_deg)
    c, s = math.cos(th), math.sin(th)
    a = np.array([[c * r * squash, -s * r], [s * r * squash, c * r]])
    m = np.hstack([a, (np.array([cx, cy]) - a @ np.array(sprite.center))[:, None]])
    H, W = img.shape[:2]
    warped = cv2.warpAffine(sprite.bgra, m, (W, H), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
    alpha = warped[:, :, 3:4].astype(np.float32) / 255.0
    img[:] = np.clip(warped[:, :, :3].astype(np.float32) + img.astype(np.float32) * (1.0 - alpha) + 0.5,
                     0, 255).astype(np.uint8)
    side = width * (0.5 + 0.5 * squash)
    return cx - side / 2, cy - side / 2, side, side


def group_photo(width: int = 640, height: int = 480, seed: int = 0, n: int | None = None,
                sizes: tuple[float, float] = (30.0, 300.0), max_roll: float = 25.0, turn: float = 0.8) -> Scene:
    """A synthetic group photo: ``n`` (1–6, random if None) of the demo's people on the demo's room, face widths
    log-uniform in ``sizes`` (pixels at 640×480, scaled with the frame), no two heads overlapping; a third of the
    faces rolled up to ±``max_roll``°, a third turned (squashed down to ``turn``).  Deterministic in ``seed``."""
    from dogfilter.common.scene import DemoScene

    rng = np.random.default_rng(seed)
    img = DemoScene(width, height, faces=0).render(0.0)
    unit = min(width / 640, height / 480)
    n = int(n or rng.integers(1, 7))
    placed: list[tuple[float, float, float]] = []
    scene = Scene(img, [], [])
    for _ in range(400):
        if len(placed) == n:
            break
        lo, hi = sizes[0] * unit, min(sizes[1] * unit, 0.62 * height)
        w = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        # the head reaches ~0.75 w above the face centre (hat) and ~0.7 w below (chin, neck)
        cx, cy = rng.uniform(0.55 * w, width - 0.55 * w), rng.uniform(0.85 * w, height - 0.7 * w)
        if any(abs(cx - x) < 0.7 * (w + pw) and abs(cy - y) < 0.85 * (w + pw) for x, y, pw in placed):
            continue
        kind = rng.integers(0, 3)
        roll = float(rng.uniform(-max_roll, max_roll)) if kind == 1 else float(rng.uniform(-4, 4))
        squash = float(rng.uniform(min(turn, 0.9), 0.9)) if kind == 2 and turn < 1 else 1.0
        placed.append((cx, cy, w))
        scene.boxes.append(paste_face(img, int(rng.integers(0, 3)), cx, cy, w, roll, squash))
        scene.rolls.append(roll)
    return scene


def demo_scene(width: int, height: int, t: float) -> Scene:
    src = _demo_source(width, height)
    return Scene(src.render(t), [(float(x), float(y), float(w), float(h)) for x, y, w, h in src.face_boxes(t)], [])


_DEMO: dict[tuple[int, int], DemoScene] = {}


def _demo_source(width: int, height: int) -> DemoScene:
    from dogfilter.common.scene import DemoScene

    if (width, height) not in _DEMO:
        _DEMO[(width, height)] = DemoScene(width, height)
    return _DEMO[(width, height)]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def match(found: list[Box], truth: list[Box], min_iou: float = 0.5) -> tuple[int, int, list[int]]:
    """(faces found, false boxes, index of the detection matched to each true face or -1), greedy by IoU."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, which = set(), [-1] * len(truth)
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i in used_f or which[j] >= 0:
            continue
        used_f.add(i)
        which[j] = i
    hits = sum(w >= 0 for w in which)
    return hits, len(found) - hits, which


def machine() -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"CPU: {model}, {os.cpu_count()} logical cores (load average {load}); Python {platform.python_version()}, "
            f"torch {torch.__version__}, onnxruntime {_ort_version()}, OpenCV {cv2.__version__}, "
            f"numpy {np.__version__}")


def _ort_version() -> str:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "not installed"


def make_detector(spec: str) -> Detector:
    """``haar``, ``blazeface`` or ``blazeface:OPTION=VALUE,...`` (e.g. ``blazeface:model=short``)."""
    from dogfilter.common.vision.detectors import create_detector

    name, _, opts = spec.partition(":")
    options = {}
    for kv in filter(None, opts.split(",")):
        k, _, v = kv.partition("=")
        options[k] = int(v) if v.isdigit() else v
    return create_detector(name, **options)


def run(detectors: list[str], sizes: list[tuple[int, int]], n: int, min_iou: float) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rows = []
    for w, h in sizes:
        scenes = {"demo": [demo_scene(w, h, 20.0 * i / n) for i in range(n)],
                  "video": [demo_scene(w, h, i / 30) for i in range(n)],
                  "group": [group_photo(w, h, seed=i) for i in range(n)]}
        for spec in detectors:
            det = make_detector(spec)
            for name, sc in scenes.items():
                det.detect(sc[0].image)  # warm-up (first call builds caches)
                times, cpu, hits, false, total = [], [], 0, 0, 0
                for i, s in enumerate(sc):
                    video = name == "video"  # a clip: followed from frame to frame; photos: each on its own
                    t0, c0 = time.perf_counter(), time.thread_time()
                    faces = det.detect(s.image, (spec, w, h) if video else None, i if video else None)
                    times.append(1000 * (time.perf_counter() - t0))
                    cpu.append(1000 * (time.thread_time() - c0))
                    a, b, _ = match([f.box for f in faces], s.boxes, min_iou)
                    hits, false, total = hits + a, false + b, total + len(s.boxes)
                rows.append({"size": f"{w}x{h}", "scene": name, "detector": spec, "mean_ms": np.mean(times),
                             "median_ms": np.median(times),
                             "p95_ms": np.percentile(times, 95), "cpu_ms": np.median(cpu), "found": hits,
                             "faces": total, "false": false, "frames": len(sc)})
    return rows


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends each option's default to its help (unless it states it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        return text if "default" in text.lower() else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dogfilter.commands.bench_detect", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("-n", type=int, default=40, help="frames per scene and size")
    detectors = ["haar", "blazeface", "blazeface:engine=torch", "blazeface:min_face=60"]
    ap.add_argument("--detectors", nargs="+", default=detectors,
                    help="haar, blazeface, or blazeface:OPTION=VALUE,... (options of BlazeFaceDetector; default: "
                         f"{' '.join(detectors)})")
    sizes = ["640x480", "1280x720"]
    ap.add_argument("--sizes", nargs="+", default=sizes, metavar="WxH",
                    help=f"frame sizes in pixels, each scene made at each (default: {' '.join(sizes)})")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU for a detection to count as a found face")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    sizes: list[tuple[int, int]] = []
    for s in a.sizes:
        w, h = (int(v) for v in s.split("x"))
        sizes.append((w, h))
    print(machine())
    print(f"{a.n} frames per scene and size; found = ground-truth faces matched at IoU ≥ {a.iou}; "
          "false = boxes matching no face\n")
    rows = run(a.detectors, sizes, a.n, a.iou)
    head = (f"{'size':9s} {'scene':6s} {'detector':24s} {'mean ms':>7s} {'median':>7s} {'p95':>6s} {'cpu ms':>7s} "
            f"{'× haar':>6s} {'found':>11s} {'false':>5s}")
    print(head)
    print("-" * len(head))
    haar = {(r["size"], r["scene"]): r["mean_ms"] for r in rows if r["detector"] == "haar"}
    for r in rows:
        ratio = haar.get((r["size"], r["scene"]), np.nan) / r["mean_ms"]
        print(f"{r['size']:9s} {r['scene']:6s} {r['detector']:24s} {r['mean_ms']:7.2f} {r['median_ms']:7.2f} "
              f"{r['p95_ms']:6.2f} {r['cpu_ms']:7.2f} {ratio:6.2f} {r['found']:5d}/{r['faces']:<5d} {r['false']:5d}")
    print("\nms: wall-clock per frame (mean, median, 95th percentile); cpu ms: this thread's CPU time (median), "
          "less sensitive to other load on a shared machine; × haar: how many times faster than Haar (mean, same "
          "scene and size); found: true faces matched, of all; false: boxes matching no face.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
