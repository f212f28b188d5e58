"""The three stages end to end on a tiny platform whose right answer is known."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.pipeline import STAGES
from vidrec.recommender import Recommender
from vidrec.reranking import DefaultReRanker, ReRankConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ds = two_audiences()
    rec = Recommender.train(ds, small_config(), log=lambda m: None)
    root = tmp_path_factory.mktemp("model")
    rec.save(root)
    return Recommender.load(root), ds, root


def test_known_answer_users_get_their_own_kind(trained) -> None:
    rec, ds, _ = trained
    users = ds.users["user_id"].to_list()
    out = rec.recommend_batch(users, k=5)
    kinds = out.with_columns(
        own=(pl.col("user_id").str.slice(1).cast(pl.Int64) % 2)
        == (pl.col("video_id").str.slice(1).cast(pl.Int64) % 2)
    )
    assert kinds["own"].mean() >= 0.8, kinds.group_by("user_id").agg(pl.col("own").mean())


@pytest.mark.parametrize("stage", STAGES)
def test_stage_contract(trained, stage) -> None:
    rec, ds, _ = trained
    users = ds.users["user_id"].head(6).to_list()
    out = rec.recommend_batch(users, k=4, stage=stage)
    assert out.columns[:5] == ["user_id", "rank", "video_id", "score", "source"]
    assert {"sources", "retrieval_score"} <= set(out.columns)
    if stage != "candidates":
        assert "p_complete" in out.columns and out["p_complete"].is_between(0, 1).all()
    if stage == "final":
        assert {"final_score", "adjustments"} <= set(out.columns)
    per_user = out.group_by("user_id").agg(pl.col("rank").sort(), pl.col("video_id").n_unique())
    for ranks, n in zip(per_user["rank"], per_user["video_id"]):
        assert ranks.to_list() == list(range(1, len(ranks) + 1)) and n == len(ranks) <= 4
    assert (out["source"].str.len_chars() > 0).all()


@pytest.mark.parametrize("stage", STAGES)
def test_never_returns_seen_or_disliked(trained, stage) -> None:
    rec, ds, _ = trained
    users = ds.users["user_id"].to_list()
    out = rec.recommend_batch(users, k=20, stage=stage)
    seen = ds.events.select("user_id", "video_id").unique()
    assert out.join(seen, on=["user_id", "video_id"], how="semi").height == 0


def test_a_dislike_is_honoured_by_the_next_request(trained) -> None:
    rec, ds, root = trained
    fresh = Recommender.load(root)  # do not disturb the shared fixture
    before = fresh.recommend("u0", k=5)
    top = before["video_id"][0]
    fresh.observe(
        pl.DataFrame(
            {"user_id": ["u0"], "video_id": [top], "ts": [fresh.now + timedelta(seconds=1)],
             "event": ["dislike"], "watch_seconds": [None]},
            schema_overrides={"watch_seconds": pl.Float64},
        )
    )  # fmt: skip
    after = fresh.recommend("u0", k=5)
    assert top not in after["video_id"].to_list()
    assert after.height == 5


def test_cold_user_still_gets_a_slate(trained) -> None:
    rec, _, _ = trained
    out = rec.recommend("someone-new", k=5)
    assert out.height == 5 and out["video_id"].n_unique() == 5


def test_save_load_round_trip(trained) -> None:
    rec, ds, root = trained
    again = Recommender.load(root)
    users = ds.users["user_id"].head(5).to_list()
    a = rec.recommend_batch(users, k=5).select("user_id", "video_id", "score")
    b = again.recommend_batch(users, k=5).select("user_id", "video_id", "score")
    assert a.equals(b)


def test_only_the_trained_heads_are_reported(trained) -> None:
    rec, ds, _ = trained
    assert rec.pipeline.ranker.config.tasks == ("label",)
    users = ds.users["user_id"].head(4).to_list()
    for stage in ("scored", "final"):
        out = rec.recommend_batch(users, k=5, stage=stage)
        assert [c for c in out.columns if c.startswith("p_")] == ["p_complete", "p_raw"], stage
    items = rec.slate(users[0], k=5)
    assert all(i["probabilities"] == {"p_complete": i["p_complete"]} for i in items)


def test_with_no_re_ranking_rule_firing_the_slate_follows_the_raw_score(trained) -> None:
    rec, ds, root = trained
    plain = Recommender.load(root)
    rules_off = ReRankConfig(fresh_boost=0.0, creator_cap=None, diversity="none", min_fresh=0,
                             fatigue_filter_days=0.0, fatigue_recover_days=0.0)
    plain.pipeline.reranker = DefaultReRanker(rules_off)
    plain.pipeline.bind(plain.catalogue, plain.live)
    for user in ds.users["user_id"].head(6).to_list():
        result = plain.run(user, k=15)
        assert result.scored is not None and result.slate is not None
        raw, score = result.scored["p_raw"], result.scored["score"]
        assert np.unique(score).size == np.unique(raw).size  # calibration ties none of them
        kept = result.slate.allowed
        expected = np.flatnonzero(kept)[np.argsort(-raw[kept], kind="stable")][:15]
        np.testing.assert_array_equal(result.slate.order, expected)
