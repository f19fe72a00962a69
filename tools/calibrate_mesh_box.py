"""Measure ``BOX_SCALE`` and ``BOX_SHIFT`` of ``common/vision/facemesh.py``: the detector's box of a face from its
landmarks' box, medians over frontal faces of many sizes (the demo's group photos), so that a face followed by its
mesh keeps the box its detection would have.

    python -m tools.calibrate_mesh_box     # prints the medians to paste into facemesh.py, and the IoU they give
"""

from __future__ import annotations

import numpy as np

from dogfilter.common.scene.group import group_photo
from dogfilter.common.vision import facemesh
from dogfilter.common.vision.blazeface import BlazeFace
from dogfilter.common.vision.boxes import iou


def main() -> int:
    bf, mesh = BlazeFace("short", min_face=20.0), facemesh.FaceMesh()
    scale, sx, sy, pairs = [], [], [], []
    for seed in range(40):
        shot = group_photo(seed=seed, turn=1.0, max_roll=10.0)
        for d in bf.detect(shot.image):
            lm, presence = mesh(shot.image, [facemesh.roi_from_keypoints(d.box, d.keypoints)])
            lm, presence = mesh(shot.image, [facemesh.roi_from_landmarks(lm[0])])
            if presence[0] < 0.5:
                continue
            xy = lm[0, :, :2]
            lo, hi = xy.min(0), xy.max(0)
            side = float(max(hi - lo))
            w = float(d.box[2] - d.box[0])
            scale.append(w / side)
            sx.append(((d.box[0] + d.box[2]) / 2 - (lo[0] + hi[0]) / 2) / w)
            sy.append(((d.box[1] + d.box[3]) / 2 - (lo[1] + hi[1]) / 2) / w)
            pairs.append((d.box, lm[0]))
    k, shift = float(np.median(scale)), (float(np.median(sx)), float(np.median(sy)))
    facemesh.BOX_SCALE, facemesh.BOX_SHIFT = k, shift
    ious = [iou(box, facemesh.box_from_landmarks(lm)) for box, lm in pairs]
    print(f"{len(pairs)} faces: BOX_SCALE, BOX_SHIFT = {k:.3f}, ({shift[0]:.3f}, {shift[1]:.3f})")
    print(f"IoU with the detector's box: median {np.median(ious):.3f}, 5th percentile {np.percentile(ious, 5):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
