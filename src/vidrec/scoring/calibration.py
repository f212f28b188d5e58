"""Turning model scores into probabilities that mean what they say, and measuring how well.

A ranker's ``p_complete`` feeds a value model that adds probabilities of different
actions, so 0.3 must mean "three in ten". Isotonic regression (pool adjacent
violators) or Platt scaling is fitted on held-out examples after training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CALIBRATIONS = ("isotonic", "platt", "none")
_EPS = 1e-6


def pool_adjacent_violators(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares.

    Blocks of adjacent values are merged while a block's mean exceeds its successor's.
    One pass with a stack: O(n) merges. Runs once per calibration fit, on the
    distinct scores of a validation set, never per request.
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist()):
        m, wt, sz = yi, wi, 1
        while means and means[-1] > m:
            pm, pw, ps = means.pop(), weights.pop(), sizes.pop()
            m, wt, sz = (pm * pw + m * wt) / (pw + wt), pw + wt, ps + sz
        means.append(m)
        weights.append(wt)
        sizes.append(sz)
    return np.repeat(np.array(means), np.array(sizes, dtype=np.int64))


@dataclass
class Calibrator:
    """A monotone map from raw probabilities to calibrated ones: isotonic, Platt, or identity."""

    method: str = "isotonic"
    x: list[float] = field(default_factory=list)  # isotonic knots (distinct raw scores)
    y: list[float] = field(default_factory=list)  # isotonic fitted values at the knots
    a: float = 1.0  # Platt slope on the logit
    b: float = 0.0  # Platt intercept

    def __post_init__(self) -> None:
        if self.method not in CALIBRATIONS:
            raise ValueError(f"calibration method must be one of {CALIBRATIONS}, got {self.method!r}")

    def fit(self, p: np.ndarray, labels: np.ndarray) -> Calibrator:
        """Fit on raw probabilities ``p`` and 0/1 ``labels`` of held-out examples."""
        p, labels = np.asarray(p, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        if p.shape != labels.shape or p.size == 0:
            raise ValueError(f"calibration needs equally long non-empty arrays, got {p.shape} and {labels.shape}")
        if self.method == "isotonic":
            knots, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
            mean_label = np.bincount(inverse, weights=labels) / counts
            fitted = pool_adjacent_violators(mean_label, counts)
            # Only the ends of flat blocks matter to linear interpolation: drop the rest.
            edge = np.ones(fitted.size, dtype=bool)
            edge[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
            self.x, self.y = knots[edge].tolist(), fitted[edge].tolist()
        elif self.method == "platt":
            self.a, self.b = _platt(_logit(p), labels)
        return self

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw ``p`` (linear between isotonic knots, flat outside)."""
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic" and self.x:
            return np.interp(p, np.array(self.x), np.array(self.y))
        if self.method == "platt":
            return _sigmoid(self.a * _logit(p) + self.b)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": self.x, "y": self.y, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(**data)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def _platt(z: np.ndarray, labels: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Damped Newton for ``sigmoid(a * z + b)`` under log loss (a 2x2 system per step).

    Steps are halved until the loss does not rise, so far-off starts cannot diverge.
    """
    design = np.stack([z, np.ones_like(z)], axis=1)  # (n, 2)

    def loss(params: np.ndarray) -> float:
        return log_loss(_sigmoid(design @ params), labels)

    params, current = np.array([1.0, 0.0]), loss(np.array([1.0, 0.0]))
    for _ in range(iters):
        q = _sigmoid(design @ params)
        grad = design.T @ (q - labels)
        hess = (design * (q * (1.0 - q))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        for _ in range(40):  # backtracking
            candidate = params - step
            if (new := loss(candidate)) <= current + 1e-12:
                break
            step = step / 2.0
        else:
            break
        converged = np.abs(params - candidate).max() < 1e-9
        params, current = candidate, new
        if converged:
            break
    return float(params[0]), float(params[1])


def expected_calibration_error(p: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: |mean predicted - observed rate| per equal-width bin, weighted by bin size."""
    p, labels = np.asarray(p, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    gap = np.abs(np.bincount(idx, weights=p, minlength=bins) - np.bincount(idx, weights=labels, minlength=bins))
    return float(gap.sum() / p.size)


def roc_auc(p: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve from average ranks (ties count one half); NaN with one class."""
    p, labels = np.asarray(p, dtype=np.float64), np.asarray(labels) > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    avg_rank = (first_rank + (counts - 1) / 2.0)[inverse]
    return float((avg_rank[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(p: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities ``p`` (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def cross_fitted(p: np.ndarray, labels: np.ndarray, method: str) -> np.ndarray:
    """Out-of-sample calibrated probabilities: each half (alternate rows) calibrated by the other.

    Metrics of a calibrator on the very rows it was fitted on flatter it (isotonic
    regression is perfectly calibrated in-sample); these predictions are honest.
    """
    p, labels = np.asarray(p, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    out = np.empty_like(p)
    halves = np.arange(len(p)) % 2 == 0
    for fit_on in (halves, ~halves):  # two folds
        if not fit_on.any() or fit_on.all():
            return Calibrator(method).fit(p, labels)(p)
        out[~fit_on] = Calibrator(method).fit(p[fit_on], labels[fit_on])(p[~fit_on])
    return out
