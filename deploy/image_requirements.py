"""The image's requirements, from pyproject.toml (so the dependency list is written once).

Two substitutions: ``opencv-python-headless`` for ``opencv-python`` (the same cv2 without the GUI, so a slim base
needs no libGL/X libraries: the image has no window to show), and, for ``gpu``, the ``torch`` extra (PyTorch with
CUDA: ``--device cuda``).  Run by the Containerfile: ``python image_requirements.py pyproject.toml cpu|gpu``.
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(pyproject: str, variant: str) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    reqs = list(project["dependencies"])
    if variant == "gpu":
        reqs += project["optional-dependencies"]["torch"]
    elif variant != "cpu":
        raise SystemExit(f"image_requirements: unknown variant {variant!r} (cpu or gpu)")
    return [re.sub(r"^opencv-python(?=[<>=!~ ;\[]|$)", "opencv-python-headless", r) for r in reqs]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")))
