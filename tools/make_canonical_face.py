"""MediaPipe's canonical face model as a small array file: the 3-D face that head poses are fitted to.

    python -m tools.make_canonical_face PBTXT   # PBTXT: geometry_pipeline_metadata_landmarks.pbtxt (below)

Run at build time, never at run time.  The input is one text file of the MediaPipe repository (Apache-2.0),
``mediapipe/modules/face_geometry/data/geometry_pipeline_metadata_landmarks.pbtxt``: the canonical face mesh that
MediaPipe's face-geometry module fits every face mesh to (468 vertices, x y z in centimetres and u v, 898
triangles) and the weights of the 33 landmarks its Procrustes fit uses.  It is not in the ``mediapipe`` wheel, so it
was read from a public mirror of the repository (the commit is pinned below with the file's sha256).  This script
parses it and writes ``common/assets/models/canonical_face.npz`` (loaded with ``allow_pickle=False``) and
``CANONICAL_FACE_PROVENANCE.md`` beside it:

``vertices``   468×3 float32, centimetres: x to the face's left (the image's right on a frontal face), y up, z out
               of the face towards the viewer (the nose tip is at z ≈ 7.6)
``uv``         468×2 float32, the mesh's texture coordinates (MediaPipe's face texture layout)
``triangles``  898×3 int16, counter-clockwise seen from the front
``weights``    468 float32, the Procrustes weights (0 for the 435 landmarks MediaPipe's fit leaves out)

Idempotent: the output depends only on the pinned input.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "common" / "assets" / "models" / "canonical_face.npz"
PROVENANCE = OUT.with_name("CANONICAL_FACE_PROVENANCE.md")
SOURCE_REPO = "google-ai-edge/mediapipe (read from the public mirror jim-jiang-github/mediapipe)"
SOURCE_COMMIT = "024214754f0898e0f94a451dc00f0b99f1e3e28e"
SOURCE_PATH = "mediapipe/modules/face_geometry/data/geometry_pipeline_metadata_landmarks.pbtxt"
SOURCE_SHA256 = "55ca7c4c7bf195673b9d12a1b5d49d4b9c82b5ade8fed4b565496590866e359d"


def parse(text: str) -> dict[str, np.ndarray]:
    """The pbtxt's canonical mesh (VERTEX_PT: x y z u v per vertex) and Procrustes basis, as arrays."""
    weights = np.zeros(468, np.float32)
    for lid, w in re.findall(r"landmark_id:\s*(\d+)\s+weight:\s*([0-9.eE+-]+)", text):
        weights[int(lid)] = float(w)
    vb = np.array([float(v) for v in re.findall(r"vertex_buffer:\s*([0-9.eE+-]+)", text)], np.float32)
    ib = np.array([int(v) for v in re.findall(r"index_buffer:\s*(\d+)", text)], np.int64)
    if "VERTEX_PT" not in text or "TRIANGLE" not in text:
        raise SystemExit("not a VERTEX_PT TRIANGLE mesh")
    if vb.size != 468 * 5 or ib.size % 3 or not ib.size or ib.max() >= 468:
        raise SystemExit(f"unexpected mesh: {vb.size} vertex values, {ib.size} indices")
    if np.count_nonzero(weights) != 33:
        raise SystemExit(f"expected 33 Procrustes landmarks, found {np.count_nonzero(weights)}")
    v = vb.reshape(468, 5)
    return {"vertices": v[:, :3].copy(), "uv": v[:, 3:].copy(), "triangles": ib.reshape(-1, 3).astype(np.int16),
            "weights": weights}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pbtxt", type=Path, help=f"{SOURCE_PATH} of MediaPipe at {SOURCE_COMMIT[:12]}")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    data = a.pbtxt.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"make_canonical_face: {a.pbtxt} has sha256 {digest}, expected {SOURCE_SHA256}", file=sys.stderr)
        return 2
    arrays = parse(data.decode())
    np.savez_compressed(a.out, **arrays)  # type: ignore[arg-type]  # numpy's stub wants a positional array
    out_sha = hashlib.sha256(a.out.read_bytes()).hexdigest()
    PROVENANCE.write_text(f"""# Canonical face model: provenance and licence

Written by `python -m tools.make_canonical_face PBTXT` (do not edit by hand).

- Source: {SOURCE_REPO}, commit `{SOURCE_COMMIT}`, file `{SOURCE_PATH}` (sha256 `{SOURCE_SHA256}`).
- Authors: The MediaPipe Authors (Google); licence: Apache License 2.0 (the same licence and text as the face mesh
  model's, `FACEMESH_PROVENANCE.md`; the file carries its Apache-2.0 header).
- What was changed (Apache-2.0 §4(b)): the text file was parsed and its numbers stored as arrays, unchanged:
  `vertices` (468×3, cm), `uv` (468×2), `triangles` ({len(arrays['triangles'])}×3), `weights` (468, the Procrustes
  weights; {int(np.count_nonzero(arrays['weights']))} non-zero).
- Written: `{a.out.name}` (sha256 `{out_sha}`).
""")
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes): {len(arrays['triangles'])} triangles, and {PROVENANCE.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
