"""Train and evaluate emotion classifiers on FER2013.

    dogfilter-train cnn --train FER/fer2013_train.npz --test FER/fer2013_test.npz --out model.pth
    dogfilter-train evaluate model.pth --data FER/fer2013_test.npz

``cnn`` is the tutorial's Step 7 recipe: its network, raw 0..255 pixels, cross-entropy, SGD with lr 0.01 and
momentum 0.9, batch 32, 20 epochs, seeded.  The checkpoint is the tutorial's format plus a ``meta`` map.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from common.config import DogfilterError
from common.models import TUTORIAL_CLASSES, EmotionClassifier, TutorialNet
from tools import fer

log = logging.getLogger("train")


def accuracy(clf: EmotionClassifier, data: fer.FerData, batch: int = 1024) -> float:
    pred = np.concatenate([clf.predict_proba(data.X[i:i + batch]).argmax(1) for i in range(0, len(data.X), batch)])
    return float((pred == data.Y).mean())


def split_val(data: fer.FerData, fraction: float, seed: int) -> tuple[fer.FerData, fer.FerData | None]:
    """Hold out a seeded ``fraction`` of the training rows for model selection (never the test file)."""
    if fraction <= 0:
        return data, None
    idx = np.random.default_rng(seed + 1).permutation(len(data.Y))
    n_val = int(round(fraction * len(idx)))
    v, t = np.sort(idx[:n_val]), np.sort(idx[n_val:])
    return (fer.FerData(data.X[t], data.Y[t], f"{data.source}[train {1 - fraction:.0%}]"),
            fer.FerData(data.X[v], data.Y[v], f"{data.source}[val {fraction:.0%}]"))


def _acc(net: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> float:
    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(X[i:i + 2048]).argmax(1) for i in range(0, len(X), 2048)])
    return float((pred == Y).float().mean())


def train_cnn(train: fer.FerData, epochs: int = 20, lr: float = 0.01, momentum: float = 0.9, batch: int = 32,
              seed: int = 0, device: str = "cpu", progress: bool = True,
              val: fer.FerData | None = None) -> tuple[TutorialNet, dict]:
    """The tutorial's Step 7 loop. With ``val``, keeps the epoch with the best validation accuracy (the
    tutorial's checkpoint is named model_best.pth for the same reason)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = TutorialNet(len(TUTORIAL_CLASSES)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    X = torch.from_numpy(train.X).float().view(-1, 1, 48, 48).to(device)
    Y = torch.from_numpy(train.Y).to(device)
    if val is not None:
        Xv = torch.from_numpy(val.X).float().view(-1, 1, 48, 48).to(device)
        Yv = torch.from_numpy(val.Y).to(device)
    best: dict = {"epoch": 0, "val": -1.0, "state": None}
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(X))).to(device)
        net.train()
        total, n = 0.0, 0
        bar = tqdm(range(0, len(X), batch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(net(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
            bar.set_postfix(loss=f"{total / n:.3f}")
        if val is not None:
            acc = _acc(net, Xv, Yv)
            log.info("epoch %d/%d loss %.4f val %.4f", epoch + 1, epochs, total / n, acc)
            if acc > best["val"]:
                best = {"epoch": epoch + 1, "val": acc,
                        "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
        else:
            log.info("epoch %d/%d loss %.4f", epoch + 1, epochs, total / n)
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    info = {"best_epoch": best["epoch"] or epochs, "val_accuracy": round(best["val"], 4) if val is not None else None}
    return net.eval().cpu(), info


def save_checkpoint(net: torch.nn.Module, path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "meta": meta}, path)


def cmd_cnn(a: argparse.Namespace) -> None:
    train, test = fer.load(a.train, "train"), fer.load(a.test, "test")
    if a.limit:
        train = train.head(a.limit)
    fit, val = split_val(train, a.val_fraction, a.seed)
    t0 = time.time()
    net, info = train_cnn(fit, epochs=a.epochs, lr=a.lr, momentum=a.momentum, batch=a.batch, seed=a.seed,
                          device=a.device, progress=not a.quiet, val=val)
    meta = {
        "name": Path(a.out).stem, "arch": "tutorial", "classes": TUTORIAL_CLASSES, "input": [1, 48, 48],
        "norm": {"mean": 0.0, "std": 1.0},
        "recipe": {"optimizer": "SGD", "lr": a.lr, "momentum": a.momentum, "batch": a.batch, "epochs": a.epochs,
                   "seed": a.seed, "loss": "cross-entropy", "val_fraction": a.val_fraction, **info},
        "data": {"train": train.source, "train_fingerprint": train.fingerprint,
                 "test": test.source, "test_fingerprint": test.fingerprint},
        "command": " ".join(["dogfilter-train", *sys.argv[1:]]),
        "train_seconds": round(time.time() - t0, 1),
    }
    out = Path(a.out)
    save_checkpoint(net, out, meta)
    clf = EmotionClassifier(out)
    meta["accuracy"] = {"train": round(accuracy(clf, train), 4), "test": round(accuracy(clf, test), 4)}
    save_checkpoint(net, out, meta)
    print(json.dumps({"out": str(out), **meta["accuracy"], "train_seconds": meta["train_seconds"]}))


def cmd_evaluate(a: argparse.Namespace) -> None:
    clf = EmotionClassifier(a.model)
    for path in a.data:
        d = fer.load(path, a.split)
        print(f"{path}: accuracy {accuracy(clf, d):.4f} on {len(d.Y)} faces")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dogfilter-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cnn", help="the tutorial's CNN with its Step 7 recipe")
    c.add_argument("--train", required=True)
    c.add_argument("--test", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--epochs", type=int, default=20)
    c.add_argument("--lr", type=float, default=0.01)
    c.add_argument("--momentum", type=float, default=0.9)
    c.add_argument("--batch", type=int, default=32)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--val-fraction", type=float, default=0.1,
                   help="training rows held out to pick the best epoch (0: keep the last epoch)")
    c.add_argument("--limit", type=int, default=0, help="train on the first N rows only")
    c.add_argument("--device", default="cpu")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(fn=cmd_cnn)
    e = sub.add_parser("evaluate", help="accuracy of any checkpoint (the tutorial's model_best.pth included)")
    e.add_argument("model")
    e.add_argument("--data", nargs="+", required=True)
    e.add_argument("--split", default="test", help="for csv files: train, test or private")
    e.set_defaults(fn=cmd_evaluate)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        a.fn(a)
    except DogfilterError as err:
        print(f"dogfilter-train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
