"""Train and evaluate emotion classifiers on FER2013: the tutorial's three (Steps 5-7) and the project's default.

    FER=../shared/fer2013
    dogfilter-train ols    --train $FER/fer2013_train.npz --test $FER/fer2013_test.npz     # Step 5: 100 pixels
    dogfilter-train rf-ols --train ... --test ... --d 100                                   # Step 6: random features
    dogfilter-train ridge  --train ... --test ... --d 1000 --lam 1e10                       # Step 6: ridge
    dogfilter-train sweep  --train ... --test ... --out-dir runs/figures                    # accuracy vs d figures
    dogfilter-train cnn    --train ... --test ... --out model.pth                           # Step 7 recipe
    dogfilter-train fernet --train $FER/fer2013_train.npz $FER/fer2013_neutral_train.npz --out m.pth  # default
    dogfilter-train evaluate MODEL.pth --data $FER/fer2013_test.npz [--figures DIR]       # any checkpoint
    dogfilter-train bench  [MODEL.pth]                                                      # ms per face, 1 core
    dogfilter-train table  [--data-dir $FER] [--figures DIR]                                # everything vs tutorial

Data: the tutorial's npz files or Kaggle's fer2013.csv (the split comes from its Usage column: --train uses
Training, --test PublicTest).  ``cnn`` is the tutorial's Step 7 recipe: its network, raw 0..255 pixels,
cross-entropy, SGD with lr 0.01 and momentum 0.9, batch 32, 20 epochs, seeded, keeping the epoch that scores best
on a held-out 10 % of the training rows.  ``fernet`` is the project's default model (commands/train/fernet.py).
Checkpoints are the tutorial's format ({'state_dict'}) plus a ``meta`` map.  Every random choice is seeded.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:  # training is PyTorch's: say how to get it, in one line, instead of a traceback
    from dogfilter.common.optional import TORCH_HINT

    print(f"dogfilter-train: error: training needs PyTorch, which this install does not have: {TORCH_HINT}",
          file=sys.stderr)
    raise SystemExit(2) from None
from tqdm import tqdm

from dogfilter.commands.train import fer, linear, report
from dogfilter.common import ASSETS
from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.models import DEFAULT_MODEL, TUTORIAL_CLASSES, EmotionClassifier, TutorialNet

log = logging.getLogger("train")
FER_DIR = Path(__file__).resolve().parents[3] / "shared" / "fer2013"  # ../shared beside the checkout
MODELS_DIR = ASSETS / "models"
SEED_MODEL = FER_DIR.parent / "seed" / "assets" / "model_best.pth"
# the tutorial's published figures (its own 80/20 split of fer2013.csv), train / test %
TUTORIAL = {"ols": (47.5, 45.3), "rf-ols": (58.4, 58.4), "ridge": (65.1, 62.2), "cnn": (87.9, 75.5)}


def accuracy(clf: EmotionClassifier, data: fer.FerData, batch: int = 1024) -> float:
    """The tutorial's measure: argmax over the data's own classes (a 4-class model on 3-class data: the argmax
    of happy/sad/surprise)."""
    sc = report.scores(clf, data)
    return float(sc.get("accuracy", sc.get("accuracy_all", float("nan"))))


def split_val(data: fer.FerData, fraction: float, seed: int) -> tuple[fer.FerData, fer.FerData | None]:
    """Hold out a seeded ``fraction`` of the training rows for model selection (never the test file)."""
    if fraction <= 0:
        return data, None
    idx = np.random.default_rng(seed + 1).permutation(len(data.Y))
    n_val = int(round(fraction * len(idx)))
    v, t = np.sort(idx[:n_val]), np.sort(idx[n_val:])
    return data.take(t, f"train {1 - fraction:.0%}"), data.take(v, f"val {fraction:.0%}")


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
        "command": command_line(a),
        "train_seconds": round(time.time() - t0, 1),
    }
    out = Path(a.out)
    save_checkpoint(net, out, meta)
    clf = EmotionClassifier(out)
    meta["accuracy"] = acc = {"train": round(accuracy(clf, train), 4), "test": round(accuracy(clf, test), 4)}
    save_checkpoint(net, out, meta)
    print(json.dumps({"out": str(out), **acc, "train_seconds": meta["train_seconds"]}))


def param_count(net: torch.nn.Module | str | Path) -> int:
    """Trainable parameters of a network, or of the network a checkpoint builds."""
    if isinstance(net, (str, Path)):
        from dogfilter.common.vision.models import build_model, load_checkpoint

        net = build_model(load_checkpoint(net), str(net))
    return sum(p.numel() for p in net.parameters())


def ms_per_face(model: str | Path, batch: int = 64, threads: int = 1, seconds: float = 3.0) -> float:
    """Median milliseconds per face of EmotionClassifier.predict_proba on ``threads`` CPU threads, batched."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        clf = EmotionClassifier(model)
        x = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
        for _ in range(3):
            clf.predict_proba(x)
        runs: list[float] = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end or len(runs) < 5:
            t = time.perf_counter()
            clf.predict_proba(x)
            runs.append((time.perf_counter() - t) / batch * 1000)
        return float(np.median(runs))
    finally:
        torch.set_num_threads(old)


