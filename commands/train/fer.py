"""FER2013 readers: the tutorial's npz format (``X`` n×2304 uint8, ``Y`` labels) and Kaggle's ``fer2013.csv``.

Every reader returns :class:`FerData`: faces (n×48×48 uint8), labels as indices into ``classes`` (names), the
source and a fingerprint of the pixels and labels (written into checkpoints).

Label codes.  The tutorial keeps Kaggle labels 3, 4, 5 (happy, sad, surprise) and renumbers them 0, 1, 2: its
npz files (and ``fer2013_train/test.npz`` of the shared data) use those.  The other shared files
(``fer2013_neutral_*.npz``: 6 neutral; ``fer2013_angry_disgust_fear_*.npz``: 0 angry, 1 disgust, 2 fear) keep
Kaggle's own codes.  ``codes='auto'`` reads a file as Kaggle-coded when a label is above 2 or the file's name
says angry/disgust/fear/neutral, else as the tutorial's.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dogfilter.common.errors import DogfilterError
from dogfilter.common.vision.classifier import TUTORIAL_CLASSES  # torch-free: the data code runs without PyTorch

KAGGLE_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
KAGGLE_TO_TUTORIAL = {3: 0, 4: 1, 5: 2}
KAGGLE_USAGE = {"train": {"Training"}, "test": {"PublicTest"}, "private": {"PrivateTest"}}
# the order classes take when files are put together: the tutorial's three first, so a model's first three
# outputs are always happy, sad, surprise
CANONICAL = ["happy", "sad", "surprise", "neutral", "angry", "disgust", "fear"]
CODES = ("auto", "tutorial", "kaggle")


@dataclass
class FerData:
    X: np.ndarray  # (n, 48, 48) uint8
    Y: np.ndarray  # (n,) int64: indices into classes
    source: str
    classes: list[str] = field(default_factory=lambda: list(TUTORIAL_CLASSES))

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.X.tobytes())
        h.update(self.Y.astype(np.int64).tobytes())
        if self.classes != TUTORIAL_CLASSES:
            h.update(",".join(self.classes).encode())
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.Y)

    def head(self, n: int) -> FerData:
        return FerData(self.X[:n], self.Y[:n], f"{self.source}[:{n}]", list(self.classes))

    def take(self, idx: np.ndarray, tag: str) -> FerData:
        return FerData(self.X[idx], self.Y[idx], f"{self.source}[{tag}]", list(self.classes))

    def names(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.Y]

    def relabel(self, classes: Sequence[str]) -> FerData:
        """The same faces with labels as indices into ``classes`` (which must hold every class of this set)."""
        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise DogfilterError(f"{self.source}: classes {missing} are not among {list(classes)}")
        lut = np.array([list(classes).index(c) for c in self.classes], np.int64)
        return FerData(self.X, lut[self.Y] if len(self.Y) else self.Y, self.source, list(classes))


def canonical(classes: Sequence[str]) -> list[str]:
    return sorted(set(classes), key=lambda c: (CANONICAL.index(c) if c in CANONICAL else len(CANONICAL), c))


def concat(parts: Sequence[FerData], classes: Sequence[str] | None = None) -> FerData:
    """Several sets as one; labels are renumbered by class name (``classes``: the union, in canonical order)."""
    if not parts:
        raise DogfilterError("no data files given")
    if len(parts) == 1 and classes is None:
        return parts[0]
    cls = list(classes) if classes is not None else canonical([c for p in parts for c in p.classes])
    rel = [p.relabel(cls) for p in parts]
    return FerData(np.concatenate([p.X for p in rel]), np.concatenate([p.Y for p in rel]),
                   "+".join(p.source for p in parts), cls)


def _codes_for(p: Path, Y: np.ndarray, codes: str) -> str:
    if codes not in CODES:
        raise DogfilterError(f"unknown label codes {codes!r} ({', '.join(CODES)})")
    if codes != "auto":
        return codes
    name = p.name.lower()
    if (len(Y) and Y.max() > 2) or any(w in name for w in ("angry", "disgust", "fear", "neutral")):
        return "kaggle"
    return "tutorial"


def load_npz(path: str | Path, codes: str = "auto") -> FerData:
    p = Path(path)
    if not p.is_file():
        raise DogfilterError(f"data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as d:
            if "X" not in d or "Y" not in d:
                raise DogfilterError(f"{p}: an npz in the tutorial's format holds arrays 'X' and 'Y'; "
                                     f"this one holds {sorted(d.files)}")
            X, Y = d["X"], d["Y"]
    except DogfilterError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DogfilterError(f"{p}: not a readable npz file ({type(e).__name__})") from None
    if X.ndim != 2 or X.shape[1] != 48 * 48 or len(X) != len(Y) or Y.ndim != 1:
        raise DogfilterError(f"{p}: X must be n×2304 and Y n labels; got X {X.shape}, Y {Y.shape}")
    if not np.issubdtype(Y.dtype, np.integer) or (len(Y) and (Y.min() < 0 or Y.max() > 6)):
        raise DogfilterError(f"{p}: Y must be integer labels 0..6 (got {Y.dtype}"
                             f"{f', {Y.min()}..{Y.max()}' if len(Y) and Y.dtype.kind in 'iu' else ''})")
    if len(X) and (X.min() < 0 or X.max() > 255):
        raise DogfilterError(f"{p}: pixels must be in 0..255")
    Y = Y.astype(np.int64)
    if _codes_for(p, Y, codes) == "tutorial":
        if len(Y) and Y.max() > 2:
            raise DogfilterError(f"{p}: the tutorial's labels are 0 happy, 1 sad, 2 surprise; found {int(Y.max())}")
        classes = list(TUTORIAL_CLASSES)
    else:  # keep the classes present, in canonical order
        present = sorted({int(v) for v in np.unique(Y)})
        classes = canonical([KAGGLE_CLASSES[c] for c in present])
        lut = np.full(len(KAGGLE_CLASSES), -1, np.int64)
        for c in present:
            lut[c] = classes.index(KAGGLE_CLASSES[c])
        Y = lut[Y]
    return FerData(X.astype(np.uint8).reshape(-1, 48, 48), Y, str(p), classes)


def load_csv(path: str | Path, split: str = "train", classes: Sequence[str] | None = None) -> FerData:
    """Kaggle's ``emotion,pixels,Usage``.  Keeps ``classes`` (default: the tutorial's happy, sad, surprise →
    0, 1, 2) of the rows whose Usage is the split (train: Training, test: PublicTest, private: PrivateTest)."""
    p = Path(path)
    if not p.is_file():
        raise DogfilterError(f"data file not found: {p}")
    usage = KAGGLE_USAGE.get(split)
    if usage is None:
        raise DogfilterError(f"unknown split {split!r} (train, test or private)")
    keep = list(classes) if classes is not None else list(TUTORIAL_CLASSES)
    bad = [c for c in keep if c not in KAGGLE_CLASSES]
    if bad:
        raise DogfilterError(f"unknown classes {bad} (FER2013 has {KAGGLE_CLASSES})")
    code_to_y = {KAGGLE_CLASSES.index(c): i for i, c in enumerate(keep)}
    xs, ys = [], []
    try:
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"emotion", "pixels"} <= set(reader.fieldnames):
                raise DogfilterError(f"{p}: not FER2013 csv (want columns emotion,pixels,Usage; "
                                     f"got {','.join(reader.fieldnames or [])[:80] or 'nothing'})")
            for line, row in enumerate(reader, start=2):
                if row["emotion"] is None or row["pixels"] is None:
                    raise DogfilterError(f"{p}:{line}: too few columns")
                label = int(row["emotion"])
                if label not in code_to_y or (row.get("Usage") is not None and row["Usage"] not in usage):
                    continue
                px = np.array(row["pixels"].split(), dtype=np.int64)
                if px.size != 48 * 48 or px.min() < 0 or px.max() > 255:
                    raise DogfilterError(f"{p}:{line}: pixels is not 2304 values in 0..255")
                xs.append(px.astype(np.uint8))
                ys.append(code_to_y[label])
    except DogfilterError:
        raise
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        raise DogfilterError(f"{p}: corrupt csv ({type(e).__name__}: {e})") from None
    if not xs:
        raise DogfilterError(f"{p}: no {'/'.join(keep)} rows in split {split!r}")
    return FerData(np.stack(xs).reshape(-1, 48, 48), np.array(ys, np.int64), f"{p}:{split}", keep)


def load(path: str | Path, split: str = "train", codes: str = "auto",
         classes: Sequence[str] | None = None) -> FerData:
    """One file: ``.csv`` (Kaggle's; ``split`` and ``classes`` apply) or the tutorial's ``.npz``."""
    return load_csv(path, split, classes) if str(path).lower().endswith(".csv") else load_npz(path, codes)


def load_many(paths: Sequence[str | Path], split: str = "train", codes: str = "auto",
              classes: Sequence[str] | None = None) -> FerData:
    """Several files as one set (e.g. fer2013_train.npz + fer2013_neutral_train.npz: happy, sad, surprise,
    neutral)."""
    return concat([load(p, split, codes, classes) for p in paths])
