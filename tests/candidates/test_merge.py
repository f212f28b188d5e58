import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.candidates import merge_candidates
from vidrec.candidates.base import Nominations
from vidrec.candidates.merge import merge, merge_many


def cands(source: str, rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    frame = pl.DataFrame({"user_id": [r[0] for r in rows], "video_id": [r[1] for r in rows],
                          "score": [r[2] for r in rows]})
    return frame.with_columns(
        rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user_id"), source=pl.lit(source)
    )


TT = cands("two_tower", [("u", "a", 9.0), ("u", "b", 8.0), ("u", "c", 7.0), ("u", "d", 6.0), ("w", "a", 1.0)])
TR = cands("trending", [("u", "b", 50.0), ("u", "x", 40.0), ("u", "y", 30.0), ("w", "z", 2.0)])


def test_round_robin_dedup_and_sources():
    got = merge_candidates([TT, TR], None, target=10).filter(pl.col("user_id") == "u")
    # round robin by rank: a (tt 1), b (tr 1), x (tr 2; b is tt 2), c (tt 3), y (tr 3), d (tt 4)
    assert got["video_id"].to_list() == ["a", "b", "x", "c", "y", "d"]
    assert got["rank"].to_list() == [1, 2, 3, 4, 5, 6]
    b = got.filter(pl.col("video_id") == "b").to_dicts()[0]
    assert b["sources"] == ["two_tower", "trending"]
    assert (b["score_two_tower"], b["rank_two_tower"], b["score_trending"], b["rank_trending"]) == (8.0, 2, 50.0, 1)
    assert b["retrieval_score"] == 8.0
    x = got.filter(pl.col("video_id") == "x").to_dicts()[0]
    assert x["sources"] == ["trending"] and x["retrieval_score"] is None


def test_quotas_cap_a_source_then_target_is_filled():
    got = merge_candidates([TT, TR], {"trending": 1}, target=4).filter(pl.col("user_id") == "u")
    # trending claims b (rank 1) within quota; x and y are over quota; tt fills the rest.
    assert got["video_id"].to_list() == ["a", "b", "c", "d"]
    short = merge_candidates([TT, TR], {"trending": 1}, target=6).filter(pl.col("user_id") == "u")
    assert short["video_id"].to_list() == ["a", "b", "c", "d", "x", "y"]  # filled past the cap


def test_target_per_user_and_empty_inputs():
    got = merge_candidates([TT, TR], None, target=2)
    assert got.group_by("user_id").len().sort("user_id")["len"].to_list() == [2, 2]
    assert merge_candidates([TT.head(0)], None, target=3).height == 0
    with pytest.raises(ValueError, match="target"):
        merge_candidates([TT], None, target=0)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**6), requests=st.integers(1, 5), target=st.integers(1, 30),
       quotas=st.sampled_from([None, {"b": 3}, {"a": 0, "c": 5}]))  # fmt: skip
def test_requests_merged_together_get_what_each_gets_alone(seed, requests, target, quotas):
    rng = np.random.default_rng(seed)
    named = []
    for _ in range(requests):
        mine = []
        for name in "abc":
            n = int(rng.integers(0, 20))
            mine.append((name, Nominations(rng.choice(40, n, replace=False), rng.normal(size=n))))
        named.append(mine)
    for mine, together in zip(named, merge_many(named, quotas, target)):
        alone = merge(mine, quotas, target)
        assert np.array_equal(alone.rows, together.rows) and np.array_equal(alone.ranks, together.ranks)
        assert np.array_equal(alone.scores, together.scores, equal_nan=True)
        assert len(together) <= target and len(set(together.rows.tolist())) == len(together)
