"""FER2013 readers: the tutorial's npz format (``X`` n×2304 uint8, ``Y`` labels) and Kaggle's ``fer2013.csv``.

The tutorial keeps Kaggle labels 3, 4, 5 (happy, sad, surprise) and renumbers them 0, 1, 2.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import DogfilterError

KAGGLE_TO_TUTORIAL = {3: 0, 4: 1, 5: 2}
KAGGLE_USAGE = {"train": {"Training"}, "test": {"PublicTest"}, "private": {"PrivateTest"}}


@dataclass
class FerData:
    X: np.ndarray  # (n, 48, 48) uint8
    Y: np.ndarray  # (n,) int64
    source: str

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(self.X.tobytes())
        h.update(self.Y.astype(np.int64).tobytes())
        return h.hexdigest()[:16]

    def head(self, n: int) -> FerData:
        return FerData(self.X[:n], self.Y[:n], f"{self.source}[:{n}]")


def load_npz(path: str | Path) -> FerData:
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
    return FerData(X.astype(np.uint8).reshape(-1, 48, 48), Y.astype(np.int64), str(p))


def load_csv(path: str | Path, split: str = "train") -> FerData:
    """Kaggle's ``emotion,pixels,Usage``; keeps 3/4/5 → 0/1/2 like the tutorial."""
    p = Path(path)
    if not p.is_file():
        raise DogfilterError(f"data file not found: {p}")
    usage = KAGGLE_USAGE.get(split)
    if usage is None:
        raise DogfilterError(f"unknown split {split!r} (train, test or private)")
    xs, ys = [], []
    try:
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"emotion", "pixels"} <= set(reader.fieldnames):
                raise DogfilterError(f"{p}: not FER2013 csv (want columns emotion,pixels,Usage)")
            for line, row in enumerate(reader, start=2):
                label = int(row["emotion"])
                if label not in KAGGLE_TO_TUTORIAL or ("Usage" in row and row["Usage"] not in usage):
                    continue
                px = np.array(row["pixels"].split(), dtype=np.int64)
                if px.size != 48 * 48 or px.min() < 0 or px.max() > 255:
                    raise DogfilterError(f"{p}:{line}: pixels is not 2304 values in 0..255")
                xs.append(px.astype(np.uint8))
                ys.append(KAGGLE_TO_TUTORIAL[label])
    except DogfilterError:
        raise
    except (ValueError, UnicodeDecodeError, csv.Error) as e:
        raise DogfilterError(f"{p}: corrupt csv ({type(e).__name__}: {e})") from None
    if not xs:
        raise DogfilterError(f"{p}: no happy/sad/surprise rows in split {split!r}")
    return FerData(np.stack(xs).reshape(-1, 48, 48), np.array(ys, np.int64), f"{p}:{split}")


def load(path: str | Path, split: str = "train") -> FerData:
    return load_csv(path, split) if str(path).endswith(".csv") else load_npz(path)
