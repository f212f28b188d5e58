"""Turning model scores into probabilities that mean what they say, and measuring how well.

A ranker's ``p_complete`` feeds a value model that adds probabilities of different
actions, so 0.3 must mean "three in ten". Isotonic regression (pool adjacent
violators) or Platt scaling is fitted on held-out examples after training.

Isotonic regression is a step function: whole ranges of raw scores share one value,
so it cannot order the candidates inside a step. :meth:`Calibrator.ranking` is the
strictly increasing companion the ranking score uses: the same fit with straight lines
through the centres of its steps (centred isotonic regression, Oron & Flournoy 2017),
so ranking by it is ranking by the raw score while its values stay probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CALIBRATIONS = ("isotonic", "platt", "none")
_EPS = 1e-6
STRICT = 1e-4
"""Weight of the raw score in :meth:`Calibrator.ranking`: ``(1 - STRICT) * g(p) + STRICT * q(p)``,
``g`` non-decreasing and ``q`` the log of ``p`` scaled to [0, 1], is strictly increasing in ``p``
and within ``STRICT`` of ``g``: it orders where ``g`` is flat (beyond the clip at 0 and 1, a
one-step fit) and nowhere else. On a log scale, two distinct float32 outputs of the network
differ in ``q`` by at least ~1e-9, far above float64 rounding, even for tiny ``p``."""
_TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32: the network's outputs are float32


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
    cx: list[float] = field(default_factory=list)  # centre of each isotonic step (mean raw score in it)
    cy: list[float] = field(default_factory=list)  # the step's value (strictly increasing)
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
            self.cx, self.cy = _centres(knots, fitted, counts.astype(np.float64))
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

    def ranking(self, p: np.ndarray) -> np.ndarray:
        """A strictly increasing calibrated map of raw ``p``, for ranking (see :data:`STRICT`).

        Isotonic: linear between the centres of the steps and, beyond the first and last
        centre, along the end segments (clipped to [0, 1]). A step's examples are centred on
        its centre, so a straight line through it keeps their mean: the values stay calibrated
        like :meth:`__call__`'s, without its ties. Platt (with a positive slope) and identity are increasing already.
        """
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic" and self.x:
            cx, cy = (self.cx, self.cy) if self.cx else _midpoints(self.x, self.y)
            g = _extrapolated(p, np.array(cx), np.array(cy))
        else:
            g = self(p)
        q = np.clip(1.0 + np.log(np.clip(p, _TINY, 1.0)) / -np.log(_TINY), 0.0, 1.0)
        return (1.0 - STRICT) * g + STRICT * q

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": self.x, "y": self.y, "cx": self.cx, "cy": self.cy, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(**data)


def _centres(knots: np.ndarray, fitted: np.ndarray, counts: np.ndarray) -> tuple[list[float], list[float]]:
    """(centre, value) of each step of a PAV fit: the count-weighted mean raw score of its knots."""
    starts = np.r_[0, np.flatnonzero(np.diff(fitted) != 0) + 1]
    weight = np.add.reduceat(counts, starts)
    centre = np.add.reduceat(knots * counts, starts) / weight
    return centre.tolist(), fitted[starts].tolist()


def _midpoints(x: list[float], y: list[float]) -> tuple[list[float], list[float]]:
    """Step centres of a fit saved without them: the middle of each run of equal values."""
    xs, ys = np.asarray(x), np.asarray(y)
    starts = np.r_[0, np.flatnonzero(np.diff(ys) != 0) + 1]
    ends = np.r_[starts[1:], len(ys)] - 1
    return ((xs[starts] + xs[ends]) / 2.0).tolist(), ys[starts].tolist()


def _extrapolated(p: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Piecewise linear through (cx, cy), continued along the end segments, clipped to [0, 1]."""
    if len(cx) < 2:
        return np.full(p.shape, cy[0] if len(cy) else 0.0)
    inner = np.interp(p, cx, cy)
    low = cy[0] + (p - cx[0]) * (cy[1] - cy[0]) / (cx[1] - cx[0])
    high = cy[-1] + (p - cx[-1]) * (cy[-1] - cy[-2]) / (cx[-1] - cx[-2])
    return np.clip(np.where(p < cx[0], low, np.where(p > cx[-1], high, inner)), 0.0, 1.0)


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
