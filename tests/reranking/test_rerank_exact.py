"""Exact answers on tiny slates: freshness, creator cap, hard filters, k, explanations."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from tests.reranking.rerank_frames import NOW, old, scored_frame, users_frame, videos_frame
from vidrec.reranking import DefaultReRanker, ReRankConfig

NO_CAP = ReRankConfig(creator_cap=None, diversity="none", min_fresh=0)
NO_FRESH = ReRankConfig(fresh_boost=0.0, creator_cap=2, diversity="none", min_fresh=0)
NOBODY = users_frame({})


def slate_of(out: pl.DataFrame, user: str = "u") -> list[str]:
    return out.filter(pl.col("user_id") == user).sort("rank")["video_id"].to_list()


@pytest.mark.parametrize(
    ("age_days", "multiplier", "code"),
    [(0.0, 1.2, "fresh_boost:x1.20"), (7.0, 1.1, "fresh_boost:x1.10"), (14.0, 1.05, "fresh_boost:x1.05"),
     (-3.0, 1.2, "fresh_boost:x1.20")],
)
def test_freshness_boost_follows_the_half_life(age_days: float, multiplier: float, code: str) -> None:
    videos = videos_frame([("v", "c", age_days, True)])
    out = DefaultReRanker(NO_CAP).rerank(scored_frame([("u", "v", 2.0)]), NOBODY, videos, NOW, k=5)
    assert out["final_score"].item() == pytest.approx(2.0 * multiplier)
    assert out["adjustments"].item().to_list() == [code]


def test_old_videos_keep_their_score_and_carry_no_code() -> None:
    videos = videos_frame(old(1))
    out = DefaultReRanker(NO_CAP).rerank(scored_frame([("u", "v0", 0.7)]), NOBODY, videos, NOW, k=5)
    assert out["final_score"].item() == pytest.approx(0.7)
    assert out["adjustments"].item().to_list() == []


def test_freshness_helps_negative_scores_too() -> None:
    videos = videos_frame([("v", "c", 0.0, True)])
    out = DefaultReRanker(NO_CAP).rerank(scored_frame([("u", "v", -1.0)]), NOBODY, videos, NOW, k=5)
    assert out["final_score"].item() == pytest.approx(-0.8)


def test_freshness_reorders_and_custom_half_life_applies() -> None:
    videos = videos_frame([("fresh", "a", 2.0, True), ("stale", "b", 10_000.0, True)])
    scored = scored_frame([("u", "fresh", 1.0), ("u", "stale", 1.1)])
    assert slate_of(DefaultReRanker(NO_CAP).rerank(scored, NOBODY, videos, NOW, k=2)) == ["fresh", "stale"]
    cfg = ReRankConfig(creator_cap=None, fresh_half_life_days=2.0, fresh_boost=0.5, diversity="none", min_fresh=0)
    out = DefaultReRanker(cfg).rerank(scored, NOBODY, videos, NOW, k=2)
    assert out.filter(pl.col("video_id") == "fresh")["final_score"].item() == pytest.approx(1.25)


def test_creator_cap_keeps_two_per_ten_and_fills_from_the_next_best() -> None:
    # creator a owns the 5 best videos; b and c follow
    videos = videos_frame(old(5, "a", "a") + old(5, "b", "b") + old(5, "c", "c"))
    scores = {f"a{i}": 100 - i for i in range(5)} | {f"b{i}": 50 - i for i in range(5)}
    scores |= {f"c{i}": 40 - i for i in range(5)}
    scored = scored_frame([("u", v, s) for v, s in scores.items()])
    out = DefaultReRanker(NO_FRESH).rerank(scored, NOBODY, videos, NOW, k=6, debug=True)
    slate = out.filter(pl.col("rank").is_not_null())
    assert slate_of(slate) == ["a0", "a1", "b0", "b1", "c0", "c1"]
    assert slate["rank"].to_list() == [1, 2, 3, 4, 5, 6]
    reasons = dict(out.filter(pl.col("rank").is_null()).select("video_id", "removed_reason").iter_rows())
    # a2..a4 would have been in the top 6 without the cap; b2 was merely below the cut
    assert reasons["a2"] == reasons["a3"] == reasons["a4"] == "creator_cap"
    assert reasons["b2"] == "below_cutoff"


def test_capped_videos_come_back_in_the_next_window_marked_deferred() -> None:
    videos = videos_frame(old(4, "a", "a") + old(12, "b", "b") + old(12, "c", "c") + old(12, "d", "d"))
    scores = {f"a{i}": 100 - i for i in range(4)}
    for j, cr in enumerate("bcd"):
        scores |= {f"{cr}{i}": 50 - 3 * i - j for i in range(12)}
    scored = scored_frame([("u", v, s) for v, s in scores.items()])
    cfg = ReRankConfig(fresh_boost=0.0, creator_cap=1, creator_window=3, diversity="none", min_fresh=0)
    out = DefaultReRanker(cfg).rerank(scored, NOBODY, videos, NOW, k=7)
    assert slate_of(out) == ["a0", "b0", "c0", "a1", "d0", "b1", "a2"]
    codes = dict(out.select("video_id", pl.col("adjustments").list.join(",")).iter_rows())
    assert codes["a1"] == codes["a2"] == "creator_cap:deferred"
    assert codes["d0"] == ""  # d0 moved up, never down: it needs no explanation of its own
    assert codes["b0"] == codes["c0"] == codes["b1"] == ""


def test_a_slate_the_cap_cannot_fill_is_backfilled_or_left_short() -> None:
    videos = videos_frame(old(4, "a", "a") + old(1, "b", "b"))
    scored = scored_frame([("u", f"a{i}", 10 - i) for i in range(4)] + [("u", "b0", 1.0)])
    out = DefaultReRanker(NO_FRESH).rerank(scored, NOBODY, videos, NOW, k=5)
    assert slate_of(out) == ["a0", "a1", "b0", "a2", "a3"]
    assert out["adjustments"].to_list()[3:] == [["creator_cap:relaxed"]] * 2
    strict = ReRankConfig(fresh_boost=0.0, creator_cap=2, creator_backfill=False, diversity="none", min_fresh=0)
    assert slate_of(DefaultReRanker(strict).rerank(scored, NOBODY, videos, NOW, k=5)) == ["a0", "a1", "b0"]


def test_hard_filters_name_their_reason_in_debug_mode() -> None:
    videos = videos_frame(old(5))
    videos = videos.with_columns(available=pl.col("video_id") != "v3")
    users = users_frame({"u": (["v0", "v1"], ["v1"])})
    scored = scored_frame([("u", f"v{i}", float(i)) for i in range(5)] + [("u", "ghost", 9.0)])
    rr = DefaultReRanker(NO_FRESH)
    assert slate_of(rr.rerank(scored, users, videos, NOW, k=10)) == ["v4", "v2"]
    out = rr.rerank(scored, users, videos, NOW, k=10, debug=True)
    removed = dict(out.filter(pl.col("rank").is_null()).select("video_id", "removed_reason").iter_rows())
    assert removed == {"v0": "seen", "v1": "disliked", "v3": "unavailable", "ghost": "unavailable"}


def test_k_is_respected_for_every_user_and_columns_follow_the_contract() -> None:
    videos = videos_frame(old(30, "c") + [(f"x{i}", f"x{i}", 10_000.0, True) for i in range(30)])
    rows = [(u, f"{p}{i}", float(i)) for u in ("u1", "u2") for p in "vx" for i in range(30)]
    out = DefaultReRanker().rerank(scored_frame(rows), NOBODY, videos, NOW, k=7)
    assert out.columns == [
        "user_id", "rank", "video_id", "final_score", "sources", "retrieval_score", "p_complete",
        "score", "adjustments",
    ]
    assert out.group_by("user_id").len().sort("user_id")["len"].to_list() == [7, 7]
    assert out.filter(pl.col("user_id") == "u2")["rank"].to_list() == list(range(1, 8))
    assert out.schema["adjustments"] == pl.List(pl.String)


def test_existing_adjustments_are_extended_not_replaced() -> None:
    videos = videos_frame([("v", "c", 0.0, True)])
    scored = scored_frame([("u", "v", 1.0)]).with_columns(adjustments=pl.lit(["scored:x2"]))
    out = DefaultReRanker().rerank(scored, NOBODY, videos, NOW, k=1)
    assert out["adjustments"].item().to_list() == ["scored:x2", "fresh_boost:x1.20"]


def test_empty_candidates_give_an_empty_slate_with_the_contract_columns() -> None:
    out = DefaultReRanker().rerank(scored_frame([]), NOBODY, videos_frame(old(2)), NOW, k=3, debug=True)
    assert out.height == 0
    assert out.columns[:4] == ["user_id", "rank", "video_id", "final_score"]
    assert out.columns[-2:] == ["adjustments", "removed_reason"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s, kw: kw.update(k=0), "k must be a positive integer"),
        (lambda s, kw: kw.update(now=NOW.replace(tzinfo=None)), "timezone-aware"),
        (lambda s, kw: kw.update(scored=s.drop("score")), "no column 'score'"),
        (lambda s, kw: kw.update(scored=pl.concat([s, s])), "more than once"),
        (lambda s, kw: kw.update(scored=s.with_columns(score=float("nan"))), "NaN score"),
        (lambda s, kw: kw.update(scored=s.with_columns(rank=1)), "'rank'"),
        (lambda s, kw: kw.update(users=pl.DataFrame({"user_id": ["u"]})), "users frame has no column"),
    ],
)
def test_bad_inputs_are_refused_readably(mutate, message: str) -> None:
    scored = scored_frame([("u", "v0", 1.0)])
    kwargs = {"scored": scored, "users": NOBODY, "videos": videos_frame(old(1)), "now": NOW, "k": 3}
    mutate(scored, kwargs)
    with pytest.raises(ValueError, match=message):
        DefaultReRanker().rerank(**kwargs)


def test_now_in_another_time_zone_means_the_same_instant() -> None:
    from datetime import timezone

    videos = videos_frame([("v", "c", 7.0, True)])
    other = NOW.astimezone(timezone(timedelta(hours=5)))
    out = DefaultReRanker().rerank(scored_frame([("u", "v", 1.0)]), NOBODY, videos, other, k=1)
    assert out["final_score"].item() == pytest.approx(1.1)
