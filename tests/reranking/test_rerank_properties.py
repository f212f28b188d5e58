"""Properties over random users, histories, candidates and configs.

The hard rules must hold for every input: no disliked, seen or unavailable video ever
reaches a slate. The creator cap is checked against a slot-by-slot greedy oracle
written plainly in Python.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reranking.rerank_frames import NOW, scored_frame, users_frame, videos_frame
from vidrec.reranking import DefaultReRanker, ReRankConfig

N_VIDEOS = 14


@st.composite
def worlds(draw):
    """A catalogue, user states, candidate sets (some unknown videos), a config and k."""
    videos = [
        (f"v{i}", draw(st.sampled_from("abc")), draw(st.floats(-2, 60)), draw(st.sampled_from([True] * 4 + [False])))
        for i in range(N_VIDEOS)
    ]
    ids = [v[0] for v in videos] + ["ghost1", "ghost2"]
    users, rows = {}, []
    for u in range(draw(st.integers(1, 4))):
        uid = f"u{u}"
        seen = draw(st.lists(st.sampled_from(ids), max_size=5, unique=True))
        disliked = draw(st.lists(st.sampled_from(ids), max_size=3, unique=True))
        if draw(st.booleans()):  # some users have no state row at all (cold users)
            users[uid] = (seen, disliked)
        cands = draw(st.lists(st.sampled_from(ids), min_size=4, max_size=len(ids), unique=True))
        # small integer scores make ties common; negative scores occur too
        rows += [(uid, v, draw(st.integers(-3, 6)) / 2) for v in cands]
    cap = draw(st.sampled_from([None, 1, 1, 2, 2, 3]))
    window = draw(st.integers(cap or 1, 5))
    cfg = ReRankConfig(
        fresh_boost=draw(st.sampled_from([0.0, 0.2, 1.0])),
        fresh_half_life_days=draw(st.sampled_from([0.5, 7.0, 30.0])),
        creator_cap=cap,
        creator_window=window,
        creator_backfill=draw(st.booleans()),
        diversity="none",  # the slate objectives have their own properties (test_slate_properties)
        min_fresh=0,
    )
    return videos_frame(videos), users_frame(users), scored_frame(rows), cfg, draw(st.integers(1, 9))


def forbidden(videos: pl.DataFrame, users: pl.DataFrame) -> tuple[set, set]:
    """(user, video) pairs that must never be shown, and videos nobody may be shown."""
    pairs = {
        (u, v)
        for u, seen, disliked in users.select("user_id", "seen", "disliked").iter_rows()
        for v in seen + disliked
    }
    unavailable = set(videos.filter(~pl.col("available"))["video_id"]) | {"ghost1", "ghost2"}
    return pairs, unavailable


def greedy_oracle(allowed: pl.DataFrame, creators: dict, cfg: ReRankConfig, k: int) -> list[str]:
    """The cap applied slot by slot, the way a person would do it by hand."""
    order = [v for v, _ in sorted(allowed.select("video_id", "final_score").iter_rows(), key=lambda r: (-r[1], r[0]))]
    if cfg.creator_cap is None:
        return order[:k]
    slate: list[str] = []
    while len(slate) < k:
        window = min(cfg.creator_window, k - len(slate))
        counts: dict[str, int] = {}
        picked = []
        for v in order:
            if len(picked) == window:
                break
            if counts.get(creators[v], 0) < cfg.creator_cap:
                counts[creators[v]] = counts.get(creators[v], 0) + 1
                picked.append(v)
        slate += picked
        order = [v for v in order if v not in picked]
        if len(picked) < window:
            if cfg.creator_backfill:
                slate += order[: k - len(slate)]
            break
    return slate


@settings(max_examples=100, deadline=None)
@given(world=worlds())
def test_no_disliked_seen_or_unavailable_video_ever_comes_out(world) -> None:
    videos, users, scored, cfg, k = world
    out = DefaultReRanker(cfg).rerank(scored, users, videos, NOW, k)
    pairs, unavailable = forbidden(videos, users)
    shown = set(out.select("user_id", "video_id").iter_rows())
    assert not shown & pairs
    assert not {v for _, v in shown} & unavailable
    assert shown <= set(scored.select("user_id", "video_id").iter_rows())
    ranks = out.group_by("user_id").agg(pl.col("rank").sort(), n=pl.len())
    for ranks_of_user, n in ranks.select("rank", "n").iter_rows():
        assert n <= k
        assert ranks_of_user == list(range(1, n + 1))


@settings(max_examples=100, deadline=None)
@given(world=worlds())
def test_slates_match_the_greedy_oracle_and_debug_accounts_for_every_candidate(world) -> None:
    videos, users, scored, cfg, k = world
    rr = DefaultReRanker(cfg)
    full = rr.rerank(scored, users, videos, NOW, k, debug=True)
    slate = full.filter(pl.col("rank").is_not_null())
    assert slate.drop("removed_reason").equals(rr.rerank(scored, users, videos, NOW, k))
    # every candidate is accounted for exactly once, with one documented reason
    assert sorted(full.select("user_id", "video_id").iter_rows()) == sorted(
        scored.select("user_id", "video_id").iter_rows()
    )
    assert slate["removed_reason"].null_count() == slate.height
    pairs, unavailable = forbidden(videos, users)
    creators = dict(videos.select("video_id", "creator_id").iter_rows())
    for user, part in full.partition_by("user_id", as_dict=True).items():
        removed = part.filter(pl.col("rank").is_null())
        for v, reason in removed.select("video_id", "removed_reason").iter_rows():
            hard = (user[0], v) in pairs or v in unavailable
            assert (reason in {"disliked", "seen", "unavailable"}) == hard
        allowed = part.filter(~pl.col("removed_reason").is_in(["disliked", "seen", "unavailable"]).fill_null(False))
        expected = greedy_oracle(allowed, creators, cfg, k)
        assert part.filter(pl.col("rank").is_not_null()).sort("rank")["video_id"].to_list() == expected


@settings(max_examples=60, deadline=None)
@given(world=worlds())
def test_cap_holds_in_every_window_except_where_relaxed_and_every_move_is_explained(world) -> None:
    videos, users, scored, cfg, k = world
    out = DefaultReRanker(cfg).rerank(scored, users, videos, NOW, k)
    out = out.join(videos.select("video_id", "creator_id"), on="video_id", how="left")
    codes = out["adjustments"].to_list()
    fresh = [any(c.startswith("fresh_boost:x") for c in cs) for cs in codes]
    # a final score above the model score is always explained by a freshness code
    for (score, final), has_code in zip(out.select("score", "final_score").iter_rows(), fresh):
        if final > score + 0.006 * abs(score):
            assert has_code
    if cfg.creator_cap is None:
        assert not any("creator_cap" in c for cs in codes for c in cs)
        return
    strict = out.filter(~pl.col("adjustments").list.contains("creator_cap:relaxed"))
    per_window = strict.group_by(
        "user_id", ((pl.col("rank") - 1) // cfg.creator_window).alias("w"), "creator_id"
    ).len()
    assert per_window.filter(pl.col("len") > cfg.creator_cap).height == 0
