"""The slate greedy of requests served together picks for each what it would pick alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.objectives import similarity_features
from vidrec.reranking.slate import _User, greedy_slates


def _user(rng: np.random.Generator, n: int, diverse: bool) -> _User:
    _, creator = np.unique(rng.integers(0, max(1, n // 3), n), return_inverse=True)
    local, category = np.unique(rng.integers(0, 5, n), return_inverse=True)
    features = similarity_features(rng.normal(size=(n, 4)), category, 0.3) if diverse else None
    history = rng.integers(0, 4, len(local) + 1).astype(float) if rng.random() > 0.2 else np.zeros(len(local) + 1)
    return _User(rng.normal(size=n), creator, category, rng.random(n) < 0.2, rng.random(n) < 0.3, features, history)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 10**6), users=st.integers(1, 6), diversity=st.sampled_from(["none", "mmr", "dpp"]),
    cap=st.sampled_from([None, 1, 2, 3]), backfill=st.booleans(), min_fresh=st.integers(0, 3),
    fair=st.sampled_from([0.0, 0.2, 0.5]), calibration=st.sampled_from([0.0, 0.3]), window=st.sampled_from([3, 10]),
)
def test_batched_greedy_equals_each_request_alone(seed, users, diversity, cap, backfill, min_fresh, fair,
                                                  calibration, window) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    cfg = ReRankConfig(diversity=diversity, diversity_weight=0.0 if diversity == "none" else 0.3, creator_cap=cap,
                       creator_backfill=backfill, min_fresh=min_fresh, fair_min_share=fair,
                       calibration_weight=calibration, creator_window=window)  # fmt: skip
    pools = [_user(rng, int(rng.integers(1, 40)), diversity != "none") for _ in range(users)]
    ks = [int(rng.integers(1, 15)) for _ in pools]
    together = greedy_slates(pools, ks, cfg)
    for pool, k, (picks, codes, capped) in zip(pools, ks, together):
        alone_picks, alone_codes, alone_capped = greedy_slates([pool], [k], cfg)[0]
        assert picks == alone_picks and codes == alone_codes
        assert np.array_equal(capped, alone_capped)
        assert len(picks) <= k and len(set(picks)) == len(picks)
