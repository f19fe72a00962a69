"""Measure what the real models read on the demo source's synthetic expressions.

    python -m tools.check_demo_expressions                 # BlazeFace and Haar, 640x480, every 1/10 s
    python -m tools.check_demo_expressions --detector blazeface --step 0.05
    python -m tools.check_demo_expressions --sheet /tmp/expressions.png   # also: every person x expression, to look at

The built-in demo (``common/scene/``) animates three people whose faces change expression on a fixed
schedule (``DemoScene.expressions(t)``).  This script renders the whole loop, finds the faces with a real detector
(every frame a still photo: a full scan), matches each detection to a ground-truth face by IoU, classifies the
detector's crop with the default emotion model and tabulates, per intended expression: how many faces were
classified, the share read as each class (argmax of one frame; the pipeline smooths over frames, so what a viewer
sees is steadier) and the mean probability of the intended class; then the share read as intended per person
(0: the photo, navy cap; 1: mirrored, green cap; 2: burgundy cap, tanned).
Ground-truth faces that the detector missed are counted apart.

A build-time check, not part of the product: run it after changing the demo's faces or the emotion model.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from dogfilter.common.scene import EXPRESSIONS, LOOP_SECONDS, DemoScene
from dogfilter.common.scene.sprites import LEVEL_WIDTHS
from dogfilter.common.scene.sprites import people as demo_people
from dogfilter.common.vision.boxes import match
from dogfilter.common.vision.crops import face_crop
from dogfilter.common.vision.detectors import create_detector
from dogfilter.common.vision.models import EmotionClassifier

LOG = logging.getLogger(__name__)

MIN_IOU = 0.3  # detections and ground-truth faces are paired greedily by IoU, if at least this much


@dataclass
class Tally:
    """What the classifier read on the faces of one intended expression."""

    classes: list[str]
    counts: np.ndarray = field(init=False)  # argmax counts per class
    p_sum: float = 0.0  # sum of the intended class's probability
    missed: int = 0  # ground-truth faces the detector did not find
    by_person: dict[int, list[int]] = field(default_factory=dict)  # person -> [read as intended, faces]

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.classes), np.int64)

    @property
    def faces(self) -> int:
        return int(self.counts.sum())

    def share(self, name: str) -> float:
        """Share of the faces whose argmax is ``name``."""
        return float(self.counts[self.classes.index(name)]) / max(1, self.faces)

    @property
    def mean_p(self) -> float:
        return self.p_sum / max(1, self.faces)


def measure(detector: str = "blazeface", step: float = 0.1, size: tuple[int, int] = (640, 480),
            classifier: EmotionClassifier | None = None) -> dict[str, Tally]:
    """Render the demo loop every ``step`` seconds and tally the classifier's reading per intended expression.

    Args:
        detector: a name known to ``create_detector`` (``blazeface`` or ``haar``); frames are scanned as stills.
        step: time between measured frames (seconds).
        size: frame size ``(width, height)``.
        classifier: the emotion model (the default model when ``None``).

    Returns:
        ``{expression: Tally}`` for every expression in ``EXPRESSIONS``.
    """
    clf = classifier or EmotionClassifier()
    missing = [name for name in EXPRESSIONS if name not in clf.classes]
    if missing:
        raise ValueError(f"the classifier {clf.name} has no class for {missing} (classes: {clf.classes})")
    det = create_detector(detector)
    src = DemoScene(*size)
    tallies = {name: Tally(list(clf.classes)) for name in EXPRESSIONS}
    for k in range(round(LOOP_SECONDS / step)):
        t = k * step
        frame = src.render(t)
        truth = src.face_boxes(t)
        intended = src.expressions(t)
        people = [pose.person for _, pose in src._visible(t)]  # diagnostics only: which person each face is
        found = [face.box for face in det.detect(frame)]
        _, _, which = match(found, truth, MIN_IOU)
        for g, name in enumerate(intended):
            if which[g] < 0:
                tallies[name].missed += 1
        order = [g for g in range(len(truth)) if which[g] >= 0]
        if not order:
            continue
        probs = clf.predict_proba(np.stack([face_crop(frame, found[which[g]]) for g in order]))
        for g, p in zip(order, probs, strict=True):
            tally = tallies[intended[g]]
            best = int(np.argmax(p))
            tally.counts[best] += 1
            tally.p_sum += float(p[clf.classes.index(intended[g])])
            right, total = tally.by_person.get(people[g], [0, 0])
            tally.by_person[people[g]] = [right + int(clf.classes[best] == intended[g]), total + 1]
    return tallies


def format_table(tallies: dict[str, Tally], title: str) -> str:
    """The per-expression table (and the share read as intended per person) as text."""
    classes = next(iter(tallies.values())).classes
    shown = [c for c in classes if c in EXPRESSIONS]
    people = sorted({p for t in tallies.values() for p in t.by_person})
    head = (f"{'intended':<10}{'faces':>6}{'missed':>7}  " + "".join(f"{c:>9}" for c in shown)
            + f"{'p(int.)':>9}  " + "".join(f"{'person ' + str(p):>9}" for p in people))
    lines = [title, head, "-" * len(head)]
    for name, tally in tallies.items():
        row = f"{name:<10}{tally.faces:>6}{tally.missed:>7}  " + "".join(f"{tally.share(c):>9.0%}" for c in shown)
        row += f"{tally.mean_p:>9.2f}  "
        for p in people:
            right, total = tally.by_person.get(p, [0, 0])
            row += f"{right / total:>9.0%}" if total else f"{'-':>9}"
        lines.append(row)
    total = sum(t.faces for t in tallies.values())
    right = sum(int(t.counts[classes.index(n)]) for n, t in tallies.items())
    lines.append(f"read as intended: {right}/{total} = {right / max(1, total):.1%} of the detected faces "
                 "(argmax of single frames; the share columns are of each row's faces)")
    return "\n".join(lines)


def contact_sheet(face_width: int = 150) -> np.ndarray:
    """Every demo person (rows) with every expression (columns), faces ``face_width`` pixels wide, labelled (BGR)."""
    sprites = demo_people()  # the sprites DemoScene draws, premultiplied BGRA
    level = min(range(len(LEVEL_WIDTHS)), key=lambda i: abs(LEVEL_WIDTHS[i] - face_width)
                if LEVEL_WIDTHS[i] >= face_width else math.inf)
    tile_w, tile_h = round(1.45 * face_width), round(1.65 * face_width)
    background = np.array([150.0, 176.0, 200.0])
    rows = []
    for person, pyramids in enumerate(sprites):
        tiles = []
        for name, levels in zip(EXPRESSIONS, pyramids, strict=True):
            sprite = levels[level]
            s = face_width / sprite.face_width
            cx, cy = sprite.center
            # Face centre at (half the tile, 53 % of its height).
            m = np.array([[s, 0.0, tile_w / 2 - s * cx], [0.0, s, 0.53 * tile_h - s * cy]])
            bgra = cv2.warpAffine(sprite.bgra, m, (tile_w, tile_h), flags=cv2.INTER_AREA,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0)).astype(np.float32)
            tile = bgra[..., :3] + background * (1.0 - bgra[..., 3:] / 255.0)
            tile = np.clip(tile + 0.5, 0, 255).astype(np.uint8)
            cv2.putText(tile, f"{person}: {name}", (6, tile_h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1,
                        cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", choices=["blazeface", "haar", "both"], default="both")
    parser.add_argument("--step", type=float, default=0.1, help="seconds between measured frames (default 0.1)")
    parser.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    parser.add_argument("--sheet", metavar="PNG", help="also write a contact sheet: every person x expression")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.sheet:
        if not cv2.imwrite(args.sheet, contact_sheet()):
            parser.error(f"cannot write {args.sheet}")
        LOG.info("contact sheet: %s", args.sheet)
    clf = EmotionClassifier()
    names = ["blazeface", "haar"] if args.detector == "both" else [args.detector]
    for name in names:
        tallies = measure(name, args.step, (width, height), clf)
        title = (f"{name} + {clf.name}: demo {width}x{height}, every {args.step:g} s over the "
                 f"{LOOP_SECONDS:g} s loop")
        LOG.info("%s\n", format_table(tallies, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