def cmd_fernet(a: argparse.Namespace) -> None:
    from dogfilter.commands.train import fernet

    train = fer.load_many(a.train, "train", classes=a.csv_classes)
    if a.limit:
        train = train.take(np.random.default_rng(a.seed).permutation(len(train))[:a.limit], f"{a.limit} random")
    fit, val = split_val(train, a.val_fraction, a.seed)
    r = fernet.Recipe(epochs=a.epochs, batch=a.batch, lr=a.lr, weight_decay=a.weight_decay,
                      label_smoothing=a.label_smoothing, widths=a.widths, dropout=a.dropout, seed=a.seed)
    log.info("training %s on %d faces (%s), selecting on %d held-out training faces", "/".join(train.classes),
             len(fit), ", ".join(f"{c} {int((fit.Y == i).sum())}" for i, c in enumerate(fit.classes)),
             len(val) if val is not None else 0)
    t0 = time.time()
    net, info = fernet.train_fernet(fit, r, val, progress=not a.quiet)
    meta = {
        "name": Path(a.out).stem, "arch": "fernet", "arch_args": {"widths": r.widths, "dropout": r.dropout},
        "classes": train.classes, "input": [1, 48, 48], "norm": fernet.NORM,
        "recipe": {**fernet.recipe_meta(r), "val_fraction": a.val_fraction, "best_epoch": info["best_epoch"]},
        "selection": info["val"], "history": info["history"],
        "data": {"train": train.source, "train_fingerprint": train.fingerprint, "train_faces": len(train)},
        "command": command_line(a),
        "train_seconds": round(time.time() - t0, 1), "params": param_count(net),
        "torch": str(torch.__version__),
    }
    out = Path(a.out)
    save_checkpoint(net, out, meta)
    clf = EmotionClassifier(out)
    meta["accuracy"] = {"train": report.scores(clf, train)}
    for path in a.test or []:
        d = fer.load(path, "test", classes=a.csv_classes)
        meta["data"].setdefault("test", []).append({"file": d.source, "fingerprint": d.fingerprint})
        meta["accuracy"][Path(path).stem] = report.scores(clf, d)
    if a.test:  # the headline: 3-class accuracy on the first test file
        first = meta["accuracy"][Path(a.test[0]).stem]
        meta["accuracy"]["test"] = first.get("accuracy", first.get("accuracy_all"))
    if a.bench_seconds > 0:
        meta["ms_per_face_1core_b64"] = round(ms_per_face(out, seconds=a.bench_seconds), 3)
    save_checkpoint(net, out, meta)
    meta["size_bytes"] = out.stat().st_size
    save_checkpoint(net, out, meta)
    print(json.dumps({"out": str(out), "accuracy": meta["accuracy"], "params": meta["params"],
                      "ms_per_face_1core_b64": meta.get("ms_per_face_1core_b64"), "size_bytes": meta["size_bytes"],
                      "train_seconds": meta["train_seconds"], "best_epoch": info["best_epoch"]}))


def command_line(a: argparse.Namespace) -> str:
    """The command as it was given (for a checkpoint's provenance)."""
    return shlex.join(["dogfilter-train", *getattr(a, "argv", sys.argv[1:])])


def _pct(v: float | None) -> str:
    return "  -  " if v is None or v != v else f"{100 * v:5.1f}"


