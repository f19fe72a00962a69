"""Emotion models: the tutorial's checkpoint format, weights-only loading, clear errors, and a real worker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dogfilter.common import ASSETS
from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.crops import face_crop
from dogfilter.common.vision.models import (
    DEFAULT_MODEL,
    EmotionClassifier,
    TutorialNet,
    load_checkpoint,
)

TUTORIAL_MODEL = ASSETS / "models" / "fer3_tutorial_cnn.pth"

pytestmark = pytest.mark.timeout(60)


def _face(assets, name: str) -> np.ndarray:
    return cv2.imread(str(assets / name), cv2.IMREAD_GRAYSCALE)


@pytest.mark.unit
def test_tutorial_checkpoint_reads_happy_and_surprise(assets) -> None:
    clf = EmotionClassifier(assets / "model_best.pth")
    probs = clf.predict_proba(np.stack([_face(assets, "0_28809.png"), _face(assets, "2_1028.png")]))
    assert [clf.classes[i] for i in probs.argmax(1)] == ["happy", "surprise"]
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.unit
def test_batched_and_single_inference_agree(assets) -> None:
    clf = EmotionClassifier(assets / "model_best.pth")
    faces = np.stack([_face(assets, f) for f in ("0_28809.png", "1_25803.png", "2_1028.png")])
    batch = clf.predict_proba(faces)
    single = np.concatenate([clf.predict_proba(f[None]) for f in faces])
    assert np.allclose(batch, single, atol=1e-5)


@pytest.mark.unit
def test_committed_tutorial_net_has_provenance() -> None:
    ckpt = load_checkpoint(TUTORIAL_MODEL)
    assert ckpt.arch == "tutorial" and ckpt.classes == ["happy", "sad", "surprise"]
    assert {"command", "recipe", "accuracy", "data"} <= set(ckpt.meta)
    assert ckpt.meta["accuracy"]["test"] > 0.5  # well above the 1/3 of chance
    assert TUTORIAL_MODEL.stat().st_size < 400_000
    assert EmotionClassifier(TUTORIAL_MODEL).predict_proba(np.zeros((5, 48, 48), np.uint8)).shape == (5, 3)


@pytest.mark.unit
def test_default_model_loads_with_its_provenance() -> None:
    ckpt = load_checkpoint(DEFAULT_MODEL)
    assert {"happy", "sad", "surprise"} <= set(ckpt.classes)
    assert {"command", "accuracy", "data"} <= set(ckpt.meta)
    assert DEFAULT_MODEL.stat().st_size < 2_500_000
    clf = EmotionClassifier()
    p = clf.predict_proba(np.zeros((5, 48, 48), np.uint8))
    assert p.shape == (5, len(clf.classes)) and np.allclose(p.sum(1), 1, atol=1e-5)


@pytest.mark.unit
def test_default_model_reads_real_faces_above_chance(fer_dir) -> None:
    with np.load(fer_dir / "fer2013_test.npz") as d:
        X, Y = d["X"][:600].reshape(-1, 48, 48), d["Y"][:600]
    acc = (EmotionClassifier().predict_proba(X).argmax(1) == Y).mean()
    assert acc > 0.5


@pytest.mark.unit
def test_face_crop_is_the_tutorials_input_and_clips_at_the_edge() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[10:50, 20:60] = 255
    crop = face_crop(img, (20, 10, 40, 40))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8 and crop.min() == 255
    assert face_crop(img, (-20, -20, 50, 50)).shape == (48, 48)


@pytest.mark.unit
def test_bad_model_files_give_one_clear_error(tmp_path) -> None:
    with pytest.raises(DogfilterError, match="model file not found"):
        EmotionClassifier(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    with pytest.raises(DogfilterError, match="not a weights-only PyTorch checkpoint"):
        EmotionClassifier(tmp_path / "junk.pth")
    torch.save({"weights": {}}, tmp_path / "nosd.pth")
    with pytest.raises(DogfilterError, match="no 'state_dict'"):
        EmotionClassifier(tmp_path / "nosd.pth")
    sd = TutorialNet(n_classes=7).state_dict()
    torch.save({"state_dict": sd}, tmp_path / "sevenclass.pth")  # 7 outputs, no meta saying so
    with pytest.raises(DogfilterError, match="does not fit the tutorial architecture"):
        EmotionClassifier(tmp_path / "sevenclass.pth")


class Evil:
    """Any object that is not plain weights: unpickling it could run code."""


@pytest.mark.unit
def test_pickled_objects_are_refused(tmp_path) -> None:
    torch.save({"state_dict": {}, "obj": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(DogfilterError, match="weights-only"):
        EmotionClassifier(tmp_path / "evil.pth")


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_the_default_models_onnx_export_gives_pytorchs_answers_on_real_faces(assets) -> None:
    """tools/export_classifier: the whole of predict_proba in one ONNX graph, run without PyTorch."""
    from dogfilter.common.vision.classifier import load_classifier

    onnx, pt = load_classifier(engine="auto"), load_classifier(engine="torch")
    assert (onnx.engine, pt.engine) == ("onnxruntime", "torch") and onnx.classes == pt.classes
    faces = np.stack([cv2.resize(cv2.imread(str(assets / f), cv2.IMREAD_GRAYSCALE), (48, 48))
                      for f in ("0_28809.png", "1_25803.png", "2_1028.png")])
    faces = np.concatenate([faces, np.random.default_rng(0).integers(0, 255, (61, 48, 48), dtype=np.uint8)])
    a, b = onnx.predict_proba(faces), pt.predict_proba(faces)
    assert np.abs(a - b).max() < 1e-4 and (a.argmax(1) == b.argmax(1)).all()


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_an_export_made_from_another_checkpoint_is_not_used(tmp_path) -> None:
    import shutil

    from dogfilter.common.vision.classifier import load_classifier

    for suffix in (".pth", ".onnx", ".onnx.json"):
        shutil.copy(DEFAULT_MODEL.with_suffix(suffix), tmp_path / f"m{suffix}")
    assert load_classifier(tmp_path / "m.pth").engine == "onnxruntime"
    with (tmp_path / "m.pth").open("ab") as f:
        f.write(b"\0")  # a changed checkpoint: its old export no longer speaks for it
    with pytest.raises(DogfilterError, match="no ONNX export of its own"):
        load_classifier(tmp_path / "m.pth", engine="onnxruntime")


@pytest.mark.system
@pytest.mark.timeout(60)
def test_the_default_detect_and_classify_paths_never_load_pytorch() -> None:
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from dogfilter.common.vision.classifier import load_classifier\n"
            "from dogfilter.common.vision.detectors import create_detector\n"
            "from dogfilter.services import capture, classify, composite, detect, display\n"
            "load_classifier().predict_proba(np.zeros((2, 48, 48), np.uint8))\n"
            "create_detector('blazeface').detect(np.zeros((240, 320, 3), np.uint8))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
