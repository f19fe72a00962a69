"""Convert MediaPipe's face mesh model (TFLite, from the PyPI wheel) into an ONNX model for onnxruntime.

    python -m tools.convert_facemesh             # fetch, convert, check against the reference runtime, write
    python -m tools.convert_facemesh --no-check  # no reference runtime (fewer downloads); the check is skipped

Run at build time, never at run time: it needs the package registry, the product does not.

1. fetch    the wheel ``tools.convert_blazeface`` converts from (``pip download --no-deps mediapipe==0.10.21``, one
            fixed wheel: cp311, manylinux_2_28_x86_64) into ``--cache`` (default ``build/facemesh``), unzip
            ``face_landmark.tflite`` and the wheel's LICENSE, and check their sha256 against the values pinned here
            and there.
2. tools    the conversion-time packages (pinned in ``tools.convert_blazeface``): ``tflite`` (the flatbuffer schema,
            to read the model), ``onnx`` (to write one) and, for the check, ``ai-edge-litert`` (Google's TFLite
            interpreter) are pip-installed with ``--target`` into the cache, not into the project's environment.
3. convert  a small op-by-op translator writes the ONNX graph directly (``onnx.helper``, opset 17): TFLite's NHWC
            activations become NCHW, CONV_2D weights OHWI → OIHW, DEPTHWISE_CONV_2D 1HWC → C1HW (group = input
            channels), SAME / VALID padding → explicit pads (TF's SAME puts the odd pixel at the bottom / right),
            PAD's NHWC paddings → NCHW, PRELU's alpha HWC → CHW (PRELU written as ``Relu(x) + alpha · Min(x, 0)``:
            onnxruntime runs that twice as fast as ONNX's PRelu), fused RELU / RELU6 honoured; DEQUANTIZE (float16
            weights) is followed back to the stored constants.  An op it does not know stops it.  The graph takes
            ``input`` N×192×192×3 (NHWC float32, RGB in [0, 1], as the TFLite model; one Transpose to NCHW inside)
            and gives ``landmarks`` N×1404 (468 × x, y, z in input pixels) and ``presence`` N×1 (face logit).  The
            weights stay the float16 they are stored as, each widened by a Cast that onnxruntime folds at load time.
4. check    run the original ``.tflite`` with the reference interpreter (one image at a time) and the ONNX model
            under onnxruntime (batched) on the same inputs (random ones, a real face crop, a batch of two) and
            compare both outputs; the largest absolute differences go into the provenance file.  Fails if any
            exceeds ``--tolerance``.  Then times onnxruntime on one thread (batch 1 and 3).
5. write    ``common/assets/models/face_landmark.onnx`` and ``FACEMESH_PROVENANCE.md`` (source, sha256, licence,
            check, speed).

Idempotent: the download and the tools are cached; the written model depends only on the pinned inputs, so a second
run rewrites the same bytes (the provenance file's differences come from the same deterministic check; its timings
are measured afresh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dogfilter.common.vision.blazeface import MODEL_DIR  # noqa: E402 - after sys.path: it runs as a script
from dogfilter.common.vision.onnxrun import open_session  # noqa: E402
from tools.convert_blazeface import (  # noqa: E402
    EXPORT,
    LICENSE_MEMBER,
    PACKAGE,
    REFERENCE,
    TOOLS,
    VERSION,
    WHEEL,
    WHEEL_SHA256,
    fetch_members,
    sha256,
    tool_path,
)

MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
MEMBER_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"
OUTPUT = MODEL_DIR / "face_landmark.onnx"
PROVENANCE = MODEL_DIR / "FACEMESH_PROVENANCE.md"
TEST_REFERENCE = ROOT / "tests" / "data" / "facemesh_reference.npz"  # the reference's answers, checked by the tests
INPUT_NAME = "input"
OUTPUTS = {"conv2d_21": "landmarks", "conv2d_31": "presence"}  # TFLite output tensor → ONNX output
OPSET, IR_VERSION = 17, 8  # IR 8: the version of opset 17, read by every onnxruntime since 1.12


# ----------------------------------------------------------------------------------------------- 1. fetch


def fetch(cache: Path) -> dict[str, Path]:
    """The .tflite file (``model``) and the licence, from the wheel (downloaded once)."""
    return fetch_members(cache, {"model": (MEMBER, MEMBER_SHA256)})


# ----------------------------------------------------------------------------------------------- 3. convert


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF's SAME padding of one spatial axis: (begin, end); an odd total puts the extra pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def translate(path: Path, tools: Path, export: Path, onnx_prelu: bool = False) -> tuple[Any, dict]:
    """The TFLite graph as an ONNX model (see the module's docstring), and facts about the graph.

    PRELU becomes ``Relu(x) + alpha · Min(x, 0)`` (the same values, bit for bit), unless ``onnx_prelu``: ONNX's own
    PRelu, which onnxruntime's CPU provider runs as a slow generic broadcast (and outside its blocked NCHWc layout):
    the model took twice the time with it."""
    sys.path[:0] = [str(tools), str(export)]
    import onnx
    import tflite as tfl
    from onnx import TensorProto, helper, numpy_helper

    model = tfl.Model.GetRootAsModel(path.read_bytes(), 0)
    if model.SubgraphsLength() != 1:
        raise SystemExit(f"{path.name}: {model.SubgraphsLength()} subgraphs, expected one")
    g = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    act_names = {v: k for k, v in vars(tfl.ActivationFunctionType).items() if not k.startswith("_")}
    dtypes = {tfl.TensorType.FLOAT16: np.float16, tfl.TensorType.FLOAT32: np.float32,
              tfl.TensorType.INT32: np.int32, tfl.TensorType.INT64: np.int64}
    source: dict[int, int] = {}  # tensor → the constant it is computed from by DEQUANTIZE
    value: dict[int, str] = {}  # activation tensor → its ONNX value (NCHW)
    nodes: list = []
    inits: list = []
    used: set[str] = set()
    shared: dict[str, str] = {}  # initializers used by many nodes

    def shape(t: int) -> list[int]:
        return [int(v) for v in g.Tensors(t).ShapeAsNumpy()]

    def tname(t: int) -> str:
        return g.Tensors(t).Name().decode()

    def fresh(base: str) -> str:
        name, i = base, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    def const(t: int) -> np.ndarray | None:
        """A constant tensor's values (float16 widened to float32: exactly), None for an activation."""
        T = g.Tensors(source.get(t, t))
        raw = model.Buffers(T.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        if T.Sparsity() is not None:
            raise SystemExit(f"tensor {T.Name().decode()}: sparse constants are not supported")
        if T.Type() not in dtypes:
            raise SystemExit(f"tensor {T.Name().decode()}: type {T.Type()} is not supported")
        a = np.frombuffer(raw.tobytes(), dtypes[T.Type()]).reshape([int(v) for v in T.ShapeAsNumpy()])
        return a.astype(np.float32) if a.dtype == np.float16 else a.copy()

    def initializer(base: str, a: np.ndarray, *, half: bool = False) -> str:
        """An initializer; ``half``: stored float16 (values that came from float16) and widened by a Cast."""
        name = fresh(base)
        if half and a.dtype == np.float32 and np.array_equal(a.astype(np.float16).astype(np.float32), a):
            inits.append(numpy_helper.from_array(a.astype(np.float16), name + "_f16"))
            nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        else:
            inits.append(numpy_helper.from_array(a, name))
        return name

    def node(op_type: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def operand(t: int, base: str) -> str:
        """An activation's ONNX value, or a constant laid out to broadcast against NCHW activations."""
        if t in value:
            return value[t]
        a = const(t)
        if a is None:
            raise SystemExit(f"tensor {tname(t)} is used before it is computed")
        if a.ndim == 4:
            a = a.transpose(0, 3, 1, 2)
        elif a.ndim in (1, 3):  # C or HWC, broadcast from the right in NHWC
            a = a.reshape(1, 1, -1) if a.ndim == 1 else a.transpose(2, 0, 1)
        return initializer(base, np.ascontiguousarray(a), half=True)

    def activation(x: str, act: int, out: str) -> str:
        kind = act_names[act]
        if kind == "NONE":
            return node("Identity", [x], out) if x != out else out
        if kind == "RELU":
            return node("Relu", [x], out)
        if kind in ("RELU6", "RELU_N1_TO_1"):
            lo, hi = (0.0, 6.0) if kind == "RELU6" else (-1.0, 1.0)
            return node("Clip", [x, initializer(out + "_min", np.array(lo, np.float32)),
                                 initializer(out + "_max", np.array(hi, np.float32))], out)
        raise SystemExit(f"fused activation {kind} is not supported")

    def pads(options: Any, x: int, kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> list[int]:
        if options.Padding() == tfl.Padding.VALID:
            return [0, 0, 0, 0]
        h, w = shape(x)[1:3]
        (t, b), (le, r) = (_same_pads(n, k, s, d) for n, k, s, d in
                           zip((h, w), kernel, (options.StrideH(), options.StrideW()), dilation, strict=True))
        return [t, le, b, r]

    # the input: NHWC from the caller, NCHW inside
    (t_in,) = g.InputsAsNumpy()
    in_shape = shape(t_in)
    if len(in_shape) != 4 or g.Tensors(t_in).Type() != tfl.TensorType.FLOAT32:
        raise SystemExit(f"input {tname(t_in)}: {in_shape}, expected one NHWC float32 image")
    used.add(INPUT_NAME)
    value[t_in] = node("Transpose", [INPUT_NAME], fresh(tname(t_in) + "_nchw"), perm=[0, 3, 1, 2])

    ops: dict[str, int] = {}
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        kind = op_names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), f"builtin {oc.BuiltinCode()}")
        ops[kind] = ops.get(kind, 0) + 1
        ins, outs = [int(v) for v in op.InputsAsNumpy()], [int(v) for v in op.OutputsAsNumpy()]
        if kind == "DEQUANTIZE":
            if const(ins[0]) is None or g.Tensors(ins[0]).Type() != tfl.TensorType.FLOAT16:
                raise SystemExit(f"op {i}: DEQUANTIZE of anything but a float16 constant is not supported")
            source[outs[0]] = source.get(ins[0], ins[0])
            continue
        if len(outs) != 1 or len(shape(outs[0])) != 4:
            raise SystemExit(f"op {i} ({kind}): only ops with one 4-D output are supported")
        out = fresh(tname(outs[0]))
        bo = op.BuiltinOptions()
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opt = tfl.Conv2DOptions() if kind == "CONV_2D" else tfl.DepthwiseConv2DOptions()
            opt.Init(bo.Bytes, bo.Pos)
            w = const(ins[1])
            if w is None:
                raise SystemExit(f"op {i} ({kind}): the weights are not a constant")
            # OHWI → OIHW; depthwise 1HW(C·M) → (C·M)1HW, one group per input channel
            w = w.transpose(0, 3, 1, 2) if kind == "CONV_2D" else w.transpose(3, 0, 1, 2)
            group = 1 if kind == "CONV_2D" else shape(ins[0])[3]
            dil = (opt.DilationHFactor(), opt.DilationWFactor())
            args = [value[ins[0]], initializer(out + "_w", np.ascontiguousarray(w), half=True)]
            b = const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            if b is not None:
                args.append(initializer(out + "_b", b, half=True))
            y = node("Conv", args, out if opt.FusedActivationFunction() == tfl.ActivationFunctionType.NONE
                     else fresh(out + "_pre"), kernel_shape=list(w.shape[2:]), strides=[opt.StrideH(), opt.StrideW()],
                     dilations=list(dil), group=group, pads=pads(opt, ins[0], w.shape[2:], dil))
            value[outs[0]] = activation(y, opt.FusedActivationFunction(), out)
        elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            opt = tfl.Pool2DOptions()
            opt.Init(bo.Bytes, bo.Pos)
            k = (opt.FilterHeight(), opt.FilterWidth())
            y = node("MaxPool" if kind == "MAX_POOL_2D" else "AveragePool", [value[ins[0]]],
                     out if opt.FusedActivationFunction() == tfl.ActivationFunctionType.NONE else fresh(out + "_pre"),
                     kernel_shape=list(k), strides=[opt.StrideH(), opt.StrideW()], pads=pads(opt, ins[0], k))
            value[outs[0]] = activation(y, opt.FusedActivationFunction(), out)
        elif kind == "ADD":
            opt = tfl.AddOptions()
            opt.Init(bo.Bytes, bo.Pos)
            y = node("Add", [operand(ins[0], out + "_a"), operand(ins[1], out + "_b")],
                     out if opt.FusedActivationFunction() == tfl.ActivationFunctionType.NONE else fresh(out + "_pre"))
            value[outs[0]] = activation(y, opt.FusedActivationFunction(), out)
        elif kind == "PRELU":
            x, alpha = value[ins[0]], operand(ins[1], out + "_alpha")
            if onnx_prelu:
                value[outs[0]] = node("PRelu", [x, alpha], out)
            else:
                if "zero" not in shared:
                    shared["zero"] = initializer("zero", np.array(0.0, np.float32))
                negative = node("Mul", [node("Min", [x, shared["zero"]], fresh(out + "_min")), alpha],
                                fresh(out + "_neg"))
                value[outs[0]] = node("Add", [node("Relu", [x], fresh(out + "_pos")), negative], out)
        elif kind == "PAD":
            p = const(ins[1])
            if p is None or p.shape != (4, 2):
                raise SystemExit(f"op {i} (PAD): paddings must be a constant 4×2")
            nchw = p[[0, 3, 1, 2]]  # NHWC rows → NCHW; ONNX wants all begins, then all ends
            pv = initializer(out + "_pads", np.concatenate([nchw[:, 0], nchw[:, 1]]).astype(np.int64))
            value[outs[0]] = node("Pad", [value[ins[0]], pv], out, mode="constant")
        elif kind in ("RELU", "RELU6"):
            value[outs[0]] = activation(value[ins[0]], getattr(tfl.ActivationFunctionType, kind), out)
        else:
            raise SystemExit(f"op {i}: {kind} is not supported by this translator (tensor {tname(outs[0])})")

    outputs = []
    for t in g.OutputsAsNumpy():
        name, s = tname(int(t)), shape(int(t))
        if name not in OUTPUTS or s[1:3] != [1, 1]:
            raise SystemExit(f"output {name} {s}: expected one of {sorted(OUTPUTS)}, 1×1 spatially")
        node("Flatten", [value[int(t)]], OUTPUTS[name], axis=1)
        outputs.append(helper.make_tensor_value_info(OUTPUTS[name], TensorProto.FLOAT, ["N", s[3]]))
    graph = helper.make_graph(
        nodes, "facemesh",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", *in_shape[1:]])],
        sorted(outputs, key=lambda o: list(OUTPUTS.values()).index(o.name)), inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                   producer_name="dogfilter tools.convert_facemesh",
                                   doc_string="MediaPipe face mesh (468 landmarks): input N×192×192×3 RGB in [0, 1] "
                                              "(NHWC); outputs landmarks N×1404 (x, y, z in input pixels), "
                                              "presence N×1 (logit).")
    helper.set_model_props(onnx_model, {"source": f"{PACKAGE}=={VERSION}:{MEMBER}", "sha256": MEMBER_SHA256,
                                        "license": "Apache-2.0", "arch": "facemesh"})
    onnx.checker.check_model(onnx_model, full_check=True)
    n_params = sum(int(np.prod(i.dims)) for i in inits if i.data_type != TensorProto.INT64)
    facts = {"ops": ops, "input": {tname(t_in): in_shape},
             "outputs": {tname(int(t)): shape(int(t)) for t in g.OutputsAsNumpy()}, "parameters": n_params,
             "onnx_nodes": len(nodes), "onnx_prelu": onnx_prelu}
    return onnx_model, facts


# ----------------------------------------------------------------------------------------------- 4. check


_REFERENCE_RUNNER = textwrap.dedent("""
    import sys, time, numpy as np
    from ai_edge_litert.interpreter import Interpreter
    model, inputs, out = sys.argv[1:4]
    data = np.load(inputs)
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    idx = it.get_input_details()[0]["index"]
    outs = {d["name"]: d["index"] for d in it.get_output_details()}
    res = {}
    for key in data.files:  # one image at a time, at the model's own input shape
        got = {name: [] for name in outs}
        for x in data[key]:
            it.set_tensor(idx, x[None])
            it.invoke()
            for name, i in outs.items():
                got[name].append(it.get_tensor(i).reshape(-1))
        res.update({f"{key}:{name}": np.stack(v) for name, v in got.items()})
    x = data[data.files[0]][:1]
    times = []
    for _ in range(60):
        it.set_tensor(idx, x)
        t = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t)
    res["time"] = np.array(np.median(times[10:]))
    np.savez(out, **res)
""")


def check_inputs() -> dict[str, np.ndarray]:
    """N×192×192×3 float32 RGB inputs in [0, 1]: random ones, and a real face (Grace Hopper) cropped as MediaPipe
    crops a detected face for the mesh (the detector's box, here OpenCV's, widened 1.5×), alone and with its mirror
    image as a batch of two."""
    import cv2

    from dogfilter.common.scene import load_portrait
    from dogfilter.common.scene.portrait import PHOTO_FACE

    rng = np.random.default_rng(0)
    out = {f"random_{i}": rng.uniform(0, 1, (1, 192, 192, 3)).astype(np.float32) for i in range(3)}
    photo = load_portrait()  # 600×512 BGR
    x, y, w, h = PHOTO_FACE
    half = int(round(max(w, h) * 1.5 / 2))
    cx, cy = x + w // 2, y + h // 2
    crop = photo[cy - half:cy + half, cx - half:cx + half]
    face = cv2.resize(crop, (192, 192), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32) / 255
    out["face"] = np.ascontiguousarray(face[None])
    out["face_and_mirror"] = np.ascontiguousarray(np.stack([face, face[:, ::-1]]))
    out["random_batch3"] = np.concatenate([out[f"random_{i}"] for i in range(3)])
    return out


def session(path: Path) -> Any:
    """onnxruntime on one thread, as the product runs it on a small box (the product's own way to open it)."""
    return open_session(path, "face mesh model")[0]


def write_test_reference(inputs: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    """The real face and its mirror image (as uint8: the inputs are whole grey levels / 255) with the reference
    interpreter's outputs, for ``tests/test_faces3d.py``: the product's model is checked against the reference runtime
    in every test run, without the runtime."""
    x = inputs["face_and_mirror"]
    pixels = np.round(x * 255).astype(np.uint8)
    assert np.array_equal(pixels.astype(np.float32) / 255, x)
    np.savez_compressed(TEST_REFERENCE, input=pixels, landmarks=ref["face_and_mirror:conv2d_21"].reshape(2, -1),
                        presence=ref["face_and_mirror:conv2d_31"].reshape(2, 1))


def check(model: Path, onnx_model: Path, reference: Path) -> tuple[list[dict], float]:
    """The ONNX model under onnxruntime against the reference interpreter, on the same inputs; and the reference's
    time per face (one thread, seconds).  Writes the test's reference (:func:`write_test_reference`)."""
    inputs = check_inputs()
    with tempfile.TemporaryDirectory() as d:
        arrays: dict[str, Any] = dict(inputs)
        np.savez(Path(d) / "in.npz", **arrays)
        env = {**os.environ, "PYTHONPATH": str(reference), "TF_CPP_MIN_LOG_LEVEL": "2"}
        subprocess.run([sys.executable, "-c", _REFERENCE_RUNNER, str(model), f"{d}/in.npz", f"{d}/out.npz"],
                       check=True, env=env)
        ref = dict(np.load(Path(d) / "out.npz"))
    write_test_reference(inputs, ref)
    sess = session(onnx_model)
    rows = []
    for key, x in inputs.items():
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {INPUT_NAME: x}), strict=True))
        row: dict[str, Any] = {"input": key, "shape": list(x.shape)}
        for tfl_name, name in OUTPUTS.items():
            r, o = ref[f"{key}:{tfl_name}"], got[name]
            if r.shape != o.shape:
                raise SystemExit(f"{key}/{name}: reference output shape {r.shape}, ours {o.shape}")
            row[name] = float(np.abs(o - r).max())
            row[name + "_range"] = float(np.abs(r).max())
        row["presence_ref"] = [round(float(v), 2) for v in ref[f"{key}:conv2d_31"][:, 0]]
        rows.append(row)
    return rows, float(ref["time"])


