"""Top-K ranking metrics over full rankings: recall, precision, NDCG and hit rate.

Every model is judged the same way: a matrix of recommended item indices, one ranked
row per user, against a sparse relevance matrix. Relevance is binary. Users with no
relevant item cannot be judged and are left out of the means (their per-user values
are NaN), so a model is never rewarded or punished for users the test says nothing
about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

METRIC_NAMES: tuple[str, ...] = ("recall", "precision", "ndcg", "hit_rate")

NO_ITEM = -1
"""Marks an empty slot in a recommendation list (fewer eligible items than ``k``)."""


@dataclass(frozen=True)
class RankingMetrics:
    """Per-user and mean metrics for several cut-offs at once.

    ``per_user["ndcg@10"]`` has one value per row of the recommendation matrix, NaN
    for users without relevant items; ``mean`` averages over the judged users only.
    """

    per_user: dict[str, np.ndarray]
    mean: dict[str, float]
    n_judged: int
    n_users: int


def hits_matrix(recs: np.ndarray, relevance: csr_matrix) -> np.ndarray:
    """Return a bool ``(n_users, K)`` matrix: is ``recs[u, j]`` relevant to user ``u``.

    Membership is tested on int64 keys ``row * n_items + item`` so the whole matrix is
    checked in one vectorised ``np.isin`` call; ``NO_ITEM`` slots are never hits.
    """
    recs = _check_recs(recs, relevance)
    n_users, n_items = relevance.shape
    rel = _nonzero_csr(relevance)
    rel_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    rel_keys = rel_rows * n_items + rel.indices.astype(np.int64)
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + recs  # (n_users, K)
    hits = np.isin(rec_keys, rel_keys)
    hits &= recs != NO_ITEM
    return hits


def relevant_counts(relevance: csr_matrix) -> np.ndarray:
    """Number of relevant items per user (explicit zeros do not count)."""
    return np.diff(_nonzero_csr(relevance).indptr)


def _nonzero_csr(relevance: csr_matrix) -> csr_matrix:
    """A canonical CSR copy without explicitly stored zeros."""
    rel = csr_matrix(relevance, copy=True)
    rel.sum_duplicates()
    rel.eliminate_zeros()
    return rel


def ranking_metrics(
    recs: np.ndarray, relevance: csr_matrix, ks: Sequence[int] = (10,)
) -> RankingMetrics:
    """Compute recall, precision, NDCG and hit rate at every ``k`` in ``ks``.

    Args:
        recs: ``(n_users, K)`` item indices, best first; ``NO_ITEM`` for empty slots.
        relevance: ``(n_users, n_items)`` sparse matrix, non-zero where relevant.
        ks: cut-offs, each at most ``K``.

    Returns:
        Per-user values (NaN for users without relevant items) and their means.
        recall@k = hits@k / |rel|; precision@k = hits@k / k; NDCG@k uses a log2
        discount and an ideal DCG over min(k, |rel|) hits; hit_rate@k = hits@k > 0.
    """
    ks = _check_ks(ks, recs.shape[1] if recs.ndim == 2 else 0)
    hits = hits_matrix(recs, relevance)  # (n_users, K) bool
    n_rel = relevant_counts(relevance).astype(np.float64)  # (n_users,)
    judged = n_rel > 0
    k_max = max(ks)
    discount = 1.0 / np.log2(np.arange(2, k_max + 2, dtype=np.float64))  # (k_max,)
    cum_hits = np.cumsum(hits[:, :k_max], axis=1, dtype=np.float64)
    cum_dcg = np.cumsum(hits[:, :k_max] * discount, axis=1)
    ideal = np.cumsum(discount)  # ideal DCG for 1..k_max relevant items
    safe_rel = np.where(judged, n_rel, 1.0)
    per_user: dict[str, np.ndarray] = {}
    for k in ks:
        hits_k = cum_hits[:, k - 1]
        n_ideal = np.clip(np.minimum(n_rel, k), 1, None).astype(np.int64)
        values = {
            "recall": hits_k / safe_rel,
            "precision": hits_k / k,
            "ndcg": cum_dcg[:, k - 1] / ideal[n_ideal - 1],
            "hit_rate": (hits_k > 0).astype(np.float64),
        }
        for name in METRIC_NAMES:
            per_user[f"{name}@{k}"] = np.where(judged, values[name], np.nan)
    n_judged = int(judged.sum())
    mean = {
        key: float(np.nanmean(v)) if n_judged else float("nan") for key, v in per_user.items()
    }
    return RankingMetrics(per_user=per_user, mean=mean, n_judged=n_judged, n_users=len(n_rel))


def _check_ks(ks: Sequence[int], depth: int) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"cut-offs must be positive integers, got {list(ks)}")
    if ks[-1] > depth:
        raise ValueError(
            f"cut-off k={ks[-1]} is deeper than the recommendation lists ({depth} items); "
            "recommend at least max(ks) items per user"
        )
    return ks


def _check_recs(recs: np.ndarray, relevance: csr_matrix) -> np.ndarray:
    """Validate shape, range and distinctness so a broken list fails loudly, not quietly."""
    recs = np.asarray(recs)
    if recs.ndim != 2 or not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(
            f"recommendations must be a 2-D integer array, got {recs.dtype}{recs.shape}"
        )
    n_users, n_items = relevance.shape
    if recs.shape[0] != n_users:
        raise ValueError(
            f"recommendations have {recs.shape[0]} rows but relevance has {n_users} users; "
            "rows must follow the evaluation's user order"
        )
    recs = recs.astype(np.int64, copy=False)
    if recs.size and (recs.min() < NO_ITEM or recs.max() >= n_items):
        raise ValueError(f"recommended item indices must lie in [0, {n_items}) or be {NO_ITEM}")
    ordered = np.sort(recs, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != NO_ITEM)):
        raise ValueError(
            "a recommendation list repeats an item; each list must hold distinct items"
        )
    return recs
