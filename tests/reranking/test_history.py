"""Creator fatigue after dislikes and the re-watch policy, exact on tiny data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.reranking.rerank_frames import NOW, old, scored_frame, users_frame, videos_frame
from vidrec.reranking import DefaultReRanker, ReRankConfig
from vidrec.reranking.history import fatigue_factor

PLAIN = dict(fresh_boost=0.0, creator_cap=None, diversity="none", min_fresh=0)


def events_frame(rows: list[tuple[str, str, float, str, float | None]]) -> pl.DataFrame:
    """(user_id, video_id, days_ago, event, watch_seconds) -> canonical events."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "video_id": [r[1] for r in rows],
            "ts": [NOW - timedelta(days=r[2]) for r in rows],
            "event": [r[3] for r in rows],
            "watch_seconds": [r[4] for r in rows],
        },
        schema={"user_id": pl.String, "video_id": pl.String, "ts": pl.Datetime("us", "UTC"),
                "event": pl.String, "watch_seconds": pl.Float64},
    )


@pytest.mark.parametrize(
    ("days", "factor"),
    [(0.0, 0.0), (13.99, 0.0), (14.0, 0.2), (84.0, 0.6), (154.0, 1.0), (400.0, 1.0)],
)
def test_fatigue_schedule_is_filtered_then_linear_from_the_floor(days: float, factor: float) -> None:
    got = float(fatigue_factor(np.array([days]), 14.0, 140.0, 0.2)[0])
    assert got == pytest.approx(factor)


def _world():
    videos = videos_frame(old(3, "a", "a") + old(3, "b", "b"))
    scored = scored_frame([("u", v, s) for v, s in zip(["a0", "a1", "a2", "b0", "b1", "b2"], [10, 9, 8, 7, 6, 5])])
    return videos, scored


@pytest.mark.parametrize(("days_ago", "kept_a", "code"), [(3.0, [], None), (84.0, ["a1", "a2"], "creator_fatigue:x0.60")])
def test_a_disliked_creator_is_filtered_then_scaled(days_ago: float, kept_a: list, code: str | None) -> None:
    videos, scored = _world()
    users = users_frame({"u": (["a0"], ["a0"])})
    events = events_frame([("u", "a0", days_ago, "dislike", None)])
    out = DefaultReRanker(ReRankConfig(**PLAIN)).rerank(scored, users, videos, NOW, k=6, debug=True, events=events)
    slate = out.filter(pl.col("rank").is_not_null())
    assert [v for v in slate["video_id"] if v.startswith("a")] == kept_a
    reasons = dict(out.filter(pl.col("rank").is_null()).select("video_id", "removed_reason").iter_rows())
    assert reasons["a0"] == "disliked"
    if code is None:
        assert reasons["a1"] == reasons["a2"] == "creator_fatigue"
    else:
        a1 = slate.filter(pl.col("video_id") == "a1").row(0, named=True)
        assert a1["final_score"] == pytest.approx(9 * 0.6)
        assert a1["adjustments"] == [code]
        assert slate["video_id"].to_list() == ["b0", "b1", "a1", "b2", "a2"]  # 5.4 < 7, 6; 4.8 < 5


def test_dislike_times_can_come_from_a_users_column() -> None:
    videos, scored = _world()
    users = users_frame({"u": (["a0"], ["a0"])}).with_columns(
        disliked_at=pl.lit([NOW - timedelta(days=1)], dtype=pl.List(pl.Datetime("us", "UTC")))
    )
    out = DefaultReRanker(ReRankConfig(**PLAIN)).rerank(scored, users, videos, NOW, k=6)
    assert out["video_id"].to_list() == ["b0", "b1", "b2"]
    # without any dislike time the disliked video alone is filtered
    plain = DefaultReRanker(ReRankConfig(**PLAIN)).rerank(scored, users.drop("disliked_at"), videos, NOW, k=6)
    assert plain["video_id"].to_list() == ["a1", "a2", "b0", "b1", "b2"]


def test_future_dislikes_are_ignored() -> None:
    videos, scored = _world()
    users = users_frame({"u": ([], [])})
    events = events_frame([("u", "a0", -1.0, "dislike", None)])
    out = DefaultReRanker(ReRankConfig(**PLAIN)).rerank(scored, users, videos, NOW, k=6, events=events)
    assert out.height == 6


def test_rewatch_policy_lets_only_old_completed_videos_of_covered_categories_back() -> None:
    videos, scored = _world()
    videos = videos.with_columns(category=pl.when(pl.col("creator_id") == "a").then(pl.lit("music")).otherwise(pl.lit("news")))
    users = users_frame({"u": (["a0", "a1", "a2", "b0"], [])})
    events = events_frame([
        ("u", "a0", 40.0, "watch", 60.0),  # completed long ago: back
        ("u", "a1", 40.0, "watch", 10.0),  # not completed: stays hidden
        ("u", "a2", 5.0, "watch", 60.0),  # completed too recently
        ("u", "b0", 40.0, "watch", 60.0),  # completed long ago, category not covered
    ])
    cfg = ReRankConfig(**PLAIN, rewatch_after_days=30.0, rewatch_categories=("music",))
    out = DefaultReRanker(cfg).rerank(scored, users, videos, NOW, k=6, events=events)
    assert out["video_id"].to_list() == ["a0", "b1", "b2"]
    assert out["adjustments"][0].to_list() == ["rewatch"]
    default = DefaultReRanker(ReRankConfig(**PLAIN)).rerank(scored, users, videos, NOW, k=6, events=events)
    assert default["video_id"].to_list() == ["b1", "b2"]


def test_events_without_the_needed_columns_are_refused() -> None:
    videos, scored = _world()
    with pytest.raises(ValueError, match="'event'"):
        DefaultReRanker().rerank(scored, users_frame({}), videos, NOW, k=3, events=pl.DataFrame({"user_id": ["u"]}).with_columns(video_id=pl.lit("a0"), ts=pl.lit(NOW)))
