"""Properties of the full re-ranker with every knob: hard rules hold, minimums are met, all explained.

Random catalogues (creators, categories, ages), users with dislikes at random times,
watch histories, embeddings or none, and random configs of diversity, calibration,
fresh and fair minimums, fatigue and re-watch.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reranking.rerank_frames import NOW, scored_frame, users_frame, videos_frame
from tests.reranking.test_history import events_frame
from vidrec.reranking import REMOVED_REASONS, DefaultReRanker, ReRankConfig
from vidrec.reranking.fatigue import fatigue_factor

N_VIDEOS = 16


@st.composite
def worlds(draw):
    raw = [
        (f"v{i}", draw(st.sampled_from("abcd")), draw(st.floats(-1, 40)), draw(st.sampled_from([True] * 5 + [False])))
        for i in range(N_VIDEOS)
    ]
    videos = videos_frame(raw).with_columns(
        category=pl.Series([draw(st.sampled_from(["x", "y", "z"])) for _ in raw])
    )
    ids = [v[0] for v in raw] + ["ghost"]
    state, events, rows = {}, [], []
    for u in range(draw(st.integers(1, 3))):
        uid = f"u{u}"
        watched = draw(st.lists(st.sampled_from(ids[:-1]), max_size=5, unique=True))
        disliked = draw(st.lists(st.sampled_from(ids[:-1]), max_size=6, unique=True))
        for v in watched:
            events.append((uid, v, draw(st.floats(0.5, 60)), "watch", draw(st.sampled_from([10.0, 60.0]))))
        for v in disliked:
            events.append((uid, v, draw(st.floats(0.5, 200)), "dislike", None))
        state[uid] = (sorted(set(watched) | set(disliked)), disliked)
        cands = draw(st.lists(st.sampled_from(ids), min_size=3, max_size=len(ids), unique=True))
        rows += [(uid, v, draw(st.integers(-3, 8)) / 2) for v in cands]
    users = users_frame(state).with_columns(recent_completed=pl.col("seen"))
    cap = draw(st.sampled_from([None, 1, 2]))
    cfg = ReRankConfig(
        fresh_boost=draw(st.sampled_from([0.0, 0.5])),
        creator_cap=cap,
        creator_window=draw(st.integers(cap or 1, 4)),
        creator_backfill=True,
        diversity=draw(st.sampled_from(["none", "mmr", "dpp"])),
        diversity_weight=draw(st.sampled_from([0.0, 0.3, 0.8])),
        calibration_weight=draw(st.sampled_from([0.0, 0.5])),
        min_fresh=draw(st.integers(0, 3)),
        fair_min_share=draw(st.sampled_from([0.0, 0.3])),
        fatigue_filter_days=draw(st.sampled_from([0.0, 14.0])),
        fatigue_recover_days=draw(st.sampled_from([0.0, 140.0])),
        fatigue_hide_confidence=draw(st.sampled_from([0.0, 0.5, 0.9])),
        rewatch_after_days=draw(st.sampled_from([None, None, 10.0])),
        greedy_pool=draw(st.sampled_from([3, 100])),
    )
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    table = rng.normal(size=(len(ids), 4))
    lookup = {v: i for i, v in enumerate(ids)}
    vectors = draw(st.sampled_from([None, lambda s: table[[lookup[v] for v in s.to_list()]]]))
    return videos, users, scored_frame(rows), events_frame(events), vectors, cfg, draw(st.integers(1, 8))


def _fatigued(events: pl.DataFrame, videos: pl.DataFrame, cfg: ReRankConfig) -> set:
    """(user, creator) pairs the fatigue rule hides: their dislikes against completions, the latest dislike's age."""
    creators = videos.select("video_id", "creator_id", "duration_seconds")
    mine = events.join(creators, on="video_id")
    done = (
        mine.filter((pl.col("event") == "watch") & (pl.col("watch_seconds") / pl.col("duration_seconds") >= 0.8))
        .group_by("user_id", "creator_id")
        .agg(completions=pl.col("video_id").n_unique())
    )
    latest = (
        mine.filter(pl.col("event") == "dislike")
        .group_by("user_id", "creator_id")
        .agg(pl.col("ts").max(), dislikes=pl.len())
        .join(done, on=["user_id", "creator_id"], how="left")
        .with_columns(pl.col("completions").fill_null(0),
                      days=(pl.lit(NOW) - pl.col("ts")).dt.total_microseconds() / 86_400e6)  # fmt: skip
    )
    factor = fatigue_factor(latest["days"].to_numpy(), latest["dislikes"].to_numpy(),
                            latest["completions"].to_numpy(), cfg)  # fmt: skip
    latest = latest.filter(pl.Series(factor <= 0))
    return set(latest.select("user_id", "creator_id").iter_rows())


