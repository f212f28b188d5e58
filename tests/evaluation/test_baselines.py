"""Baselines: one contract every model runs, exact answers, and a quality floor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from vidrec.evaluation.baselines import EASE, IALS, Baseline, MostPopular, top_k
from vidrec.evaluation.metrics import NO_ITEM, ranking_metrics
from vidrec.evaluation.tuning import expand_grid, parse_metric, tune

# 6 users x 8 items: two taste groups (items 0-3 and 4-7), item 0 the most popular.
TINY = csr_matrix(
    np.array(
        [
            [1, 1, 1, 0, 0, 0, 0, 0],
            [1, 1, 0, 1, 0, 0, 0, 0],
            [1, 0, 1, 1, 0, 0, 0, 0],
            [1, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 0, 1, 1],
            [1, 0, 0, 0, 0, 1, 1, 1],
        ],
        dtype=np.float32,
    )
)


class BaselineContract:
    """Behaviour every Baseline must show; subclasses provide ``make``."""

    def make(self) -> Baseline:
        raise NotImplementedError

    def test_fit_returns_self_and_scores_have_the_right_shape(self) -> None:
        model = self.make()
        assert model.fit(TINY) is model
        scores = model.scores(np.array([0, 3, 5]))
        assert scores.shape == (3, TINY.shape[1]) and scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_recommends_k_distinct_items_never_excluded(self) -> None:
        model = self.make().fit(TINY)
        users = np.arange(TINY.shape[0])
        recs = model.recommend(users, 3, exclude=TINY)
        assert recs.shape == (6, 3) and recs.dtype == np.int64
        assert all(len(set(row)) == 3 for row in recs.tolist())
        dense = TINY.toarray()
        assert not any(dense[u, i] for u, row in enumerate(recs) for i in row)

    def test_pads_with_no_item_when_too_few_items_remain(self) -> None:
        model = self.make().fit(TINY)
        recs = model.recommend(np.array([0, 4]), 7, exclude=TINY)
        n_left = TINY.shape[1] - TINY[[0, 4]].getnnz(axis=1)
        for row, left in zip(recs, n_left):
            assert (row[:left] >= 0).all() and (row[left:] == NO_ITEM).all()
        assert model.recommend(np.array([0]), 10).shape == (1, 10)  # deeper than the catalogue

    def test_scores_order_matches_recommend(self) -> None:
        model = self.make().fit(TINY)
        users = np.array([1, 4])
        scores = model.scores(users)
        recs = model.recommend(users, 4)
        top = np.take_along_axis(scores, recs, axis=1)
        assert (np.diff(top, axis=1) <= 0).all()
        assert np.allclose(top[:, 0], scores.max(axis=1))

    def test_is_deterministic(self) -> None:
        a = self.make().fit(TINY).scores(np.arange(6))
        b = self.make().fit(TINY).scores(np.arange(6))
        assert np.allclose(a, b, atol=1e-6)

    def test_refuses_use_before_fit_and_bad_users(self) -> None:
        with pytest.raises(RuntimeError, match="not fitted"):
            self.make().recommend(np.array([0]), 2)
        model = self.make().fit(TINY)
        with pytest.raises(IndexError):
            model.recommend(np.array([6]), 2)
        with pytest.raises(ValueError, match="k must be"):
            model.recommend(np.array([0]), 0)
        with pytest.raises(ValueError, match="shape"):
            model.recommend(np.array([0]), 2, exclude=TINY[:, :4])


class TestMostPopular(BaselineContract):
    def make(self) -> Baseline:
        return MostPopular()

    def test_exact_order(self) -> None:
        X = csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=np.float32))
        model = MostPopular().fit(X)
        assert model.counts.tolist() == [2, 0, 3, 1]
        assert model.recommend(np.array([0]), 4).tolist() == [[2, 0, 3, 1]]
        assert model.recommend(np.array([0]), 4, exclude=X).tolist() == [[3, 1, NO_ITEM, NO_ITEM]]

    def test_counts_users_not_repeat_interactions(self) -> None:
        X = csr_matrix(np.array([[5, 0], [0, 1], [0, 1]], dtype=np.float32))
        assert MostPopular().fit(X).counts.tolist() == [1, 2]


class TestEASE(BaselineContract):
    def make(self) -> Baseline:
        return EASE(lambda_=1.0)

    def test_exact_on_a_3x4_matrix(self) -> None:
        X = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1]], dtype=np.float64)
        lam = 0.5
        P = np.linalg.inv(X.T @ X + lam * np.eye(4))
        B = np.eye(4) - P / np.diag(P)  # Steck's closed form: I - P diagMat(1/diag(P))
        expected = X @ B
        model = EASE(lambda_=lam).fit(csr_matrix(X))
        assert np.allclose(np.diag(model.B), 0.0)
        assert np.allclose(model.B, B, atol=1e-6)
        assert np.allclose(model.scores(np.arange(3)), expected, atol=1e-5)

    def test_rejects_bad_config(self) -> None:
        with pytest.raises(ValueError, match="lambda_"):
            EASE(lambda_=0.0)
        with pytest.raises(ValueError, match="max_items"):
            EASE(max_items=4).fit(TINY)


class TestIALS(BaselineContract):
    def make(self) -> Baseline:
        return IALS(factors=4, regularization=0.1, alpha=5.0, iterations=8, random_state=3)

    def test_same_seed_same_factors(self) -> None:
        a = IALS(factors=4, iterations=5, random_state=11).fit(TINY)
        b = IALS(factors=4, iterations=5, random_state=11).fit(TINY)
        assert np.allclose(a.item_factors, b.item_factors, atol=1e-6)
        assert a.user_factors.shape == (6, 4) and a.item_factors.shape == (8, 4)

    def test_rejects_bad_config(self) -> None:
        with pytest.raises(ValueError, match="factors"):
            IALS(factors=0)
        with pytest.raises(ValueError, match="alpha"):
            IALS(alpha=0.0)


def test_top_k_matches_argsort_oracle() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((20, 30)).astype(np.float32)
    assert (top_k(scores, 7) == np.argsort(-scores, axis=1)[:, :7]).all()
    scores[:, 5:] = -np.inf
    out = top_k(scores, 7)
    assert (out[:, 5:] == NO_ITEM).all()
    assert (np.sort(out[:, :5], axis=1) == np.arange(5)).all()


def low_rank_split(seed: int = 0) -> tuple[csr_matrix, csr_matrix]:
    """Users prefer one of 6 item groups; popularity is skewed inside and across groups."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_groups = 400, 180, 6
    group_of_item = np.arange(n_items) % n_groups
    user_group = rng.integers(0, n_groups, n_users)
    item_pop = rng.pareto(1.5, n_items) + 1.0
    affinity = np.where(user_group[:, None] == group_of_item[None, :], 1.0, 0.04)
    p = affinity * item_pop[None, :]
    p = p / p.sum(axis=1, keepdims=True) * 25  # about 25 interactions per user
    seen = rng.random((n_users, n_items)) < np.clip(p, 0, 0.95)
    test = seen & (rng.random(seen.shape) < 0.25)
    train = seen & ~test
    return csr_matrix(train.astype(np.float32)), csr_matrix(test.astype(np.float32))


