from datetime import timedelta

import polars as pl
import pytest

from tests.candidates.conftest import T0, cluster_of, with_rule_cases
from vidrec.candidates import CANDIDATE_SCHEMA, TrendingConfig, TrendingGenerator, TwoTowerGenerator
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.data.schema import TIMESTAMP
from vidrec.features import build_user_state
from vidrec.features.user_state import empty_user_state

SMALL = TwoTowerConfig(embedding_dim=8, user_hidden=(16,), video_hidden=(16,), user_hash_buckets=256,
                       batch_size=64, epochs=3, val_fraction=0.0, seed=1, threads=1)


@pytest.fixture(scope="module")
def platform(clustered):
    """The clustered data with two unavailable videos, one not yet uploaded and some dislikes."""
    ds, now = clustered
    return with_rule_cases(ds, now), now


@pytest.fixture(scope="module")
def two_tower(platform):
    ds, now = platform
    return TwoTowerGenerator(SMALL, log=lambda _: None).fit(ds, now)


def check_candidates(out: pl.DataFrame, state: pl.DataFrame, k: int, source: str) -> None:
    assert out.schema == pl.Schema(CANDIDATE_SCHEMA)
    assert (out["source"] == source).all()
    assert out.group_by("user_id").len()["len"].max() <= k
    assert not out.select("user_id", "video_id").is_duplicated().any()
    ranks = out.group_by("user_id").agg(ok=pl.col("rank").sort() == pl.int_range(1, pl.len() + 1))
    assert ranks["ok"].list.all().all()
    order = out.sort("user_id", "rank").group_by("user_id", maintain_order=True).agg(pl.col("score"))
    assert all(s == sorted(s, reverse=True) for s in order["score"].to_list())
    banned = state.select("user_id", v=pl.concat_list("seen", "disliked")).explode("v")
    assert out.join(banned, left_on=["user_id", "video_id"], right_on=["user_id", "v"], how="semi").height == 0
    assert not out["video_id"].is_in(["v0", "v1", "v2"]).any()  # unavailable or not yet uploaded


@pytest.mark.parametrize("k", [5, 40])
def test_two_tower_never_returns_seen_disliked_or_unavailable(two_tower, platform, k):
    ds, now = platform
    state = pl.concat([build_user_state(ds.events, ds.videos), empty_user_state(["cold"])])
    out = two_tower.generate(state, k, now)
    check_candidates(out, state, k, "two_tower")
    assert out.filter(pl.col("user_id") == "cold").height == k  # cold users still answered


def test_two_tower_save_load_answers_the_same(two_tower, platform, tmp_path):
    ds, now = platform
    state = build_user_state(ds.events, ds.videos)
    two_tower.save(tmp_path / "tt")
    again = TwoTowerGenerator.load(tmp_path / "tt").bind(two_tower.catalogue)
    assert again.generate(state, 10, now).equals(two_tower.generate(state, 10, now))


def test_two_tower_exact_and_faiss_agree(platform, two_tower):
    ds, now = platform
    exact = TwoTowerGenerator(SMALL, exact=True)
    exact.model = two_tower.model
    exact.index_videos(ds.videos)
    exact.bind(two_tower.catalogue)
    state = build_user_state(ds.events, ds.videos)
    a, b = exact.generate(state, 10, now), two_tower.generate(state, 10, now)
    assert a.select("user_id", "video_id").equals(b.select("user_id", "video_id"))


def test_trending_exact_scores_and_exclusions(platform):
    ds, now = platform
    half = 2.0
    gen = TrendingGenerator(TrendingConfig(half_life_days=half, window_days=30)).fit(ds, now)
    state = pl.concat([build_user_state(ds.events, ds.videos), empty_user_state(["cold"])])
    out = gen.generate(state, 8, now)
    check_candidates(out, state, 8, "trending")
    # Oracle: per video sum over watches of (1 + completed) * 2^(-age/half).
    ev = ds.events.filter(pl.col("event") == "watch").with_columns(
        w=1.0 + (pl.col("watch_seconds") >= 80).cast(pl.Float64),
        age=(pl.lit(now).cast(TIMESTAMP) - pl.col("ts")).dt.total_seconds() / 86400.0,
    )
    want = ev.group_by("video_id").agg(s=(pl.col("w") * (2.0 ** (-pl.col("age") / half))).sum())
    want = want.filter(~pl.col("video_id").is_in(["v0", "v1", "v2"])).sort(["s", "video_id"], descending=[True, False])
    cold = out.filter(pl.col("user_id") == "cold").sort("rank")
    assert cold["video_id"].to_list() == want["video_id"].head(8).to_list()
    assert cold["score"].to_list() == pytest.approx(want["s"].head(8).to_list())


def test_trending_later_request_rescales_and_round_trips(platform, tmp_path):
    ds, now = platform
    gen = TrendingGenerator(TrendingConfig(half_life_days=1.0)).fit(ds, now)
    users = empty_user_state(["cold"])
    a = gen.generate(users, 5, now)
    b = gen.generate(users, 5, now + timedelta(days=1))
    assert a["video_id"].to_list() == b["video_id"].to_list()
    assert b["score"].to_list() == pytest.approx([s / 2 for s in a["score"].to_list()])
    gen.save(tmp_path / "tr")
    assert TrendingGenerator.load(tmp_path / "tr").bind(gen.catalogue).generate(users, 5, now).equals(a)


def test_generators_learn_nothing_from_the_future(clustered):
    ds, _ = clustered
    cut = T0 + timedelta(days=5)
    gen = TrendingGenerator().fit(ds, cut)
    later = ds.events.filter(pl.col("ts") >= cut)["video_id"].unique()
    earlier = ds.events.filter(pl.col("ts") < cut)["video_id"].unique()
    only_later = set(later) - set(earlier)
    out = gen.generate(empty_user_state(["cold"]), 60, cut)
    assert not (set(out["video_id"]) & only_later)
    assert cluster_of(out["video_id"]).size == out.height


def test_bad_k_is_rejected(two_tower, platform):
    with pytest.raises(ValueError, match="k must be"):
        two_tower.generate(empty_user_state(["x"]), 0, platform[1])
