"""Hard negatives mined from the current model: each user's top-scoring videos they never
interacted with. They sharpen the top of the ranking, but only mixed with sampled negatives;
alone they would teach the model nothing about the rest of the corpus."""

from __future__ import annotations

import numpy as np
import torch

from vidrec.candidates.two_tower.data import Examples
from vidrec.candidates.two_tower.model import TwoTowerModel


def latest_rows(user: np.ndarray) -> np.ndarray:
    """Index of each dense user's last example (examples are sorted by user, then time)."""
    n_users = int(user.max(initial=-1)) + 1
    last = np.full(n_users, -1, dtype=np.int64)
    last[user] = np.arange(len(user))  # later rows overwrite earlier ones (numpy keeps the last write)
    return last


class HardNegativeMiner:
    """Keeps, per user, the ``pool`` top-scoring non-interacted videos of the current model and
    draws hard negatives uniformly from them (not always the very top, which are the likeliest
    false negatives)."""

    def __init__(self, examples: Examples, n_videos: int, pool: int, rng: np.random.Generator) -> None:
        self.examples, self.n_videos, self.rng = examples, n_videos, rng
        self.pool_size = min(pool, n_videos)
        self.rows = latest_rows(examples.user)
        n_users = len(self.rows)
        self.pool = np.zeros((n_users, self.pool_size), dtype=np.int64)  # shifted indices; 0 = none
        self.refreshes = 0

    @torch.no_grad()
    def refresh(self, model: TwoTowerModel, chunk: int = 1024) -> None:
        """Re-mine every user's pool from the model as it is now (users embedded from their
        most recent example's history)."""
        was_training = model.training
        model.eval()
        ex, n1 = self.examples, np.int64(self.n_videos + 1)
        u = model.embed_users(ex.user_batch(self.rows))  # (U, d)
        v = model.catalogue_tower(torch.arange(1, self.n_videos + 1))  # (N, d)
        keys = ex.interacted_keys  # sorted user * (N + 1) + video
        for s in range(0, len(self.rows), chunk):
            e = min(s + chunk, len(self.rows))
            scores = u[s:e] @ v.T  # (chunk, N)
            lo, hi = np.searchsorted(keys, [s * n1, e * n1])
            k = keys[lo:hi]
            scores[torch.from_numpy(k // n1 - s), torch.from_numpy(k % n1 - 1)] = -torch.inf
            top = torch.topk(scores, self.pool_size, dim=1)
            idx = (top.indices + 1).masked_fill(torch.isinf(top.values), 0)  # (chunk, pool)
            self.pool[s:e] = idx.numpy()
        self.refreshes += 1
        model.train(was_training)

    def sample(self, user: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Hard negatives (n, count) as shifted indices and their validity mask."""
        cols = self.rng.integers(0, self.pool_size, size=(len(user), count))
        neg = self.pool[user[:, None], cols]
        return neg, neg > 0
