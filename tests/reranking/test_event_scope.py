"""The re-ranker reads only the requested users' past events, and global statistics once per log."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reranking.rerank_frames import NOW, old, scored_frame, users_frame, videos_frame
from tests.reranking.test_history import events_frame
from tests.reranking.test_slate_properties import worlds
from vidrec.reranking import DefaultReRanker, ReRankConfig
from vidrec.reranking.history import user_events

PLAIN = dict(fresh_boost=0.0, creator_cap=None, diversity="none", min_fresh=0)


def test_user_events_keeps_the_requested_users_past_dislikes_and_watches_only() -> None:
    events = events_frame([
        ("u", "a0", 1.0, "dislike", None),
        ("u", "a1", 2.0, "watch", 30.0),
        ("u", "a2", 3.0, "impression", None),
        ("u", "a3", -1.0, "watch", 30.0),  # after now
        ("x", "a0", 1.0, "dislike", None),  # another user
    ]).with_columns(pl.lit("web").alias("device"))
    got = user_events(events, pl.Series(["u", "u", "v"]), NOW)
    assert got.columns == ["user_id", "video_id", "ts", "event", "watch_seconds"]
    assert got.select("video_id", "event").rows() == [("a0", "dislike"), ("a1", "watch")]


@settings(max_examples=40, deadline=None)
@given(world=worlds(), noise=st.lists(st.tuples(st.sampled_from(["x", "y"]), st.integers(0, 15),
                                                st.floats(-5, 60), st.sampled_from(["watch", "dislike"])),
                                      max_size=12))
def test_other_users_and_future_events_change_nothing(world, noise) -> None:
    videos, users, scored, events, vectors, cfg, k = world
    cfg = ReRankConfig(**{**cfg.to_dict(), "fair_min_share": 0.0})  # fairness reads the whole log by design
    extra = events_frame([(u, f"v{v}", d, e, 30.0 if e == "watch" else None) for u, v, d, e in noise])
    future = events.with_columns(pl.col("ts") + (NOW - pl.col("ts")) * 2)  # mirrored after now
    rr = DefaultReRanker(cfg)
    base = rr.rerank(scored, users, videos, NOW, k, debug=True, events=events, video_vectors=vectors)
    noisy = pl.concat([extra, events, future])
    assert base.equals(rr.rerank(scored, users, videos, NOW, k, debug=True, events=noisy, video_vectors=vectors))


def test_small_creators_follow_the_log_they_are_computed_from() -> None:
    videos = videos_frame(old(3, "a", "a") + old(3, "b", "b"))
    scored = scored_frame([("u", v, s) for v, s in zip(["a0", "a1", "a2", "b0", "b1", "b2"], [9, 8, 7, 3, 2, 1])])
    users = users_frame({"u": ([], [])})
    watched_a = events_frame([("w", "a0", 5.0, "watch", 60.0)] * 3)
    watched_b = events_frame([("w", "b0", 5.0, "watch", 60.0)] * 3)
    rr = DefaultReRanker(ReRankConfig(**PLAIN, fair_min_share=0.5, small_creator_quantile=0.5, new_creator_days=0.0))

    def slate(events: pl.DataFrame) -> list[str]:
        return rr.rerank(scored, users, videos, NOW, k=2, events=events)["video_id"].to_list()

    assert slate(watched_a) == ["a0", "b0"]  # b is the small creator and is owed one slot of two
    assert slate(watched_b) == ["a0", "a1"]  # now a is small: the score order already pays the debt
    assert slate(watched_a) == ["a0", "b0"]