def _print_scores(name: str, sc: dict) -> None:
    parts = [f"{k} {sc[k]:.4f}" for k in ("accuracy", "accuracy_all", "mask") if k in sc]
    print(f"{name}: {', '.join(parts)} on {sc['n']} faces")


def _linear_data(a: argparse.Namespace) -> tuple[fer.FerData, fer.FerData]:
    train, test = fer.load(a.train, "train"), fer.load(a.test, "test")
    if a.limit:
        train = train.take(np.random.default_rng(a.seed).permutation(len(train))[:a.limit], f"{a.limit} random")
    return train, test


def _linear_report(model: linear.LinearModel, label: str, train: fer.FerData, test: fer.FerData,
                   a: argparse.Namespace, t0: float) -> None:
    tr, te = linear.accuracy(model, train), linear.accuracy(model, test)
    print(f"({label}) Train Accuracy: {tr:.4f}")
    print(f"({label}) Test Accuracy: {te:.4f}")
    print(json.dumps({"method": model.method, "train": round(tr, 4), "test": round(te, 4),
                      "seconds": round(time.time() - t0, 1), "train_faces": len(train), "test_faces": len(test)}))
    if a.confusion:
        path = report.plot_confusion(model.proba(test.X), model.classes, test.relabel(model.classes),
                                     f"{label} on {Path(test.source).name}: test accuracy {te:.1%}",
                                     Path(a.confusion))
        print(f"confusion matrix: {path}")


def cmd_ols(a: argparse.Namespace) -> None:
    train, test = _linear_data(a)
    t0 = time.time()
    _linear_report(linear.fit_ols_pixels(train, a.pixels), "ols", train, test, a, t0)


def cmd_rf(a: argparse.Namespace) -> None:
    train, test = _linear_data(a)
    t0 = time.time()
    lam = getattr(a, "lam", 0.0)
    model = linear.fit_rf(train, a.d, a.seed, lam)
    _linear_report(model, "ridge" if lam else "ols", train, test, a, t0)


