"""A trained model serving user state from the online store, SQLite or a shared Redis."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from vidrec.features.user_state import build_user_state
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