def recall_at_10(model: Baseline, train: csr_matrix, test: csr_matrix) -> float:
    users = np.arange(train.shape[0])
    recs = model.fit(train).recommend(users, 10, exclude=train)
    return ranking_metrics(recs, test, ks=(10,)).mean["recall@10"]


def test_quality_floor_personalised_models_beat_most_popular() -> None:
    train, test = low_rank_split()
    pop = recall_at_10(MostPopular(), train, test)
    ease = recall_at_10(EASE(lambda_=50.0), train, test)
    ials_model = IALS(factors=16, regularization=0.1, alpha=10.0, iterations=10)
    ials = recall_at_10(ials_model, train, test)
    assert ease > 1.3 * pop, (ease, pop)
    assert ials > 1.3 * pop, (ials, pop)


def test_tune_picks_the_best_grid_point_on_validation() -> None:
    train, valid = low_rank_split(seed=1)
    grid = {"lambda_": [1.0, 50.0, 1e6]}
    best, table = tune(EASE, grid, train, valid, metric="recall@10")
    assert table.height == 3 and set(table.columns) == {"lambda_", "recall@10", "fit_seconds"}
    assert best["lambda_"] == table["lambda_"][int(table["recall@10"].arg_max())]
    assert best["lambda_"] != 1e6  # an absurd penalty cannot win


def test_grid_and_metric_parsing() -> None:
    assert expand_grid({}) == [{}]
    assert expand_grid({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert parse_metric("ndcg@10") == ("ndcg", 10)
    with pytest.raises(ValueError, match="empty"):
        expand_grid({"a": []})
    with pytest.raises(ValueError, match="tuning metric"):
        parse_metric("auc")
