"""Scores, confusion matrices and figures for any classifier (checkpoint or least-squares model).

Scores of one model on one data set (all fractions of faces):
- ``accuracy``: argmax over the data set's own classes (for fer2013_test.npz: happy/sad/surprise, even when
  the model also knows neutral), the tutorial's measure; absent for a one-class file such as the neutral one
- ``accuracy_all``: argmax over every class the model knows (for a neutral file: neutral accuracy)
- ``mask``: the face gets the mask of its true class (common.masks.EMOTION_MASKS), e.g. a neutral face read as
  sad or neutral gets the dalmatian either way
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dogfilter.commands.train import fer
from dogfilter.common.vision.masks import EMOTION_MASKS
from dogfilter.common.vision.models import EmotionClassifier


def predict_proba(clf: EmotionClassifier, X: np.ndarray, batch: int = 1024) -> np.ndarray:
    if len(X) == 0:
        return np.zeros((0, len(clf.classes)), np.float32)
    return np.concatenate([clf.predict_proba(X[i:i + batch]) for i in range(0, len(X), batch)])


def scores_from_proba(P: np.ndarray, model_classes: Sequence[str], data: fer.FerData) -> dict:
    model_classes = list(model_classes)
    out: dict = {"n": int(len(data))}
    if len(data) == 0:
        return out
    if len(data.classes) > 1 and all(c in model_classes for c in data.classes):
        cols = [model_classes.index(c) for c in data.classes]
        out["accuracy"] = round(float((P[:, cols].argmax(1) == data.Y).mean()), 4)
    names = data.names()
    pred = np.asarray(model_classes, dtype=object)[P.argmax(1)]
    known = np.isin(names, model_classes)
    if known.any():
        out["accuracy_all"] = round(float((pred[known] == names[known]).mean()), 4)
    masks = np.vectorize(lambda c: EMOTION_MASKS.get(c, "?"), otypes=[object])
    out["mask"] = round(float((masks(pred) == masks(names)).mean()), 4)
    return out


def scores(clf: EmotionClassifier, data: fer.FerData) -> dict:
    return scores_from_proba(predict_proba(clf, data.X), clf.classes, data)


def confusion(pred: np.ndarray, true: np.ndarray, n_true: int, n_pred: int) -> np.ndarray:
    m = np.zeros((n_true, n_pred), np.int64)
    np.add.at(m, (true, pred), 1)
    return m


def plot_confusion(P: np.ndarray, model_classes: Sequence[str], data: fer.FerData, title: str, path: Path) -> Path:
    """Rows: the data set's classes; columns: every class of the model; cells: counts and row fractions."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    m = confusion(P.argmax(1), data.Y, len(data.classes), len(model_classes))
    rows = list(data.classes)
    frac = m / np.maximum(1, m.sum(1, keepdims=True))
    fig, ax = plt.subplots(figsize=(1.2 * len(model_classes) + 2.2, 1.0 * len(rows) + 1.8), dpi=110)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]}\n{frac[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(model_classes)), list(model_classes))
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_sweep(rows: list[dict], title: str, path: Path) -> Path:
    """Accuracy vs d: one train and one test curve per method (rows: {'method', 'd', 'train', 'test'})."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for k, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["d"])
        d = [r["d"] for r in rs]
        ax.plot(d, [100 * r["train"] for r in rs], "o-", color=f"C{k}", label=f"{method} train")
        ax.plot(d, [100 * r["test"] for r in rs], "s--", color=f"C{k}", label=f"{method} test")
    ax.set_xscale("log")
    ax.set_xlabel("d (random features)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def jitter_stability(clf: EmotionClassifier, X: np.ndarray, frames: int = 10, smooth: float = 0.5,
                     seed: int = 0) -> dict:
    """Does a face keep its mask from frame to frame?  Each face is shown ``frames`` times, each time slightly
    moved (shift ±2 px, rotation ±3°, scale ±4 %, mirrored or not) and with its brightness and contrast changed by
    up to ±10 %, as a tracked face in live video; the probabilities are smoothed the composite's way
    (``p ← smooth·p + (1 − smooth)·new``).  Returns the mean number of mask changes per face per 100 frames, raw and
    smoothed, the share of faces whose smoothed mask never changes, and each mask's share of the last frame."""
    import torch

    from dogfilter.commands.train import fernet

    r = fernet.Recipe(rotate_deg=3.0, scale=0.04, shift_px=2.0, flip=True)
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.from_numpy(np.ascontiguousarray(X)).float().view(-1, 1, 48, 48)
    mask_of = np.vectorize(lambda c: EMOTION_MASKS.get(c, "?"), otypes=[object])
    classes = np.asarray(clf.classes, dtype=object)
    raw, sm, S = [], [], None
    for _ in range(frames):
        x = fernet.augment(x0, r, gen)
        gain = 1 + (torch.rand(len(x), 1, 1, 1, generator=gen) * 2 - 1) * 0.1
        x = ((x - 128) * gain + 128 + (torch.rand(len(x), 1, 1, 1, generator=gen) * 2 - 1) * 12).clamp(0, 255)
        P = predict_proba(clf, x.round().to(torch.uint8).view(-1, 48, 48).numpy())
        S = P if S is None else smooth * S + (1 - smooth) * P
        raw.append(mask_of(classes[P.argmax(1)]))
        sm.append(mask_of(classes[S.argmax(1)]))
    raw_a, sm_a = np.stack(raw), np.stack(sm)

    def flips(m: np.ndarray) -> float:
        return float((m[1:] != m[:-1]).sum(0).mean() / (frames - 1) * 100) if frames > 1 else 0.0

    last = sm_a[-1]
    return {"faces": int(len(X)), "frames": frames, "flips_per_100_frames_raw": round(flips(raw_a), 2),
            "flips_per_100_frames_smoothed": round(flips(sm_a), 2),
            "stable_smoothed": round(float((sm_a == sm_a[:1]).all(0).mean()), 4),
            "mask_share": {str(k): round(float((last == k).mean()), 4) for k in sorted(set(last))}}
