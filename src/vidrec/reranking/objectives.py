"""Slate objectives as small numpy pieces: similarity, MMR, DPP greedy MAP, calibration.

Each works on one user's candidate pool (n ~ 100-300) and is vectorised across the
pool; the greedy in :mod:`vidrec.reranking.slate` calls them once per slot.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-10
"""Residuals below this make an item linearly dependent on the slate (log-det -> -23)."""


def similarity_features(
    vectors: np.ndarray | None, categories: np.ndarray, category_weight: float
) -> np.ndarray:
    """Rows ``f_i`` with ``f_i . f_j = (1 - w) cos(e_i, e_j) + w [cat_i == cat_j]``.

    A Gram matrix, so the similarity is positive semi-definite (a valid DPP kernel) with
    unit diagonal for known items. Without vectors only categories count (w = 1).
    ``categories`` are integer codes (n,); ``vectors`` float (n, d).
    """
    n = len(categories)
    onehot = np.zeros((n, int(categories.max(initial=-1)) + 1))
    onehot[np.arange(n), categories] = 1.0
    if vectors is None or category_weight >= 1.0:
        return onehot
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float64), where=norms > 0)
    return np.hstack([unit * np.sqrt(1.0 - category_weight), onehot * np.sqrt(category_weight)])


def mmr_gain(relevance: np.ndarray, max_sim: np.ndarray, weight: float) -> np.ndarray:
    """Maximal marginal relevance: ``(1 - w) rel_i - w max_{j in slate} sim(i, j)``."""
    return (1.0 - weight) * relevance - weight * max_sim


class DppGreedy:
    """Greedy MAP of a DPP with incremental Cholesky (Chen, Zhang & Zhou, NeurIPS 2018).

    Works on the similarity kernel ``S = F F^T``; with ``L = diag(q) S diag(q)`` the
    log-det gain of item i is ``2 log q_i + log d_i^2`` where ``d_i^2`` is i's Cholesky
    residual under S, so ranking by ``(1 - w) rel_i + w log d_i^2`` is the greedy MAP of
    L with ``q_i = exp(rel_i (1 - w) / (2 w))``. Each step costs O(n * slate).
    """

    def __init__(self, features: np.ndarray, k: int) -> None:
        self.features = features  # (n, f)
        self.d2 = np.einsum("ij,ij->i", features, features)  # (n,) residuals, S_ii at the start
        self.c = np.zeros((features.shape[0], k))  # (n, k) Cholesky rows
        self.t = 0

    def log_residual(self) -> np.ndarray:
        """``log d_i^2`` for every item (the log-det increment of adding i under S)."""
        return np.log(np.maximum(self.d2, EPS))

    def add(self, j: int) -> None:
        """Condition the residuals on item ``j`` joining the slate."""
        dj = self.d2[j]
        if dj > EPS and self.t < self.c.shape[1]:
            row = self.features @ self.features[j]  # (n,) S_ji
            e = (row - self.c[:, : self.t] @ self.c[j, : self.t]) / np.sqrt(dj)
            self.c[:, self.t] = e
            self.d2 = self.d2 - e * e
        self.t += 1
        self.d2[j] = 0.0


def dpp_map(kernel: np.ndarray, k: int) -> list[int]:
    """Greedy MAP for an explicit PSD kernel ``L`` (n, n): the items in the order picked."""
    values, vecs = np.linalg.eigh(kernel)
    features = vecs * np.sqrt(np.clip(values, 0.0, None))  # L = F F^T
    greedy = DppGreedy(features, k)
    picked: list[int] = []
    for _ in range(min(k, kernel.shape[0])):
        gain = greedy.log_residual()
        gain[picked] = -np.inf
        j = int(np.argmax(gain))
        picked.append(j)
        greedy.add(j)
    return picked


def kl_divergence(p: np.ndarray, q: np.ndarray, alpha: float) -> np.ndarray:
    """``KL(p || (1 - alpha) q + alpha p)`` along the last axis (Steck 2018, natural log)."""
    smoothed = (1.0 - alpha) * q + alpha * p
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(p > 0, smoothed, 1.0)), 0.0)
    return terms.sum(axis=-1)


def calibration_deltas(p: np.ndarray, counts: np.ndarray, alpha: float) -> np.ndarray:
    """:func:`calibration_delta` of several users at once: ``p`` and ``counts`` (users, C)."""
    size = counts.sum(axis=1)
    now = kl_divergence(p, counts / np.where(size > 0, size, 1.0)[:, None], alpha)  # (users,)
    after = (counts[:, None, :] + np.eye(p.shape[1])[None]) / (size + 1.0)[:, None, None]  # (users, C, C)
    return kl_divergence(p[:, None, :], after, alpha) - now[:, None]


def calibration_delta(p: np.ndarray, counts: np.ndarray, alpha: float) -> np.ndarray:
    """Change of the slate's KL to the history ``p`` (C,) if one item of each category joins.

    ``counts`` (C,) are the slate's items per category. Returns (C,): entry c is
    ``KL(after adding a category-c item) - KL(now)``.
    """
    size = counts.sum()
    now = kl_divergence(p, counts / size if size else np.zeros_like(p), alpha)
    after = (counts[None, :] + np.eye(len(p))) / (size + 1.0)  # (C, C)
    return kl_divergence(p[None, :], after, alpha) - now
