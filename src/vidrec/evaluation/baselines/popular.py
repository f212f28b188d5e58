"""Most-popular: every user gets the videos most users interacted with.

The floor every personalised model must clear; on short-video logs with heavy-tailed
popularity it is a surprisingly hard one.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from vidrec.evaluation.baselines.base import Baseline


class MostPopular(Baseline):
    """Scores each item by the number of distinct users who interacted with it."""

    name = "most-popular"

    def __init__(self) -> None:
        super().__init__()
        self.counts: np.ndarray | None = None  # (n_items,) float32

    def _fit(self, X: csr_matrix) -> None:
        self.counts = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        return np.tile(self.counts, (len(user_idx), 1))  # (n, n_items)
