"""Export an emotion checkpoint to ONNX, so the classifier runs on onnxruntime without loading PyTorch.

    python -m tools.export_classifier                              # the default model, fer4_fernet.pth
    python -m tools.export_classifier --model PATH.pth --out PATH.onnx

The graph holds the whole of ``EmotionClassifier.predict_proba``: N×48×48 raw grey pixels (float32 0..255) in, the
checkpoint's normalisation, the network (BatchNorm folded), softmax (and the mirror-image average when the
checkpoint asks for it), N×C probabilities out; batch size dynamic, opset 17.  Beside it, ``PATH.onnx.json`` holds
what a reader needs without PyTorch (classes, name), the sha256 of the checkpoint it came from (the classifier uses
the export only while that still matches), and the check: both runtimes on the same faces (FER2013's test faces
when ``../shared`` is there, else the tutorial's sample faces and seeded random crops), the largest difference of
any probability and the share of faces whose most likely class agrees.  The script fails above 1e-4.

The ``onnx`` package that ``torch.onnx.export`` needs is installed into ``--cache`` (not into the project).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from dogfilter.common.vision.models import DEFAULT_MODEL, EmotionClassifier
from tools.convert_blazeface import EXPORT, tool_path

ROOT = Path(__file__).resolve().parent.parent
FER_TEST = ROOT.parent / "shared" / "fer2013" / "fer2013_test.npz"
TOLERANCE = 1e-4


class Whole(torch.nn.Module):
    """predict_proba as one module: raw pixels → probabilities."""

    def __init__(self, clf: EmotionClassifier) -> None:
        super().__init__()
        self.net, self.norm, self.tta = clf.net, clf.norm, clf.tta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from dogfilter.common.vision.models import normalise

        x = normalise(x.unsqueeze(1), self.norm)
        p = torch.softmax(self.net(x), dim=1)
        if self.tta:
            p = (p + torch.softmax(self.net(x.flip(3)), dim=1)) / 2
        return p


def faces() -> tuple[np.ndarray, str]:
    if FER_TEST.is_file():
        with np.load(FER_TEST) as z:
            x = z["X"]
        return x.reshape(-1, 48, 48).astype(np.uint8), f"the {len(x)} FER2013 test faces"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (512, 48, 48), dtype=np.uint8), "512 seeded random crops (no ../shared here)"


def command(src: Path, out: str | None) -> str:
    model = "" if src.resolve() == DEFAULT_MODEL.resolve() else f" --model {src}"
    return f"python -m tools.export_classifier{model}" + (f" --out {out}" if out else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--out", default=None, help="default: the checkpoint's path with .onnx")
    ap.add_argument("--cache", default="build/onnx-export", help="where the onnx package is installed")
    a = ap.parse_args(argv)
    src, out = Path(a.model), Path(a.out) if a.out else Path(a.model).with_suffix(".onnx")
    sys.path.insert(0, str(tool_path(Path(a.cache), "export", EXPORT)))
    torch.set_num_threads(1)
    clf = EmotionClassifier(src)
    whole = Whole(clf).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(whole, (torch.zeros(2, 48, 48),), str(out), dynamo=False, opset_version=17,
                          input_names=["pixels"], output_names=["probs"],
                          dynamic_axes={"pixels": {0: "n"}, "probs": {0: "n"}})
    import onnxruntime as ort

    x, what = faces()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"pixels": x[i:i + 256].astype(np.float32)})[0]
                          for i in range(0, len(x), 256)])
    want = clf.predict_proba(x)
    diff, agree = float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())
    info = {"name": clf.name, "classes": clf.classes, "source": src.name,
            "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            "export": f"torch.onnx.export (torch {torch.__version__}, opset 17, {EXPORT[0]}, dynamo=False)",
            "check": {"faces": what, "max_abs_prob_diff": diff, "argmax_agreement": agree},
            "command": command(src, a.out)}
    out.with_suffix(".onnx.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{out}: {what}: largest probability difference {diff:.2e}, same class for {100 * agree:.2f} %")
    if diff > TOLERANCE:
        print(f"the export differs from PyTorch by more than {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
