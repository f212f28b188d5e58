"""Exact checks of the slate objectives: similarity, MMR, DPP greedy MAP, calibration KL."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vidrec.reranking import ReRankConfig
from vidrec.reranking.objectives import (
    DppGreedy,
    calibration_delta,
    dpp_map,
    kl_divergence,
    mmr_gain,
    similarity_features,
)
from vidrec.reranking.slate import _User, greedy_slate


def _user(score, category, features=None, history=None, creator=None, fresh=None, fair=None) -> _User:
    n = len(score)
    cats = np.asarray(category)
    return _User(
        score=np.asarray(score, dtype=float),
        creator=np.asarray(creator if creator is not None else range(n)),
        category=cats,
        fresh=np.asarray(fresh if fresh is not None else [False] * n),
        fair=np.asarray(fair if fair is not None else [False] * n),
        features=features,
        history=np.asarray(history if history is not None else [0.0] * (cats.max() + 2), dtype=float),
    )


def test_similarity_is_weighted_cosine_plus_category_equality() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    f = similarity_features(vectors, np.array([0, 0, 1]), 0.25)
    s = f @ f.T
    cos = np.array([[1, 2**-0.5, 0], [2**-0.5, 1, 2**-0.5], [0, 2**-0.5, 1]])
    same = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(s, 0.75 * cos + 0.25 * same)
    g = similarity_features(None, np.array([1, 0, 1]), 0.25)  # without vectors: categories only
    np.testing.assert_allclose(g @ g.T, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def test_mmr_gain_by_hand() -> None:
    np.testing.assert_allclose(mmr_gain(np.array([1.0, 0.5]), np.array([0.8, 0.0]), 0.3), [0.7 - 0.24, 0.35])


def test_mmr_slate_picks_the_second_category_before_a_near_duplicate() -> None:
    # a0 and a1 have the same category (similarity 1); b0 scores lower but differs
    user = _user([1.0, 0.9, 0.6], [0, 0, 1], similarity_features(None, np.array([0, 0, 1]), 1.0))
    picks, codes, _ = greedy_slate(user, 3, ReRankConfig(diversity="mmr", diversity_weight=0.5, creator_cap=None))
    # slot 2: a1 gains 0.5*0.75 - 0.5*1 = -0.125, b0 gains 0.5*0 - 0 = 0
    assert picks == [0, 2, 1]
    assert codes == [[], ["mmr:+1"], ["mmr:-1"]]
    picks, _, _ = greedy_slate(user, 3, ReRankConfig(diversity="mmr", diversity_weight=0.1, creator_cap=None))
    assert picks == [0, 1, 2]


def _random_kernel(rng: np.random.Generator, n: int, rank: int) -> np.ndarray:
    b = rng.normal(size=(n, rank))
    return b @ b.T


@pytest.mark.parametrize("seed", range(6))
def test_dpp_greedy_matches_a_brute_force_greedy_and_log_det_increments(seed: int) -> None:
    rng = np.random.default_rng(seed)
    kernel = _random_kernel(rng, 6, 6)
    picked = dpp_map(kernel, 4)
    chosen: list[int] = []
    for _ in range(4):  # brute force: add the item that maximises log det L_S
        rest = [i for i in range(6) if i not in chosen]
        dets = [np.linalg.slogdet(kernel[np.ix_(chosen + [i], chosen + [i])])[1] for i in rest]
        chosen.append(rest[int(np.argmax(dets))])
    assert picked == chosen
    # the residuals are the exact log-det increments at every step
    values, vecs = np.linalg.eigh(kernel)
    greedy = DppGreedy(vecs * np.sqrt(np.clip(values, 0, None)), 4)
    for t, j in enumerate(picked):
        before = np.linalg.slogdet(kernel[np.ix_(picked[:t], picked[:t])])[1] if t else 0.0
        after = np.linalg.slogdet(kernel[np.ix_(picked[: t + 1], picked[: t + 1])])[1]
        assert greedy.log_residual()[j] == pytest.approx(after - before, rel=1e-6, abs=1e-8)
        greedy.add(j)


def test_dpp_greedy_on_a_tiny_kernel_finds_the_map_set() -> None:
    # two near-duplicates of high quality and one distinct item: the MAP pair is distinct
    kernel = np.array([[1.0, 0.99, 0.0], [0.99, 1.0, 0.0], [0.0, 0.0, 0.8]])
    best = max(itertools.combinations(range(3), 2), key=lambda s: np.linalg.det(kernel[np.ix_(s, s)]))
    assert sorted(dpp_map(kernel, 2)) == sorted(best) == [0, 2]


def test_dpp_slate_equals_greedy_map_of_the_quality_kernel() -> None:
    rng = np.random.default_rng(3)
    feats = similarity_features(rng.normal(size=(7, 3)), rng.integers(0, 3, 7), 0.4)
    score = np.sort(rng.uniform(size=7))[::-1]
    w = 0.4
    user = _user(score, np.zeros(7, dtype=int), feats)
    picks, _, _ = greedy_slate(user, 4, ReRankConfig(diversity="dpp", diversity_weight=w, creator_cap=None))
    rel = (score - score.min()) / (score.max() - score.min())
    q = np.exp(rel * (1 - w) / (2 * w))
    kernel = q[:, None] * (feats @ feats.T) * q[None, :]
    assert picks == dpp_map(kernel, 4)


def test_kl_divergence_by_hand() -> None:
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([1.0, 0.0, 0.0])
    smoothed = 0.9 * q + 0.1 * p
    expected = 0.5 * np.log(0.5 / smoothed[0]) + 0.5 * np.log(0.5 / smoothed[1])
    assert kl_divergence(p, q, 0.1) == pytest.approx(expected)
    assert kl_divergence(p, p, 0.1) == pytest.approx(0.0)


def test_calibration_delta_is_the_change_of_kl() -> None:
    p = np.array([0.6, 0.3, 0.1])
    counts = np.array([2.0, 0.0, 1.0])
    delta = calibration_delta(p, counts, 0.01)
    for c in range(3):
        after = counts + np.eye(3)[c]
        assert delta[c] == pytest.approx(kl_divergence(p, after / 4, 0.01) - kl_divergence(p, counts / 3, 0.01))
    assert np.argmin(delta) == 1  # the missing category closes the gap most


def test_calibrated_slate_follows_the_history_mix() -> None:
    # history 2/3 category 0 and 1/3 category 1; category 0 videos all score higher
    user = _user([1.0, 0.99, 0.98, 0.97, 0.5, 0.49], [0, 0, 0, 0, 1, 1], history=[2.0, 1.0, 0.0])
    cfg = ReRankConfig(diversity="none", calibration_weight=0.9, creator_cap=None)
    picks, codes, _ = greedy_slate(user, 3, cfg)
    assert sorted(user.category[picks].tolist()) == [0, 0, 1]
    assert any(c.startswith("calibration:+") for cs in codes for c in cs)
    plain, _, _ = greedy_slate(user, 3, ReRankConfig(diversity="none", creator_cap=None, min_fresh=0))
    assert plain == [0, 1, 2]


def test_fresh_and_fair_minimums_take_the_last_slots_they_need() -> None:
    user = _user([1.0, 0.9, 0.8, 0.7, 0.1, 0.05], [0] * 6, fresh=[False] * 4 + [True, False],
                 fair=[False] * 5 + [True])
    cfg = ReRankConfig(diversity="none", creator_cap=None, min_fresh=1, fair_min_share=0.25)
    picks, codes, _ = greedy_slate(user, 4, cfg)
    assert picks == [0, 1, 4, 5]  # ceil(0.25 * 4) = 1 fair slot, 1 fresh slot
    assert codes[2] == ["slate:+2", "fresh_slot"] and codes[3] == ["slate:+2", "fair_slot"]
