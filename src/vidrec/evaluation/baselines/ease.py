"""EASE: a closed-form linear item-item model (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019).

The item-item weights solve a ridge regression of every item on all the others, with
the diagonal forced to zero so an item cannot explain itself:
``P = (X^T X + lambda I)^-1``, ``B = -P / diag(P)`` (column-wise), ``diag(B) = 0``,
``scores = X B``. A strong baseline on MovieLens-sized catalogues; memory grows with
``n_items^2``, so it is refused above ``max_items``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from vidrec.evaluation.baselines.base import Baseline


@dataclass(frozen=True)
class EASEConfig:
    """Hyper-parameters of :class:`EASE`."""

    lambda_: float = 200.0  # L2 penalty; a few hundred suits MovieLens-sized data
    max_items: int = 25_000  # the float64 Gram matrix needs 8 * n_items^2 bytes

    def __post_init__(self) -> None:
        if not self.lambda_ > 0:
            raise ValueError(f"EASE lambda_ must be positive, got {self.lambda_}")
        if self.max_items < 1:
            raise ValueError(f"EASE max_items must be positive, got {self.max_items}")


class EASE(Baseline):
    """Item-item linear model with a closed-form solution."""

    name = "EASE"

    def __init__(self, lambda_: float = 200.0, max_items: int = 25_000) -> None:
        super().__init__()
        self.config = EASEConfig(lambda_=lambda_, max_items=max_items)
        self.B: np.ndarray | None = None  # (n_items, n_items) float32
        self._X: csr_matrix | None = None

    def params(self) -> dict[str, object]:
        return {"lambda_": self.config.lambda_}

    def _fit(self, X: csr_matrix) -> None:
        n_items = X.shape[1]
        if n_items > self.config.max_items:
            raise ValueError(
                f"EASE needs a dense {n_items}x{n_items} matrix, above max_items="
                f"{self.config.max_items}; raise max_items if memory allows"
            )
        G = (X.T @ X).toarray().astype(np.float64)  # (n_items, n_items) co-occurrence
        G[np.diag_indices_from(G)] += self.config.lambda_
        P = np.linalg.inv(G)
        B = P / (-np.diag(P))[None, :]
        B[np.diag_indices_from(B)] = 0.0
        self.B = B.astype(np.float32)
        self._X = X

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        return np.asarray(self._X[user_idx] @ self.B, dtype=np.float32)  # (n, n_items)
