"""Retrieved (hard) negatives: the two-tower's top eligible videos at ts, never touched, never future."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest

from tests.scoring.scoring_synth import T0, FixedEmbeddings, synthetic_log
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP
from vidrec.features.point_in_time import EventTables, histories_at
from vidrec.features.user_state import build_user_state
from vidrec.scoring import MLPRanker, RankerConfig
from vidrec.scoring.examples import LABELS, ExampleConfig, watch_examples
from vidrec.scoring.hard_negatives import retrieved_negatives


@pytest.fixture(scope="module")
def world() -> tuple[Dataset, FixedEmbeddings]:
    ds = synthetic_log(users=60, videos=120, impressions=4_000, seed=3)
    watches_only = ds.events.filter(pl.col("event") != "impression")  # a MovieLens-like log
    return Dataset(watches_only, ds.videos, ds.users), FixedEmbeddings(ds.videos["video_id"], dim=6, seed=1)


def watches(ds: Dataset, n: int = 300) -> pl.DataFrame:
    cfg = ExampleConfig(negatives_per_watch=0)
    return watch_examples(ds.events, ds.videos, cfg).sort("ts").tail(n)


def oracle_top(ds: Dataset, emb: FixedEmbeddings, user: str, ts, pool: int) -> set[str]:
    """Brute force: score every eligible video for the user's history strictly before ts."""
    row = pl.DataFrame({"user_id": [user], "ts": [ts]}).with_columns(pl.col("ts").cast(TIMESTAMP))
    hist = histories_at(row, EventTables.build(ds.events.filter(pl.col("ts") < ts), ds.videos))["history"]
    u = emb.user_vectors(pl.Series([user]), hist)[0]
    touched = set(ds.events.filter(pl.col("user_id") == user)["video_id"].to_list())
    vids = ds.videos.filter(pl.col("uploaded_at") <= ts)
    scores = emb.video_vectors(vids["video_id"]) @ u
    ok = [(s, v) for s, v in zip(scores.tolist(), vids["video_id"].to_list()) if v not in touched]
    ranked = sorted(ok, reverse=True)
    return {v for s, v in ranked if s >= ranked[min(pool, len(ranked)) - 1][0]}


def test_pool_of_one_is_the_brute_force_best_and_never_touched_or_future(world) -> None:
    ds, emb = world
    w = watches(ds, 40)
    neg = retrieved_negatives(w, ds.events, ds.videos, EventTables.build(ds.events, ds.videos), emb, 3, 1)
    assert neg.columns == ["user_id", "video_id", "ts", *LABELS] and neg.select(LABELS).to_numpy().sum() == 0
    assert neg.select("user_id", "ts").unique().height == neg.height  # pool of one: one per watch
    for user, ts, vid in neg.select("user_id", "ts", "video_id").iter_rows():  # test oracle, row by row
        assert vid in oracle_top(ds, emb, user, ts, 1)


def test_negatives_come_from_the_pool_and_are_eligible(world) -> None:
    ds, emb = world
    w = watches(ds)
    neg = retrieved_negatives(w, ds.events, ds.videos, EventTables.build(ds.events, ds.videos), emb, 4, 10, seed=5)
    assert neg.height > 2 * w.height  # up to 4 per watch, duplicates dropped
    touched = ds.events.select("user_id", "video_id").unique()
    assert neg.join(touched, on=["user_id", "video_id"], how="semi").is_empty()
    up = neg.join(ds.videos.select("video_id", "uploaded_at"), on="video_id")
    assert (up["uploaded_at"] <= up["ts"]).all()
    sample = neg.sample(25, seed=0)
    for user, ts, vid in sample.select("user_id", "ts", "video_id").iter_rows():
        assert vid in oracle_top(ds, emb, user, ts, 10)


def test_events_at_or_after_ts_do_not_change_the_retrieval(world) -> None:
    """Point in time: completions at/after a watch's ts (by a fresh user, so nothing becomes touched) change nothing."""
    ds, emb = world
    w = watches(ds, 60)
    args = (emb, 2, 5, 0)
    before = retrieved_negatives(w, ds.events, ds.videos, EventTables.build(ds.events, ds.videos), *args)
    late = ds.events.filter(pl.col("event") == "watch").sample(200, seed=1).with_columns(
        ts=pl.lit(w["ts"].max()).cast(TIMESTAMP) + pl.duration(seconds=pl.int_range(pl.len())),
        watch_seconds=pl.lit(1e6),
    )
    late = late.with_columns(user_id=pl.lit(None, pl.String)).with_columns(user_id=pl.col("video_id") + "_fresh")
    grown = pl.concat([ds.events, late])
    after = retrieved_negatives(w, grown, ds.videos, EventTables.build(grown, ds.videos), *args)
    assert before.equals(after)


def test_ranker_fits_with_hard_negatives(world) -> None:
    ds, emb = world
    since = T0 + timedelta(days=10)
    base = RankerConfig(max_epochs=2, patience=0, hidden=(16,), examples_since=since)
    plain = MLPRanker(base).fit(ds, emb)
    hard_cfg = replace(base, examples=ExampleConfig(hard_negatives_per_watch=3, hard_pool=20))
    hard = MLPRanker(hard_cfg).fit(ds, emb)
    assert hard.report["examples"] > plain.report["examples"]
    assert hard.report["positive_rate"] < plain.report["positive_rate"]
    with pytest.raises(ValueError, match="hard_pool"):
        ExampleConfig(hard_pool=0)


def test_similarity_table_and_scores_survive_save_and_load(tmp_path, world) -> None:
    ds, emb = world
    cfg = RankerConfig(max_epochs=2, patience=0, hidden=(16,), examples_since=T0 + timedelta(days=10))
    ranker = MLPRanker(cfg).fit(ds, emb)
    assert ranker.cooc is not None and ranker.cooc.matrix.nnz > 0  # counted before examples_since
    now = ds.events["ts"].max() + timedelta(seconds=1)
    users = build_user_state(ds.events, ds.videos)
    cands = users.select("user_id").head(5).join(ds.videos.select("video_id").head(40), how="cross")
    a = ranker.score(cands, users, ds.videos, now)
    loaded = MLPRanker.load(ranker.save(tmp_path / "r"), embeddings=emb)
    b = loaded.score(cands, users, ds.videos, now)
    assert a.equals(b) and a["p_complete"].std() > 0