def cmd_sweep(a: argparse.Namespace) -> None:
    train, test = _linear_data(a)
    t0 = time.time()
    rows = linear.sweep(train, test, a.ds, [0.0, *a.lam], a.seed)
    print(f"{'method':<18} {'d':>5} {'train %':>8} {'test %':>8}")
    for r in rows:
        print(f"{r['method']:<18} {r['d']:>5} {100 * r['train']:8.1f} {100 * r['test']:8.1f}")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy_vs_d.json").write_text(json.dumps(rows, indent=1))
    src = f"train {Path(train.source).name} ({len(train)}), test {Path(test.source).name}, seed {a.seed}"
    figs = [report.plot_sweep([r for r in rows if r["lam"] == 0], f"OLS on d random features\n{src}",
                              out / "accuracy_vs_d_ols.png")]
    for lam in a.lam:
        figs.append(report.plot_sweep([r for r in rows if r["lam"] == lam],
                                      f"ridge (λ = {lam:g}) on d random features\n{src}",
                                      out / f"accuracy_vs_d_ridge_{lam:g}.png"))
    figs.append(report.plot_sweep(rows, f"OLS and ridge vs d\n{src}", out / "accuracy_vs_d.png"))
    print(f"{time.time() - t0:.0f} s; figures: {', '.join(str(f) for f in figs)}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    clf = EmotionClassifier(a.model)
    print(f"{a.model}: {clf.name}, classes {'/'.join(clf.classes)}, arch {clf.meta.get('arch', 'tutorial')}")
    for path in a.data:
        d = fer.load(path, a.split, classes=a.csv_classes)
        P = report.predict_proba(clf, d.X)
        _print_scores(str(path), report.scores_from_proba(P, clf.classes, d))
        if a.stability:
            print(f"  jitter stability: {json.dumps(report.jitter_stability(clf, d.X[:a.stability]))}")
        if a.figures:
            f = Path(a.figures) / f"confusion_{clf.name}_{Path(path).stem}.png"
            report.plot_confusion(P, clf.classes, d, f"{clf.name} on {Path(path).name}", f)
            print(f"  confusion matrix: {f}")


def cmd_bench(a: argparse.Namespace) -> None:
    for model in a.models or [DEFAULT_MODEL]:
        ms = [ms_per_face(model, a.batch, a.threads, a.seconds) for _ in range(a.repeat)]
        res = {"model": str(model), "params": param_count(model), "bytes": Path(model).stat().st_size,
               "batch": a.batch, "threads": a.threads, "ms_per_face_median": round(float(np.median(ms)), 3),
               "ms_per_face_runs": [round(m, 3) for m in ms]}
        if a.record:  # into the checkpoint's meta (the weights are left as they are)
            obj = torch.load(model, map_location="cpu", weights_only=True)
            obj.setdefault("meta", {})["bench"] = {**{k: v for k, v in res.items() if k not in ("model", "bytes")},
                                                    "torch": str(torch.__version__),
                                                    "command": command_line(a),
                                                    "when": time.strftime("%Y-%m-%d")}
            torch.save(obj, model)
        print(json.dumps(res))


def cmd_table(a: argparse.Namespace) -> None:
    """Every method here beside the tutorial's published figures, on the same data.  The least-squares rows are
    computed now (seconds); the CNN rows evaluate committed checkpoints instead of retraining (minutes to hours)."""
    d = Path(a.data_dir)
    t0 = time.time()
    train, test = fer.load(d / "fer2013_train.npz", "train"), fer.load(d / "fer2013_test.npz", "test")
    neutral_path = d / "fer2013_neutral_test.npz"
    neutral = fer.load(neutral_path, "test") if neutral_path.is_file() else None
    figs = Path(a.figures) if a.figures else None
    rows: list[dict] = []

    def add(label: str, key: str | None, P_train: np.ndarray, P_test: np.ndarray, P_neutral: np.ndarray | None,
            classes: list[str], note: str) -> None:
        tr = report.scores_from_proba(P_train, classes, train)
        te = report.scores_from_proba(P_test, classes, test)
        ne = (report.scores_from_proba(P_neutral, classes, neutral) if neutral is not None and P_neutral is not None
              else {})
        rows.append({"method": label, "train": tr.get("accuracy"), "test": te.get("accuracy"),
                     "tutorial": TUTORIAL.get(key or ""), "neutral": ne.get("mask"), "note": note})
        if figs is not None:
            slug = "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_")
            report.plot_confusion(P_test, classes, test, f"{label}: test {te.get('accuracy', 0):.1%}",
                                  figs / f"confusion_{slug}.png")
            if neutral is not None and P_neutral is not None and "neutral" in classes:
                P4 = np.concatenate([P_test, P_neutral])
                both = fer.concat([test, neutral], classes)
                report.plot_confusion(P4, classes, both, f"{label}: test + neutral test",
                                      figs / f"confusion_{slug}_4.png")

    linear_models = [("OLS, first 100 pixels", "ols", linear.fit_ols_pixels(train, 100)),
                     ("OLS, d=100 random features", "rf-ols", linear.fit_rf(train, 100, a.seed)),
                     ("ridge, d=1000, lam=1e10", "ridge", linear.fit_rf(train, 1000, a.seed, 1e10))]
    key: str | None  # the tutorial's row to compare with, where it has one
    for label, key, m in linear_models:
        add(label, key, m.proba(train.X), m.proba(test.X), m.proba(neutral.X) if neutral is not None else None,
            m.classes, f"fitted now (seed {a.seed})")
    checkpoints = [("tutorial CNN, Step 7 recipe", "cnn", MODELS_DIR / "fer3_tutorial_cnn.pth"),
                   ("tutorial's model_best.pth", None, SEED_MODEL),
                   ("default model", None, Path(DEFAULT_MODEL))]
    seen: set[Path] = set()
    for label, key, path in checkpoints:
        if not path.is_file() or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        clf = EmotionClassifier(path)
        add(f"{label} ({path.name})", key, report.predict_proba(clf, train.X), report.predict_proba(clf, test.X),
            report.predict_proba(clf, neutral.X) if neutral is not None else None, clf.classes,
            "committed checkpoint, evaluated now (not retrained)" if path != SEED_MODEL else "the tutorial's own")
    print(f"FER2013 happy/sad/surprise: train {d / 'fer2013_train.npz'} ({len(train)} faces), "
          f"test {d / 'fer2013_test.npz'} ({len(test)} faces); accuracy = argmax over happy/sad/surprise")
    w = max(len(r["method"]) for r in rows)
    print(f"{'method':<{w}}  {'train %':>7}  {'test %':>6}  {'tutorial train/test':>19}  {'neutral→dalmatian %':>19}")
    for r in rows:
        tut = f"{r['tutorial'][0]:.1f} / {r['tutorial'][1]:.1f}" if r["tutorial"] else "-"
        print(f"{r['method']:<{w}}  {_pct(r['train']):>7}  {_pct(r['test']):>6}  {tut:>19}  {_pct(r['neutral']):>19}")
    print("Tutorial figures are its own 80/20 split of fer2013.csv; here the splits are FER2013's (Training / "
          "PublicTest).  The CNN rows evaluate the committed checkpoints rather than retrain them (retrain with "
          "the command in each checkpoint's meta).  neutral→dalmatian: faces of fer2013_neutral_test.npz that get "
          "the dalmatian mask (read as sad or neutral), as the tutorial wants.")
    if figs is not None:
        print(f"confusion matrices in {figs}/")
    print(f"{time.time() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and appends each option's default to its help, unless the option is
    required, its default is None or False (nothing to show), or the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.required or action.default is None or action.default is False or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def _data_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--train", required=True, help="npz in the tutorial's format, or Kaggle's fer2013.csv")
    c.add_argument("--test", required=True, help="npz, or fer2013.csv (its PublicTest rows)")
    c.add_argument("--seed", type=int, default=0,
                   help="seed of the random features (rf-ols, ridge, sweep) and of --limit's choice of rows")
    c.add_argument("--limit", type=int, default=0, help="train on N random rows only (0: all)")


def _sub(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    """dogfilter-train's command line: one sub-command per method (``fn`` is the function that runs it)."""
    p = argparse.ArgumentParser(prog="dogfilter-train", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    sub = p.add_subparsers(dest="cmd", required=True)
    o = _sub(sub, "ols", "Step 5: ordinary least squares on the first pixels")
    _data_args(o)
    o.add_argument("--pixels", type=int, default=100, help="how many of the first pixels (1..2304) are the features")
    o.add_argument("--confusion", help="write the test confusion matrix to this PNG")
    o.set_defaults(fn=cmd_ols)
    r = _sub(sub, "rf-ols", "Step 6: least squares on d random Gaussian features")
    _data_args(r)
    r.add_argument("--d", type=int, default=100, help="number of random features")
    r.add_argument("--confusion", help="write the test confusion matrix to this PNG")
    r.set_defaults(fn=cmd_rf, lam=0.0)
    g = _sub(sub, "ridge", "Step 6: ridge regression on d random Gaussian features")
    _data_args(g)
    g.add_argument("--d", type=int, default=1000, help="number of random features")
    g.add_argument("--lam", type=float, default=1e10, help="ridge penalty λ")
    g.add_argument("--confusion", help="write the test confusion matrix to this PNG")
    g.set_defaults(fn=cmd_rf)
    w = _sub(sub, "sweep", "accuracy vs d for OLS and ridge (train and test curves, PNG)")
    _data_args(w)
    w.add_argument("--ds", type=int, nargs="+", default=[10, 25, 50, 100, 200, 500, 1000, 2000],
                   help="numbers of random features to try (one point each on every curve)")
    w.add_argument("--lam", type=float, nargs="+", default=[1e10], help="ridge λ (one curve each)")
    w.add_argument("--out-dir", default="runs/figures",
                   help="folder for the figures (PNG) and the rows (accuracy_vs_d.json)")
    w.set_defaults(fn=cmd_sweep)
    c = _sub(sub, "cnn", "the tutorial's CNN with its Step 7 recipe")
    c.add_argument("--train", required=True, help="npz in the tutorial's format, or Kaggle's fer2013.csv")
    c.add_argument("--test", required=True, help="npz, or fer2013.csv (its PublicTest rows); scored at the end")
    c.add_argument("--out", required=True, help="checkpoint to write (.pth)")
    c.add_argument("--epochs", type=int, default=20, help="passes over the training rows")
    c.add_argument("--lr", type=float, default=0.01, help="SGD learning rate")
    c.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    c.add_argument("--batch", type=int, default=32, help="faces per SGD step")
    c.add_argument("--seed", type=int, default=0, help="seed of the weights, the shuffling and the held-out rows")
    c.add_argument("--val-fraction", type=float, default=0.1,
                   help="training rows held out to pick the best epoch (0: keep the last epoch)")
    c.add_argument("--limit", type=int, default=0, help="train on the first N rows only (0: all)")
    c.add_argument("--device", default="cpu", help="torch device to train on (e.g. cuda)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    c.set_defaults(fn=cmd_cnn)
    f = _sub(sub, "fernet", "the project's default: a compact ResNet with a modern recipe")
    f.add_argument("--train", nargs="+", required=True,
                   help="npz/csv files put together by class name, e.g. fer2013_train.npz fer2013_neutral_train.npz")
    f.add_argument("--test", nargs="*", default=[],
                   help="scored once at the end (never used for any choice); default: none")
    f.add_argument("--out", required=True, help="checkpoint to write (.pth)")
    f.add_argument("--epochs", type=int, default=25, help="passes over the training rows")
    f.add_argument("--batch", type=int, default=128, help="faces per optimizer step")
    f.add_argument("--lr", type=float, default=0.1, help="one-cycle peak learning rate")
    f.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (not on biases and batch norms)")
    f.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the cross-entropy loss")
    f.add_argument("--widths", type=lambda v: [int(x) for x in v.split(",")], default=[12, 24, 48, 128],
                   metavar="W1,W2,...",
                   help="channels of the stem and of each residual stage, comma-separated (default: 12,24,48,128)")
    f.add_argument("--dropout", type=float, default=0.2, help="dropout before the classifier layer")
    f.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, the augmentation, the held-out rows and --limit's choice")
    f.add_argument("--val-fraction", type=float, default=0.1, help="training rows held out to pick the epoch")
    f.add_argument("--limit", type=int, default=0, help="train on N random rows only (tests, smoke runs; 0: all)")
    f.add_argument("--csv-classes", type=lambda v: v.split(","), default=None,
                   help="for Kaggle's csv: the classes to keep (default happy,sad,surprise)")
    f.add_argument("--bench-seconds", type=float, default=3.0,
                   help="time the finished model on one CPU thread this long (0: skip)")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(fn=cmd_fernet)
    e = _sub(sub, "evaluate", "scores of any checkpoint (the tutorial's model_best.pth included)")
    e.add_argument("model", help="checkpoint to score (.pth)")
    e.add_argument("--data", nargs="+", required=True, help="npz/csv files to score it on, each on its own")
    e.add_argument("--split", default="test", help="for csv files: train, test or private")
    e.add_argument("--csv-classes", type=lambda v: v.split(","), default=None,
                   help="for Kaggle's csv: the classes to keep (default happy,sad,surprise)")
    e.add_argument("--figures", help="write a confusion matrix per data file into this folder")
    e.add_argument("--stability", type=int, default=0, metavar="N",
                   help="also show N faces of each file 10 times, slightly moved, and count mask changes (0: skip)")
    e.set_defaults(fn=cmd_evaluate)
    b = _sub(sub, "bench", "milliseconds per face on one CPU thread, batched (not an assertion)")
    b.add_argument("models", nargs="*", help=f"checkpoints (default: {Path(DEFAULT_MODEL).name})")
    b.add_argument("--batch", type=int, default=64, help="faces per predict_proba call")
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads while timing")
    b.add_argument("--seconds", type=float, default=3.0, help="time each run for at least this long")
    b.add_argument("--repeat", type=int, default=3, help="runs per model (the median is reported)")
    b.add_argument("--record", action="store_true", help="write the result into each checkpoint's meta['bench']")
    b.set_defaults(fn=cmd_bench)
    t = _sub(sub, "table", "every method's train/test accuracy beside the tutorial's figures")
    t.add_argument("--data-dir", default=str(FER_DIR),
                   help="folder of fer2013_train.npz and fer2013_test.npz (and fer2013_neutral_test.npz, if there)")
    t.add_argument("--seed", type=int, default=0, help="seed of the least-squares methods' random features")
    t.add_argument("--figures", help="write a confusion matrix per model into this folder")
    t.add_argument("--json", help="also write the rows here")
    t.set_defaults(fn=cmd_table)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    a.argv = list(argv) if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, a.threads))
    try:
        a.fn(a)
    except DogfilterError as err:
        print(f"dogfilter-train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
