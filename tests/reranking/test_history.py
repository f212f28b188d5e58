"""Creator fatigue by the evidence of dislikes and completions, and the re-watch policy, exact on tiny data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.reranking.rerank_frames import NOW, old, scored_frame, users_frame, videos_frame
from vidrec.catalogue import Catalogue
from vidrec.data.schema import epoch_us
from vidrec.features.store.base import UserRecord
from vidrec.request import hydrate
from vidrec.reranking import DefaultReRanker, ReRankConfig
from vidrec.reranking.fatigue import fatigue_factor
from vidrec.reranking.select import RequestReRanker

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


CFG = ReRankConfig(**PLAIN)


@pytest.mark.parametrize(
    ("days", "dislikes", "completions", "factor"),
    [
        # five dislikes, no completion: Beta(5.5, 2) is sure (P(share > 0.5) = 0.92) -> hidden, then recovers
        (0.0, 5, 0, 0.0), (13.99, 5, 0, 0.0), (14.0, 5, 0, 2 / 7.5), (84.0, 5, 0, 2 / 7.5 + (5.5 / 7.5) / 2),
        (154.0, 5, 0, 1.0), (400.0, 5, 0, 1.0),
        # one dislike, no completion: a soft factor, 1 - E[share] = 2 / 3.5, held 14 days
        (0.0, 1, 0, 2 / 3.5), (14.0, 1, 0, 2 / 3.5), (84.0, 1, 0, 2 / 3.5 + (1.5 / 3.5) / 2),
        # one dislike against forty completions: barely a dent
        (0.0, 1, 40, 42 / 43.5),
        # twenty dislikes: hidden, and then 1 - E[share] = 2 / 22.5 is below the floor
        (14.0, 20, 0, 0.2), (13.0, 20, 0, 0.0),
    ],
)
def test_fatigue_follows_the_evidence_and_the_schedule(days: float, dislikes: int, completions: int,
                                                       factor: float) -> None:
    got = fatigue_factor(np.array([days]), np.array([dislikes]), np.array([completions]), CFG)
    assert float(got[0]) == pytest.approx(factor)


def test_the_hide_rule_needs_strong_evidence_and_can_be_the_old_rule() -> None:
    days, d, c = np.zeros(4), np.array([1, 3, 4, 5]), np.zeros(4)
    assert (fatigue_factor(days, d, c, CFG) == 0).tolist() == [False, False, False, True]
    old_rule = ReRankConfig(**PLAIN, fatigue_hide_confidence=0.0)  # any dislike hides, as X's home mixer
    assert (fatigue_factor(days, d, c, old_rule) == 0).all()
    off = ReRankConfig(**PLAIN, fatigue_filter_days=0.0, fatigue_recover_days=0.0)
    assert (fatigue_factor(days, d, c, off) == 1).all()


def _world(n: int = 3):
    videos = videos_frame(old(n, "a", "a") + old(3, "b", "b"))
    ids = [f"a{i}" for i in range(n)] + ["b0", "b1", "b2"]
    scores = [10 - i for i in range(n)] + [7, 6, 5]
    return videos, scored_frame([("u", v, s) for v, s in zip(ids, scores)])


def test_many_dislikes_and_no_completions_hide_a_creator_then_scale_it() -> None:
    videos, scored = _world(8)
    disliked = ["a0", "a3", "a4", "a5", "a6"]
    users = users_frame({"u": (disliked, disliked)})
    for days_ago, kept_a in ((3.0, []), (84.0, ["a1", "a2", "a7"])):
        events = events_frame([("u", v, days_ago, "dislike", None) for v in disliked])
        out = DefaultReRanker(CFG).rerank(scored, users, videos, NOW, k=9, debug=True, events=events)
        slate = out.filter(pl.col("rank").is_not_null())
        assert [v for v in slate["video_id"] if v.startswith("a")] == kept_a
        reasons = dict(out.filter(pl.col("rank").is_null()).select("video_id", "removed_reason").iter_rows())
        assert all(reasons[v] == "disliked" for v in disliked)  # the disliked videos themselves: never
        if not kept_a:
            assert reasons["a1"] == reasons["a2"] == reasons["a7"] == "creator_fatigue"
        else:
            factor = 2 / 7.5 + (5.5 / 7.5) * (84 - 14) / 140
            a1 = slate.filter(pl.col("video_id") == "a1").row(0, named=True)
            assert a1["final_score"] == pytest.approx(9 * factor)
            assert a1["adjustments"] == [f"creator_fatigue:x{factor:.2f}"]


def test_one_dislike_against_many_completions_barely_moves_the_creator() -> None:
    videos, scored = _world(3)
    completed = [f"x{i}" for i in range(40)]  # forty other videos of creator a, completed
    videos = pl.concat([videos, videos_frame([(v, "a", 10_000.0, True) for v in completed])])
    seen = ["a0", *completed]
    users = users_frame({"u": (seen, ["a0"])})
    events = events_frame([("u", v, 30.0, "watch", 60.0) for v in completed] + [("u", "a0", 2.0, "dislike", None)])
    out = DefaultReRanker(CFG).rerank(scored, users, videos, NOW, k=5, debug=True, events=events)
    slate = out.filter(pl.col("rank").is_not_null())
    assert slate["video_id"].to_list() == ["a1", "a2", "b0", "b1", "b2"]  # the order without the dislike
    a1 = slate.filter(pl.col("video_id") == "a1").row(0, named=True)
    assert a1["final_score"] == pytest.approx(9 * 42 / 43.5) and a1["adjustments"] == ["creator_fatigue:x0.97"]
    assert out.filter(pl.col("video_id") == "a0")["removed_reason"].to_list() == ["disliked"]
    # without the completions the same dislike is a real dent, but no hiding
    bare = DefaultReRanker(CFG).rerank(scored, users_frame({"u": (["a0"], ["a0"])}), videos, NOW, k=5,
                                       events=events.filter(pl.col("event") == "dislike"))  # fmt: skip
    assert bare["video_id"].to_list() == ["b0", "b1", "a1", "b2", "a2"]  # 9 * 2 / 3.5 = 5.14


@pytest.mark.parametrize(("dislikes", "completed", "kept"), [(1, 40, ["a1", "a2"]), (6, 0, [])])
def test_the_request_path_reads_the_stores_dislike_counts_and_the_users_completions(
        dislikes: int, completed: int, kept: list) -> None:  # fmt: skip
    videos, _ = _world(3)
    others = [f"x{i}" for i in range(40)]
    catalogue = Catalogue(pl.concat([videos, videos_frame([(v, "a", 10_000.0, True) for v in others])]))
    now_us = epoch_us(NOW)
    day = 86_400 * 10**6
    record = UserRecord("u", lists={"seen": [("a0", now_us - day)], "disliked": [("a0", now_us - day)],
                                    "completed": [(v, now_us - 30 * day) for v in others[:completed]]},
                        pairs={"creator": [("a", completed + 1, dislikes, 0, now_us - day)]})  # fmt: skip
    request = hydrate(record, catalogue, now_us, k=5, history_len=50)
    rows = catalogue.rows(["a0", "a1", "a2", "b0", "b1", "b2"])
    slate = RequestReRanker(CFG, catalogue).rerank(request, rows, np.array([10.0, 9, 8, 7, 6, 5]), k=5)
    ids = catalogue.ids_of(rows[slate.order])
    assert [v for v in ids if v.startswith("a")] == kept and "a0" not in ids


def test_dislike_times_can_come_from_a_users_column() -> None:
    videos, scored = _world()
    users = users_frame({"u": (["a0"], ["a0"])}).with_columns(
        disliked_at=pl.lit([NOW - timedelta(days=1)], dtype=pl.List(pl.Datetime("us", "UTC")))
    )
    hide_any = ReRankConfig(**PLAIN, fatigue_hide_confidence=0.0)
    out = DefaultReRanker(hide_any).rerank(scored, users, videos, NOW, k=6)
    assert out["video_id"].to_list() == ["b0", "b1", "b2"]
    soft = DefaultReRanker(ReRankConfig(**PLAIN)).rerank(scored, users, videos, NOW, k=6)
    assert soft["video_id"].to_list() == ["b0", "b1", "a1", "b2", "a2"]  # one dislike: x0.57
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