@settings(max_examples=80, deadline=None)
@given(world=worlds())
def test_hard_rules_hold_for_every_knob(world) -> None:
    videos, users, scored, events, vectors, cfg, k = world
    rr = DefaultReRanker(cfg)
    full = rr.rerank(scored, users, videos, NOW, k, debug=True, events=events, video_vectors=vectors)
    out = full.filter(pl.col("rank").is_not_null())
    assert out.drop("removed_reason").equals(rr.rerank(scored, users, videos, NOW, k, events=events, video_vectors=vectors))
    creators = dict(videos.select("video_id", "creator_id").iter_rows())
    available = set(videos.filter(pl.col("available"))["video_id"])
    disliked = {(u, v) for u, vs in users.select("user_id", "disliked").iter_rows() for v in vs}
    seen = {(u, v) for u, vs in users.select("user_id", "seen").iter_rows() for v in vs}
    fatigued = _fatigued(events, videos, cfg)
    for u, v, codes in out.select("user_id", "video_id", "adjustments").iter_rows():
        assert (u, v) not in disliked and v in available
        assert (u, creators[v]) not in fatigued
        if cfg.rewatch_after_days is None:
            assert (u, v) not in seen
        assert ((u, v) in seen) == ("rewatch" in codes)
    # ranks 1..n per user, n <= k, every candidate accounted for once with a known reason
    for ranks in out.group_by("user_id").agg(pl.col("rank").sort())["rank"].to_list():
        assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) <= k
    assert sorted(full.select("user_id", "video_id").iter_rows()) == sorted(scored.select("user_id", "video_id").iter_rows())
    assert set(full["removed_reason"].drop_nulls()) <= set(REMOVED_REASONS)


@settings(max_examples=60, deadline=None)
@given(world=worlds())
def test_slates_are_full_minimums_met_and_cap_kept_unless_relaxed(world) -> None:
    videos, users, scored, events, vectors, cfg, k = world
    full = DefaultReRanker(cfg).rerank(scored, users, videos, NOW, k, debug=True, events=events, video_vectors=vectors)
    full = full.join(videos.select("video_id", "creator_id", "uploaded_at"), on="video_id", how="left")
    fresh = pl.col("uploaded_at") > NOW - timedelta(days=cfg.fresh_days)
    for _, part in full.group_by("user_id"):
        slate = part.filter(pl.col("rank").is_not_null())
        eligible = part.filter(pl.col("rank").is_not_null() | pl.col("removed_reason").is_in(
            ["creator_cap", "slate_objective", "below_cutoff"]))
        assert slate.height == min(k, eligible.height)
        if cfg.uses_slate_greedy and cfg.creator_cap is None and cfg.fair_min_share == 0:
            # the fresh minimum is met whenever the pool holds enough fresh videos
            pool = eligible.sort(["final_score", "video_id"], descending=[True, False]).head(max(cfg.greedy_pool, k))
            want = min(cfg.min_fresh, pool.filter(fresh).height, slate.height)
            assert slate.filter(fresh).height >= want
        if cfg.creator_cap is not None:
            strict = slate.filter(~pl.col("adjustments").list.contains("creator_cap:relaxed"))
            per = strict.group_by(((pl.col("rank") - 1) // cfg.creator_window).alias("w"), "creator_id").len()
            assert per["len"].max() is None or per["len"].max() <= cfg.creator_cap
