"""The project's default classifier recipe: a compact ResNet (common.models.FerNet) trained on CPU.

Recipe: per-image normalisation; augmentation on every batch (horizontal flip, rotation ±10°, scale ±10 %,
shift ±4 px, all one affine warp); cross-entropy with label smoothing; SGD with Nesterov momentum, weight
decay and a one-cycle learning-rate schedule; the epoch with the best accuracy on a held-out part of the
*training* data is kept (the test file plays no part in any choice).  Seeded: the same command gives the
same weights on the same machine and torch build.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from dogfilter.commands.train import fer
from dogfilter.common.vision.models import FerNet, normalise

log = logging.getLogger("train")
NORM = {"kind": "per_image"}


@dataclass
class Recipe:
    epochs: int = 25
    batch: int = 128
    lr: float = 0.1  # the one-cycle peak
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    widths: list[int] = field(default_factory=lambda: [12, 24, 48, 128])
    dropout: float = 0.2
    flip: bool = True
    rotate_deg: float = 10.0
    scale: float = 0.10
    shift_px: float = 4.0
    seed: int = 0


def augment(x: torch.Tensor, r: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Random flip + rotation + scale + shift of N×1×48×48 float pixels, as one bilinear warp per face."""
    n = len(x)
    u = torch.rand(5, n, generator=gen) * 2 - 1  # uniform in [-1, 1]
    ang = u[0] * math.radians(r.rotate_deg)
    s = 1 + u[1] * r.scale
    t = u[2:4] * (2 * r.shift_px / x.shape[-1])  # affine_grid works in [-1, 1] coordinates
    sign = torch.where((u[4] > 0) & r.flip, -1.0, 1.0)  # mirror the x axis for half of the faces
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos * sign, -sin, t[0]], 1), torch.stack([sin * sign, cos, t[1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.inference_mode()
def predict_logits(net: nn.Module, X: np.ndarray, batch: int = 512) -> torch.Tensor:
    net.eval()
    out = []
    for i in range(0, len(X), batch):
        x = torch.from_numpy(np.ascontiguousarray(X[i:i + batch])).float().view(-1, 1, 48, 48)
        out.append(net(normalise(x, NORM)))
    return torch.cat(out) if out else torch.zeros(0)


def restricted_accuracy(logits: torch.Tensor, Y: np.ndarray, cols: list[int]) -> float:
    """Accuracy with the argmax restricted to ``cols`` (labels are indices into cols)."""
    if len(Y) == 0:
        return float("nan")
    pred = logits[:, cols].argmax(1).numpy()
    return float((pred == Y).mean())


def val_scores(net: nn.Module, val: fer.FerData) -> dict[str, float]:
    """Held-out scores used for selection: 3-class accuracy (argmax over happy/sad/surprise on those faces),
    accuracy over all classes, and neutral accuracy where neutral is a class."""
    logits = predict_logits(net, val.X)
    out = {"all": float((logits.argmax(1).numpy() == val.Y).mean())}
    three = [val.classes.index(c) for c in fer.TUTORIAL_CLASSES if c in val.classes]
    m = np.isin(val.Y, three)
    out["three"] = restricted_accuracy(logits[torch.from_numpy(m)], val.Y[m], three)
    if "neutral" in val.classes:
        k = val.classes.index("neutral")
        out["neutral"] = float((logits[torch.from_numpy(val.Y == k)].argmax(1).numpy() == k).mean())
    return out


def train_fernet(train: fer.FerData, r: Recipe, val: fer.FerData | None = None,
                 progress: bool = True) -> tuple[FerNet, dict]:
    torch.manual_seed(r.seed)
    rng = np.random.default_rng(r.seed)
    gen = torch.Generator().manual_seed(r.seed)
    net = FerNet(len(train.classes), widths=r.widths, dropout=r.dropout)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0}],
                          lr=r.lr, momentum=r.momentum, nesterov=True)
    steps = math.ceil(len(train) / r.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, epochs=r.epochs, steps_per_epoch=steps,
                                                pct_start=0.2, div_factor=20, final_div_factor=200)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)
    X = torch.from_numpy(train.X).view(-1, 1, 48, 48)
    Y = torch.from_numpy(train.Y)
    history: list[dict] = []
    best: dict = {"epoch": 0, "score": -1.0, "state": None}
    t0 = time.time()
    for epoch in range(r.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(X)))
        total, correct, n = 0.0, 0, 0
        bar = tqdm(range(0, len(X), r.batch), desc=f"epoch {epoch + 1}/{r.epochs}", disable=not progress,
                   leave=False)
        for i in bar:
            idx = order[i:i + r.batch]
            if len(idx) < 2:  # BatchNorm needs two faces
                continue
            x = normalise(augment(X[idx].float(), r, gen), NORM)
            out = net(x)
            loss = loss_fn(out, Y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == Y[idx]).sum())
            n += len(idx)
            bar.set_postfix(loss=f"{total / n:.3f}", acc=f"{correct / n:.3f}")
        rec = {"epoch": epoch + 1, "loss": round(total / n, 4), "train_aug_acc": round(correct / n, 4),
               "seconds": round(time.time() - t0, 1)}
        if val is not None:
            sc = val_scores(net, val)
            rec.update({f"val_{k}": round(v, 4) for k, v in sc.items()})
            score = sc["three"] if not math.isnan(sc["three"]) else sc["all"]
            if score >= best["score"]:  # ties: the later epoch (one-cycle ends on its smallest steps)
                best = {"epoch": epoch + 1, "score": score,
                        "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}
        history.append(rec)
        log.info("%s", " ".join(f"{k} {v}" for k, v in rec.items()))
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    info = {"best_epoch": best["epoch"] or r.epochs, "history": history,
            "val": next((h for h in history if h["epoch"] == best["epoch"]), None)}
    return net.eval(), info


def recipe_meta(r: Recipe) -> dict:
    d = asdict(r)
    d.update({"optimizer": "SGD nesterov", "schedule": "one-cycle (pct_start 0.2)", "loss": "cross-entropy",
              "augment": "hflip, rotate, scale, shift (one affine warp, border padding)"})
    return d
