"""Face detectors side by side: time per frame on one core, and faces found against ground truth.

    python -m dogfilter.commands.bench_detect   # haar, blazeface (onnxruntime; torch; min_face=60), 640×480, 1280×720
    python -m dogfilter.commands.bench_detect -n 100 --detectors haar blazeface blazeface:model=full --sizes 640x480

Scenes (all made here from what is installed, no photo files):
``demo``   frames of the built-in demo scene (``common.scene.DemoScene``): three real faces moving, rolling ±12°
           and turning (squashed); its ``face_boxes(t)`` are the ground truth.
``video``  consecutive frames of the demo scene at 30 fps, given to the detector as one stream (frame numbers):
           BlazeFace follows the faces it found between spread-out scans (``common/vision/facetrack.py``); Haar, as in
           the tutorial, sees every frame on its own.
``group``  synthetic group photos (``common.scene.group.group_photo``): 1–6 people (the demo's three, from
           matplotlib's Grace Hopper photo) on the demo's room, faces 30–300 px wide (scaled with the frame), some
           rolled up to ±25° or turned; ground truth is each face's Haar-style box.

A detected box counts as a found face when its IoU with a ground-truth box is ≥ ``--iou`` (one detection per
face); every other detected box is a false box.  Times: the detector's whole ``detect(frame)`` (for BlazeFace:
resize, network, decoding, NMS; on video also following), the network on one thread (onnxruntime or PyTorch) and
OpenCV on one thread; wall-clock and the thread's CPU time (on a shared machine the wall-clock includes waiting for
a core).  ``× haar``: Haar's mean wall-clock time over this detector's, same scene and size, same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

from dogfilter.common.scene.group import Shot, demo_shot, group_photo
from dogfilter.common.vision.boxes import match

if TYPE_CHECKING:  # imported where used: the detectors load only when a bench needs them
    from dogfilter.common.vision.detectors import Detector


def machine() -> str:
    """The machine and library versions, on one line (the benchmark's own ``machine()``)."""
    from dogfilter.commands.bench import machine as versions

    return ", ".join(f"{k} {v}" for k, v in versions().items())


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
        scenes: dict[str, list[Shot]] = {"demo": [demo_shot(w, h, 20.0 * i / n) for i in range(n)],
                                         "video": [demo_shot(w, h, i / 30) for i in range(n)],
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