def timing(onnx_model: Path, batches: tuple[int, ...] = (1, 3), seconds: float = 2.0) -> dict[int, float]:
    """onnxruntime's time per face (seconds) on one thread, per batch size: the lowest of five rounds' medians."""
    sess = session(onnx_model)
    x = np.random.default_rng(1).uniform(0, 1, (max(batches), 192, 192, 3)).astype(np.float32)
    out = {}
    for n in batches:
        feed = {INPUT_NAME: x[:n]}
        for _ in range(10):
            sess.run(None, feed)
        medians = []
        for _ in range(5):  # the best of five rounds' medians: other processes on the machine only slow it down
            times: list[float] = []
            end = time.perf_counter() + seconds / 5
            while time.perf_counter() < end or len(times) < 10:
                t = time.perf_counter()
                sess.run(None, feed)
                times.append(time.perf_counter() - t)
            medians.append(float(np.median(times)))
        out[n] = min(medians) / n
    return out


# ----------------------------------------------------------------------------------------------- 5. write


def write_provenance(files: dict[str, Path], facts: dict, rows: list[dict], speed: dict[int, float],
                     ref_time: float | None, versions: dict[str, str]) -> None:
    lines = [
        "# Face mesh model: provenance and licence",
        "",
        "Written by `python -m tools.convert_facemesh` (do not edit by hand).",
        "",
        "## Source",
        "",
        f"- Package: PyPI `{PACKAGE}=={VERSION}`, wheel `{WHEEL}` (sha256 `{WHEEL_SHA256}`).",
        "- Authors: The MediaPipe Authors (Google); licence: Apache License 2.0 (text below, from the wheel's "
        f"`{LICENSE_MEMBER}`).",
        "",
        "| converted model | source file in the wheel | source sha256 | converted sha256 |",
        "| --- | --- | --- | --- |",
        f"| `{OUTPUT.name}` | `{MEMBER}` | `{MEMBER_SHA256}` | `{sha256(OUTPUT)}` |",
        "",
        "## What was changed (Apache-2.0 §4(b))",
        "",
        "The TFLite graph was translated op by op into an ONNX graph (opset 17, written with "
        f"`{versions['onnx']}`'s `onnx.helper`; the flatbuffer read with `{TOOLS[0]}`): NHWC activations became "
        "NCHW (one Transpose after the input, which stays NHWC), convolution weights OHWI → OIHW, depthwise ones "
        "1HWC → C1HW with one group per channel, SAME padding → explicit pads, PAD's and PRELU's constants re-laid "
        "for NCHW, " + ("PRELU → ONNX PRelu, " if facts["onnx_prelu"] else "PRELU → `Relu(x) + alpha · Min(x, 0)` "
                        "(the same values, bit for bit; onnxruntime's PRelu took twice the time), ")
        + "and the two 1×1 outputs flattened: `input` N×192×192×3 (float32 RGB in [0, 1]) → `landmarks` "
        "N×1404 (468 × x, y, z in input pixels) and `presence` N×1 (logit; sigmoid > 0.5: a face).  The batch is "
        "dynamic.  The float16 weights, biases and PReLU slopes were copied unchanged, stored as float16 and "
        "widened by Cast nodes (onnxruntime folds them when it loads the model: no cost per run).",
        "",
        "## How the conversion was checked",
        "",
        f"The original `.tflite` ran in the reference interpreter `{REFERENCE[0]}` (Google's LiteRT, one thread, one "
        f"image at a time) and the ONNX model under onnxruntime {versions['onnxruntime']} (batched as listed) on "
        "the same inputs; the raw outputs were compared.  `random_*` are uniform in [0, 1]; `face` is matplotlib's "
        "Grace Hopper sample photo cropped around her face as MediaPipe crops a detection for the mesh (the box "
        "widened 1.5×) and resized to 192×192; `face_and_mirror` is that crop and its mirror image as one batch.",
        "",
        "| input | NHWC shape | landmarks max abs diff, px (max abs) | presence max abs diff (max abs) | "
        "reference presence logit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['input']} | {'×'.join(map(str, r['shape']))} | "
                     f"{r['landmarks']:.1e} ({r['landmarks_range']:.0f}) | "
                     f"{r['presence']:.1e} ({r['presence_range']:.1f}) | "
                     f"{', '.join(f'{v:g}' for v in r['presence_ref'])} |")
    if not rows:
        lines.append("| (not run: `--no-check`) | | | | |")
    lines += ["", "## Speed", "",
              f"onnxruntime {versions['onnxruntime']}, CPUExecutionProvider, one thread, per face (the lowest of "
              f"five rounds' medians) on {platform.machine()} ({os.cpu_count()} cores, one used): "
              + ", ".join(f"batch {n}: {t * 1e3:.2f} ms" for n, t in speed.items())
              + (f"; the reference interpreter, batch 1: {ref_time * 1e3:.2f} ms." if ref_time else "."),
              "", "Graph facts read from the file: " + json.dumps(facts, sort_keys=True), "",
              f"Converted with Python {platform.python_version()}, numpy {np.__version__}, {versions['onnx']}.",
              "", "## Licence of the source model", "", "```", files["license"].read_text().rstrip(), "```", ""]
    PROVENANCE.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "facemesh", help="downloads and tools")
    ap.add_argument("--no-check", action="store_true", help="skip the comparison with the reference interpreter")
    ap.add_argument("--onnx-prelu", action="store_true",
                    help="write ONNX's PRelu, not Relu(x) + alpha·Min(x, 0) (same values; slower in onnxruntime)")
    ap.add_argument("--tolerance", type=float, default=1e-2,
                    help="largest accepted absolute difference (landmarks in pixels, presence logit)")
    a = ap.parse_args(argv)
    a.cache.mkdir(parents=True, exist_ok=True)
    files = fetch(a.cache)
    tools = tool_path(a.cache, "tools", TOOLS)
    export = tool_path(a.cache, "export", EXPORT)
    reference = None if a.no_check else tool_path(a.cache, "reference", REFERENCE)
    onnx_model, facts = translate(files["model"], tools, export, a.onnx_prelu)
    OUTPUT.write_bytes(onnx_model.SerializeToString())
    print(f"{facts['onnx_nodes']} ONNX nodes, {facts['parameters']} parameters → {OUTPUT.relative_to(ROOT)} "
          f"({OUTPUT.stat().st_size / 1e6:.2f} MB)")
    import onnxruntime

    versions = {"onnx": EXPORT[0], "onnxruntime": onnxruntime.__version__}
    rows: list[dict] = []
    ref_time = None
    if reference is not None:
        rows, ref_time = check(files["model"], OUTPUT, reference)
        for r in rows:
            print(f"  {r['input']:16s} {r['shape']}: landmarks max |diff| {r['landmarks']:.2e} px "
                  f"(of {r['landmarks_range']:.0f}), presence max |diff| {r['presence']:.2e} "
                  f"(reference logits {r['presence_ref']})")
        worst = max(max(r["landmarks"], r["presence"]) for r in rows)
        if worst > a.tolerance:
            raise SystemExit(f"the ONNX model differs from the reference by {worst:.3g} > {a.tolerance}")
    speed = timing(OUTPUT)
    print("onnxruntime, one thread, per face: " + ", ".join(f"batch {n}: {t * 1e3:.2f} ms" for n, t in speed.items())
          + (f"; reference interpreter: {ref_time * 1e3:.2f} ms" if ref_time else ""))
    write_provenance(files, facts, rows, speed, ref_time, versions)
    print(f"wrote {PROVENANCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
