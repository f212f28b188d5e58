"""Ranking metrics: hand-computed answers, a loop oracle and hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix

from vidrec.evaluation.metrics import NO_ITEM, hits_matrix, ranking_metrics, relevant_counts


def rel_matrix(rows: list[list[int]], n_items: int) -> csr_matrix:
    data = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        data[u, items] = 1.0
    return csr_matrix(data)


def test_hand_computed_values() -> None:
    recs = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0]])
    rel = rel_matrix([[1], [2, 0], []], n_items=4)
    m = ranking_metrics(recs, rel, ks=(1, 2, 3))
    d2 = 1.0 / math.log2(3)
    # user 0: hit at rank 2 only; user 1: hits at ranks 1 and 2; user 2: nothing relevant
    assert m.per_user["recall@1"][:2].tolist() == [0.0, 0.5]
    assert m.per_user["recall@2"][:2].tolist() == [1.0, 1.0]
    assert m.per_user["precision@2"][:2].tolist() == [0.5, 1.0]
    assert m.per_user["ndcg@1"][:2].tolist() == [0.0, 1.0]
    assert m.per_user["ndcg@2"][:2] == pytest.approx([d2, 1.0])
    assert m.per_user["ndcg@3"][:2] == pytest.approx([d2, 1.0])
    assert m.per_user["hit_rate@1"][:2].tolist() == [0.0, 1.0]
    assert np.isnan(m.per_user["recall@3"][2])  # no relevant items: not judged
    assert m.n_judged == 2 and m.n_users == 3
    assert m.mean["recall@1"] == pytest.approx(0.25)
    assert m.mean["ndcg@2"] == pytest.approx((d2 + 1.0) / 2)
    assert m.mean["precision@3"] == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_ideal_dcg_uses_min_of_k_and_relevant_count() -> None:
    recs = np.array([[5, 0, 1, 2]])
    rel = rel_matrix([[0, 1, 2, 3, 4]], n_items=6)  # 5 relevant, 3 of them at ranks 2-4
    m = ranking_metrics(recs, rel, ks=(2, 4))
    disc = 1.0 / np.log2(np.arange(2, 6))
    assert m.mean["ndcg@2"] == pytest.approx(disc[1] / disc[:2].sum())
    assert m.mean["ndcg@4"] == pytest.approx(disc[1:4].sum() / disc[:4].sum())
    assert m.mean["recall@4"] == pytest.approx(3 / 5)


def test_empty_slots_and_explicit_zeros_never_count() -> None:
    recs = np.array([[3, NO_ITEM, NO_ITEM]])
    rel = csr_matrix((np.array([1.0, 0.0]), (np.array([0, 0]), np.array([0, 3]))), shape=(1, 4))
    assert relevant_counts(rel).tolist() == [1]
    assert not hits_matrix(recs, rel).any()
    assert ranking_metrics(recs, rel, ks=(3,)).mean["recall@3"] == 0.0


def test_no_judged_user_gives_nan_means() -> None:
    m = ranking_metrics(np.array([[0, 1]]), csr_matrix((1, 3)), ks=(2,))
    assert m.n_judged == 0 and math.isnan(m.mean["ndcg@2"])


@pytest.mark.parametrize(
    ("recs", "ks", "message"),
    [
        (np.array([[0, 0, 1]]), (2,), "repeats an item"),
        (np.array([[0, 1, 2]]), (4,), "deeper than"),
        (np.array([[0, 1, 9]]), (2,), "must lie in"),
        (np.array([[0, 1], [1, 2]]), (2,), "rows"),
        (np.array([[0.0, 1.0]]), (1,), "integer"),
        (np.array([[0, 1]]), (0,), "positive"),
    ],
)
def test_broken_lists_fail_loudly(recs: np.ndarray, ks: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ranking_metrics(recs, rel_matrix([[1]], n_items=4), ks=ks)


def loop_metrics(recs: np.ndarray, rel: np.ndarray, k: int) -> dict[str, float]:
    """A per-user Python oracle, written independently of the vectorised code."""
    out: dict[str, list[float]] = {"recall": [], "precision": [], "ndcg": []}
    for u in range(len(recs)):
        relevant = set(np.flatnonzero(rel[u]).tolist())
        if not relevant:
            continue
        top = [i for i in recs[u, :k].tolist()]
        hits = [1.0 if i in relevant else 0.0 for i in top]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        out["recall"].append(sum(hits) / len(relevant))
        out["precision"].append(sum(hits) / k)
        out["ndcg"].append(dcg / idcg)
    return {name: float(np.mean(v)) for name, v in out.items()}


def test_matches_loop_oracle_on_random_data() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, depth = 60, 40, 15
    rel = (rng.random((n_users, n_items)) < 0.1).astype(np.float32)
    recs = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :depth]
    m = ranking_metrics(recs, csr_matrix(rel), ks=(1, 5, 15))
    for k in (1, 5, 15):
        oracle = loop_metrics(recs, rel, k)
        for name, value in oracle.items():
            assert m.mean[f"{name}@{k}"] == pytest.approx(value)


@st.composite
def ranked_case(draw: st.DrawFn) -> tuple[np.ndarray, csr_matrix]:
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rel = (rng.random((n_users, n_items)) < draw(st.floats(0.05, 0.9))).astype(np.float32)
    recs = np.argsort(rng.random((n_users, n_items)), axis=1)
    return recs, csr_matrix(rel)


@settings(max_examples=60, deadline=None)
@given(ranked_case())
def test_metrics_are_bounded_and_recall_grows_with_k(case: tuple[np.ndarray, csr_matrix]) -> None:
    recs, rel = case
    ks = tuple(range(1, recs.shape[1] + 1))
    m = ranking_metrics(recs, rel, ks=ks)
    for key, values in m.per_user.items():
        judged = values[~np.isnan(values)]
        assert np.all((judged >= 0.0) & (judged <= 1.0 + 1e-12)), key
    recall = np.stack([m.per_user[f"recall@{k}"] for k in ks], axis=1)
    judged_rows = recall[~np.isnan(recall[:, 0])]
    assert np.all(np.diff(judged_rows, axis=1) >= 0)
    assert np.allclose(judged_rows[:, -1], 1.0)  # the full ranking finds everything


@settings(max_examples=60, deadline=None)
@given(ranked_case())
def test_perfect_ranking_scores_one(case: tuple[np.ndarray, csr_matrix]) -> None:
    _, rel = case
    dense = rel.toarray()
    perfect = np.argsort(-dense, axis=1, kind="stable")  # relevant items first
    n_rel = dense.sum(axis=1)
    ks = (1, 2, dense.shape[1])
    m = ranking_metrics(perfect, rel, ks=ks)
    judged = n_rel > 0
    for k in ks:
        assert np.allclose(m.per_user[f"ndcg@{k}"][judged], 1.0)
        best = np.minimum(k, n_rel[judged])
        assert np.allclose(m.per_user[f"recall@{k}"][judged], best / n_rel[judged])
        assert np.allclose(m.per_user[f"precision@{k}"][judged], best / k)
