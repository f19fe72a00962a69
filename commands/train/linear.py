"""The tutorial's least-squares classifiers (Steps 5 and 6), solved stably and seeded.

- OLS on raw pixels: the first ``pixels`` (100) of the 2304, one-hot targets, no bias, argmax of ``A w``.
- OLS on d random Gaussian features: ``A = X W`` with ``W`` ~ N(0, 1) of shape 2304×d (the tutorial's
  featurisation; note that it is linear, a random projection, with no cosine as in random Fourier features).
- Ridge on the same features: ``min |A w − y|² + λ |w|²`` (tutorial: d = 1000, λ = 1e10).

OLS is solved with ``np.linalg.lstsq`` (SVD: fine for the ill-conditioned ``AᵀA`` of raw pixels) and ridge with a
Cholesky factorisation of ``AᵀA + λI`` (symmetric positive definite for λ > 0), never with an explicit inverse.
The tutorial one-hot encodes with ``np.eye(6)`` (three unused columns); here the columns are the data's classes,
which can only remove ties with the unused all-zero outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dogfilter.commands.train import fer
from dogfilter.common.errors import DogfilterError

N_PIXELS = 48 * 48


@dataclass
class LinearModel:
    method: str  # "ols" (pixels), "rf-ols", "ridge"
    w: np.ndarray  # (features, classes)
    classes: list[str]
    W: np.ndarray | None = None  # (2304, d) random features, None for raw pixels
    pixels: int = 0  # raw-pixel OLS: the first `pixels` of each image

    def features(self, X: np.ndarray) -> np.ndarray:
        return featurise(X, self.W, self.pixels)

    def scores(self, X: np.ndarray) -> np.ndarray:
        return self.features(X) @ self.w

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.scores(X).argmax(1)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """One-hot of the argmax (least squares gives scores, not probabilities): for the shared scoring code."""
        return np.eye(len(self.classes), dtype=np.float32)[self.predict(X)]


def flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1).astype(np.float64)


def random_matrix(d: int, seed: int) -> np.ndarray:
    """The tutorial's ``np.random.normal(size=(2304, d))``, seeded. Column j does not depend on d, so the
    features of a smaller d are the first columns of a larger one (the sweep reuses them)."""
    if d < 1:
        raise DogfilterError(f"d must be at least 1, got {d}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, N_PIXELS)).T  # row-major draws per feature, so the prefix property holds


def featurise(X: np.ndarray, W: np.ndarray | None, pixels: int = 0) -> np.ndarray:
    A = flat(X)
    if W is None:
        return A[:, :pixels] if pixels else A
    return A @ W


def one_hot(Y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[Y]


def solve_ols(A: np.ndarray, T: np.ndarray) -> np.ndarray:
    w, *_ = np.linalg.lstsq(A, T, rcond=None)
    return w


def solve_ridge_gram(G: np.ndarray, B: np.ndarray, lam: float) -> np.ndarray:
    """w = (G + λI)⁻¹ B by Cholesky, with G = AᵀA and B = AᵀT."""
    if not lam > 0:
        raise DogfilterError(f"ridge needs λ > 0 (λ = 0 is OLS), got {lam}")
    M = G + lam * np.eye(len(G))
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        raise DogfilterError(f"AᵀA + λI is not positive definite for λ = {lam:g}: use a larger λ") from None
    return np.linalg.solve(L.T, np.linalg.solve(L, B))


def solve_ridge(A: np.ndarray, T: np.ndarray, lam: float) -> np.ndarray:
    return solve_ridge_gram(A.T @ A, A.T @ T, lam)


def fit_ols_pixels(train: fer.FerData, pixels: int = 100) -> LinearModel:
    if not 1 <= pixels <= N_PIXELS:
        raise DogfilterError(f"pixels must be in 1..{N_PIXELS}, got {pixels}")
    A = featurise(train.X, None, pixels)
    return LinearModel("ols", solve_ols(A, one_hot(train.Y, len(train.classes))), list(train.classes),
                       pixels=pixels)


def fit_rf(train: fer.FerData, d: int, seed: int = 0, lam: float = 0.0) -> LinearModel:
    """OLS (λ = 0) or ridge (λ > 0) on d random features."""
    W = random_matrix(d, seed)
    A = featurise(train.X, W)
    T = one_hot(train.Y, len(train.classes))
    w = solve_ols(A, T) if lam == 0 else solve_ridge(A, T, lam)
    return LinearModel("ridge" if lam else "rf-ols", w, list(train.classes), W=W)


def accuracy(model: LinearModel, data: fer.FerData) -> float:
    data = data.relabel(model.classes)
    return float((model.predict(data.X) == data.Y).mean()) if len(data) else float("nan")


def sweep(train: fer.FerData, test: fer.FerData, ds: Iterable[int], lams: Iterable[float] = (0.0,),
          seed: int = 0) -> list[dict]:
    """Train/test accuracy vs d for OLS (λ = 0) and ridge (each λ > 0), all on the same seeded features:
    the features are computed once for the largest d; each smaller d takes the first columns."""
    ds = sorted({int(d) for d in ds})
    test = test.relabel(train.classes)
    W = random_matrix(ds[-1], seed)
    A, At = featurise(train.X, W), featurise(test.X, W)
    T = one_hot(train.Y, len(train.classes))
    G, B = A.T @ A, A.T @ T
    rows = []
    for lam in lams:
        for d in ds:
            w = solve_ols(A[:, :d], T) if lam == 0 else solve_ridge_gram(G[:d, :d], B[:d], lam)
            rows.append({"method": "ols" if lam == 0 else f"ridge λ={lam:g}", "d": d, "lam": lam,
                         "train": float(((A[:, :d] @ w).argmax(1) == train.Y).mean()),
                         "test": float(((At[:, :d] @ w).argmax(1) == test.Y).mean())})
    return rows
