"""The one interface every baseline recommender follows: fit, scores, recommend.

Baselines work on dense indices only: a user x item CSR interaction matrix in, item
indices out. Mapping to string ids is the evaluation protocol's job, so a baseline can
be swapped without touching the protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np
from scipy.sparse import csr_matrix

from vidrec.evaluation.metrics import NO_ITEM

SCORE_BUDGET = 1 << 24
"""Most float32 scores held at once by :meth:`Baseline.recommend` (64 MB)."""


class Baseline(ABC):
    """A recommender over a fixed user x item matrix, with fixed verbs.

    Subclasses implement :meth:`_fit` and :meth:`scores`; :meth:`recommend` is shared,
    so exclusion and top-k selection behave identically for every model.
    """

    name: str = "baseline"

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None

    def fit(self, X: csr_matrix) -> Self:
        """Learn from a user x item interaction matrix (non-zero = interacted)."""
        X = _as_binary_csr(X)
        self._shape = X.shape
        self._fit(X)
        return self

    @abstractmethod
    def _fit(self, X: csr_matrix) -> None:
        """Model-specific training on a binary float32 CSR."""

    @abstractmethod
    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Return ``(len(user_idx), n_items)`` float32 scores, higher is better."""

    @property
    def n_users(self) -> int:
        return self._fitted_shape()[0]

    @property
    def n_items(self) -> int:
        return self._fitted_shape()[1]

    def params(self) -> dict[str, object]:
        """The hyper-parameters that define this model (for reports and tuning tables)."""
        return {}

    def recommend(
        self, user_idx: np.ndarray, k: int, exclude: csr_matrix | None = None
    ) -> np.ndarray:
        """Top-``k`` item indices per user, best first, never an excluded item.

        Args:
            user_idx: ``(n,)`` user rows of the fitted matrix.
            k: list length; slots with no eligible item left hold ``NO_ITEM`` (-1).
            exclude: ``(n_users, n_items)`` sparse matrix; non-zero entries of a user's
                row are never recommended to that user (typically the training matrix).

        Returns:
            ``(n, k)`` int64 item indices. Ties are broken arbitrarily.
        """
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        user_idx = self._check_users(user_idx)
        if exclude is not None and exclude.shape != self._fitted_shape():
            raise ValueError(
                f"exclusion matrix has shape {exclude.shape}, model was fitted on {self._shape}"
            )
        exclude = None if exclude is None else csr_matrix(exclude)
        batch = max(1, SCORE_BUDGET // max(self.n_items, 1))
        out = np.full((len(user_idx), k), NO_ITEM, dtype=np.int64)
        for start in range(0, len(user_idx), batch):
            rows = user_idx[start : start + batch]
            scores = np.asarray(self.scores(rows), dtype=np.float32)  # (b, n_items)
            if exclude is not None:
                _mask_excluded(scores, exclude[rows])
            out[start : start + batch] = top_k(scores, k)
        return out

    def _check_users(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = np.asarray(user_idx, dtype=np.int64).reshape(-1)
        n_users = self.n_users
        if user_idx.size and (user_idx.min() < 0 or user_idx.max() >= n_users):
            raise IndexError(f"user indices must lie in [0, {n_users}) for {self.name}")
        return user_idx

    def _fitted_shape(self) -> tuple[int, int]:
        if self._shape is None:
            raise RuntimeError(f"{self.name} is not fitted yet; call fit(X) first")
        return self._shape

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first; -inf slots become NO_ITEM."""
    n, n_items = scores.shape
    depth = min(k, n_items)
    if depth < n_items:
        part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]  # (n, depth) unordered
    else:
        part = np.broadcast_to(np.arange(n_items), (n, n_items))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best[np.take_along_axis(part_scores, order, axis=1) == -np.inf] = NO_ITEM
    out = np.full((n, k), NO_ITEM, dtype=np.int64)
    out[:, :depth] = best
    return out


def _mask_excluded(scores: np.ndarray, exclude_rows: csr_matrix) -> None:
    """Set excluded (row, item) scores to -inf in place."""
    coo = exclude_rows.tocoo()
    keep = coo.data != 0
    scores[coo.row[keep], coo.col[keep]] = -np.inf


def _as_binary_csr(X: csr_matrix) -> csr_matrix:
    """A float32 CSR with 1.0 wherever ``X`` is non-zero; validates the input."""
    if not hasattr(X, "tocsr") or X.ndim != 2:
        raise TypeError(f"expected a 2-D scipy sparse matrix, got {type(X).__name__}")
    B = csr_matrix(X, dtype=np.float32, copy=True)
    B.sum_duplicates()
    B.eliminate_zeros()
    B.data[:] = 1.0
    if B.shape[0] == 0 or B.shape[1] == 0:
        raise ValueError(f"interaction matrix is empty (shape {B.shape})")
    return B
