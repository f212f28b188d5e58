"""A trained model serving user state from the online store, SQLite or a shared Redis."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from vidrec.data.schema import TIMESTAMP
from vidrec.features.point_in_time import VIDEO_STAT_FEATURES, EventTables, point_in_time_features
from vidrec.features.user_state import build_user_state
from vidrec.features.video_stats import COUNTS
from vidrec.recommender import Recommender
from tests.tiny_platform import small_config, two_audiences


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("store-model")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root)
    return root


def dislike(rec: Recommender, user: str, video: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": [user], "video_id": [video], "ts": [rec.now + timedelta(seconds=1)],
         "event": ["dislike"], "watch_seconds": [None]},
        schema_overrides={"watch_seconds": pl.Float64},
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_store_state_matches_the_log_and_takes_feedback(model_dir, backend, request, tmp_path) -> None:
    location = request.getfixturevalue("redis_url") if backend == "redis" else str(tmp_path / "f.db")
    rec = Recommender.load(model_dir, store=location)
    users = rec.users["user_id"].to_list()
    expected = build_user_state(rec.events, rec.videos, history_len=rec.pipeline.config.history_len)
    got = rec.user_state(users).sort("user_id")
    assert got.select("user_id", "seen", "disliked").equals(
        expected.sort("user_id").select("user_id", "seen", "disliked")
    )
    top = rec.recommend("u3", k=5)["video_id"][0]
    rec.observe(dislike(rec, "u3", top))
    assert top in rec.user_state(["u3"])["disliked"][0].to_list()
    assert top not in rec.recommend("u3", k=5)["video_id"].to_list()
    if backend == "redis":  # a second replica on the same store sees the dislike at once
        replica = Recommender.load(model_dir, store=location)
        assert top not in replica.recommend("u3", k=5)["video_id"].to_list()


def _video_features(rec: Recommender, user: str, now, monkeypatch) -> pl.DataFrame:
    """The point-in-time feature rows the ranker scores for ``user`` x every video at ``now``."""
    import vidrec.scoring.ranker as ranker_module

    seen: list[pl.DataFrame] = []
    real = ranker_module.point_in_time_features

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(ranker_module, "point_in_time_features", spy)
    cands = rec.videos.select("video_id", user_id=pl.lit(user))
    rec.pipeline.ranker.score(cands, rec.user_state([user]), rec.videos, now)
    monkeypatch.undo()
    return seen[0].sort("video_id")


def _offline(rec: Recommender, user: str, now) -> pl.DataFrame:
    """The training-time computation on the whole log so far, as of ``now``."""
    rows = rec.videos.select("video_id", user_id=pl.lit(user), ts=pl.lit(now).cast(TIMESTAMP))
    tables = EventTables.build(rec.events, rec.videos, rec.pipeline.ranker.config.features)
    return point_in_time_features(rows, tables, rec.videos).sort("video_id")


VIDEO_COLUMNS = [*VIDEO_STAT_FEATURES.values(), "video_age_days"]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_observed_events_reach_the_rankers_video_features_without_refresh(
    model_dir, backend, request, tmp_path, monkeypatch
) -> None:
    location = request.getfixturevalue("redis_url") if backend == "redis" else str(tmp_path / "f.db")
    rec = Recommender.load(model_dir, store=location)
    rec.attach_store(location, rebuild=True)  # a Redis store is shared by this module's tests: start clean
    request.addfinalizer(lambda: Recommender.load(model_dir, store=location).attach_store(location, rebuild=True))
    assert rec.pipeline.ranker.video_stats_source is rec.store
    before_now = rec.now
    before = _video_features(rec, "u3", before_now, monkeypatch)
    stored_tables = point_in_time_features(
        rec.videos.select("video_id", user_id=pl.lit("u3"), ts=pl.lit(before_now).cast(TIMESTAMP)),
        rec.pipeline.ranker.tables, rec.videos,
    ).sort("video_id")  # fmt: skip
    assert_frame_equal(before.select(VIDEO_COLUMNS), stored_tables.select(VIDEO_COLUMNS), rel_tol=1e-12)

    t = before_now + timedelta(seconds=1)
    new = pl.DataFrame(
        {"user_id": ["u0", "u2", "u4", "u6", "u8"], "video_id": ["v5"] * 5,
         "ts": [t, t, t + timedelta(seconds=1), t, t],
         "event": ["watch", "watch", "watch", "like", "dislike"], "watch_seconds": [95.0, 90.0, 10.0, None, None]},
        schema_overrides={"ts": TIMESTAMP, "watch_seconds": pl.Float64},
    )  # fmt: skip
    rec.observe(new)
    after = _video_features(rec, "u3", rec.now, monkeypatch)
    v5 = pl.col("video_id") == "v5"
    delta = {c: after.filter(v5)[f"v_{c}"][0] - before.filter(v5)[f"v_{c}"][0] for c in COUNTS}
    assert delta == {"impressions": 0, "views": 3, "completions": 2, "likes": 1, "dislikes": 1}
    assert after.filter(v5)["v_dislike_rate"][0] > before.filter(v5)["v_dislike_rate"][0]
    expected = _offline(rec, "u3", rec.now)
    columns = ["video_id", *VIDEO_COLUMNS]
    assert_frame_equal(after.select(columns), expected.select(columns), rel_tol=1e-12)


def test_without_a_store_refresh_brings_the_same_video_features(model_dir, monkeypatch) -> None:
    rec = Recommender.load(model_dir)
    ranker = rec.pipeline.ranker
    ranker.use_video_stats(None)
    t = rec.now + timedelta(seconds=1)
    rec.observe(
        pl.DataFrame(
            {"user_id": ["u0"], "video_id": ["v5"], "ts": [t], "event": ["watch"], "watch_seconds": [95.0]},
            schema_overrides={"ts": TIMESTAMP},
        )
    )
    stale = _video_features(rec, "u3", rec.now, monkeypatch)
    ranker.refresh(rec.events, rec.videos)
    fresh = _video_features(rec, "u3", rec.now, monkeypatch)
    v5 = pl.col("video_id") == "v5"
    assert fresh.filter(v5)["v_views"][0] == stale.filter(v5)["v_views"][0] + 1
    expected = _offline(rec, "u3", rec.now)
    assert_frame_equal(fresh.select(VIDEO_COLUMNS), expected.select(VIDEO_COLUMNS), rel_tol=1e-12)
