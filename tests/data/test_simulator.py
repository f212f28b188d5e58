"""The simulated platform: determinism, schema, integrity, believability, ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from vidrec.data import read_dataset
from vidrec.data.schema import EVENT_KINDS, TABLES, with_derived
from vidrec.data.simulator import GroundTruth, SimulatorConfig, simulate
from vidrec.data.simulator.groundtruth import to_epoch_us
from vidrec.data.stats import describe
from vidrec.errors import DataError

SMALL = SimulatorConfig(users=600, videos=400, days=12, seed=7)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate(SMALL, out)
    return out


@pytest.fixture(scope="module")
def ds(sim_dir):
    return read_dataset(sim_dir)


@pytest.fixture(scope="module")
def gt(sim_dir):
    return GroundTruth.load(sim_dir)


@pytest.fixture(scope="module")
def outcomes(ds, gt):
    """Every impression with its ground-truth probabilities and what happened."""
    imps = ds.events.filter(pl.col("event") == "impression")
    watches = with_derived(ds.events.filter(pl.col("event") == "watch"), ds.videos).select(
        "user_id", "video_id", (pl.col("ts") - pl.duration(seconds=1)).alias("ts"), "completed",
        watched=pl.lit(True),
    )
    joined = imps.join(watches, on=["user_id", "video_id", "ts"], how="left").with_columns(
        pl.col("watched").fill_null(False), pl.col("completed").fill_null(False)
    )
    ts = joined["ts"]
    return joined.with_columns(
        p_complete=gt.p_complete(joined["user_id"], joined["video_id"], ts),
        p_interact=gt.p_interact(joined["user_id"], joined["video_id"], ts),
    )


def test_same_config_gives_byte_identical_parquet(tmp_path):
    cfg = SimulatorConfig(users=150, videos=120, days=4, seed=3)
    simulate(cfg, tmp_path / "a")
    simulate(cfg, tmp_path / "b")
    simulate(SimulatorConfig(users=150, videos=120, days=4, seed=4), tmp_path / "c")
    for name in ("events", "videos", "users"):
        a = (tmp_path / "a" / f"{name}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.parquet").read_bytes(), name
    assert (tmp_path / "a" / "events.parquet").read_bytes() != (tmp_path / "c" / "events.parquet").read_bytes()


def test_tables_follow_the_canonical_schema(ds):
    for name, (required, optional) in TABLES.items():
        table = ds.table(name)
        for column, dtype in {**required, **optional}.items():
            assert column in table.columns, (name, column)
            assert table.schema[column] == dtype, (name, column, table.schema[column])
        assert table.null_count().select(list(required)).sum_horizontal().item() == 0 or name == "events"
    ev = ds.events
    assert set(ev["event"].unique()) == set(EVENT_KINDS)
    is_watch = ev["event"] == "watch"
    assert ev.filter(is_watch)["watch_seconds"].null_count() == 0
    assert (ev.filter(is_watch)["watch_seconds"] > 0).all()
    assert ev.filter(~is_watch)["watch_seconds"].null_count() == ev.filter(~is_watch).height
    assert (ds.videos["duration_seconds"] > 0).all()
    assert ds.videos["title"].str.len_chars().min() > 0


def test_references_exist_and_no_event_precedes_upload(ds, gt):
    ev = ds.events
    assert ev["user_id"].is_in(ds.users["user_id"].implode()).all()
    assert ev["video_id"].is_in(ds.videos["video_id"].implode()).all()
    assert ds.users["user_id"].is_unique().all() and ds.videos["video_id"].is_unique().all()
    joined = ev.join(ds.videos.select("video_id", "uploaded_at"), on="video_id")
    assert (joined["ts"] >= joined["uploaded_at"]).all()
    assert ev.is_duplicated().sum() == 0
    # Impressions only of videos available at that instant (uploaded, not yet removed).
    imps = ev.filter(pl.col("event") == "impression")
    idx = gt.video_ids.to_index(imps["video_id"])
    ts = to_epoch_us(imps["ts"], imps.height)
    assert ((gt.uploaded_us[idx] <= ts) & (gt.removed_us[idx] > ts)).all()
    assert (~ds.videos["available"]).sum() > 0
    assert (ds.videos["uploaded_at"] < SMALL.start).sum() > 0
    assert (ds.videos["uploaded_at"] >= SMALL.start).sum() > 0


def test_likes_and_dislikes_follow_a_watch(ds):
    ev = ds.events
    reactions = ev.filter(pl.col("event").is_in(["like", "dislike"]))
    watches = ev.filter(pl.col("event") == "watch").select("user_id", "video_id", watch_ts="ts")
    matched = reactions.join(watches, on=["user_id", "video_id"]).filter(pl.col("watch_ts") < pl.col("ts"))
    assert matched.select("user_id", "video_id", "ts", "event").unique().height == reactions.height


def test_platform_is_believable(ds):
    s = describe(ds)
    assert s["top10pct_watch_share"] > 0.35
    completion = with_derived(ds.events.filter(pl.col("event") == "watch"), ds.videos)["completion"]
    assert (completion < 0.2).mean() > 0.1
    assert (completion >= 0.8).mean() > 0.2
    assert s["completion_above_1"] > 0.0
    assert s["events_by_kind"]["like"] > s["events_by_kind"]["dislike"] > 0
    assert 0.01 < s["like_rate"] < 0.1
    assert s["fresh_watch_share"] > 0.25
    act = s["events_per_user"]
    assert act["max"] > 2 * act["p90"] and act["p90"] > 2 * act["median"]  # heavy-tailed activity


def test_reactions_concentrate_where_interest_is_high_or_low(ds, outcomes):
    ev = ds.events.sort("ts")
    watches = ev.filter(pl.col("event") == "watch").select("user_id", "video_id", "ts", watch_ts="ts")
    reactions = ev.filter(pl.col("event").is_in(["like", "dislike"])).select("user_id", "video_id", "ts", "event")
    # The watch each reaction follows: the latest one of that user and video before it.
    reactions = reactions.join_asof(watches, on="ts", by=["user_id", "video_id"], strategy="backward", check_sortedness=False)
    assert reactions["watch_ts"].null_count() == 0
    keyed = reactions.select("event", "user_id", "video_id", ts=pl.col("watch_ts") - pl.duration(seconds=1))
    watched = outcomes.filter("watched").drop("event").join(keyed, on=["user_id", "video_id", "ts"], how="left")
    assert watched["event"].drop_nulls().len() == reactions.height
    high = watched["p_complete"] >= watched["p_complete"].median()
    liked = (watched["event"] == "like").fill_null(False)
    disliked = (watched["event"] == "dislike").fill_null(False)
    assert liked.filter(high).mean() > 1.5 * liked.filter(~high).mean()
    assert disliked.filter(~high).mean() > 1.5 * disliked.filter(high).mean()


def test_logging_policy_is_not_uniform(ds, gt, outcomes):
    shown = outcomes.group_by("video_id").len()["len"].sort(descending=True)
    assert shown.head(len(shown) // 10).sum() / shown.sum() > 0.25
    # Personalised exposure: shown videos suit the user better than random ones would.
    rng = np.random.default_rng(0)
    random_videos = ds.videos["video_id"].gather(rng.integers(0, ds.videos.height, outcomes.height))
    ts = outcomes["ts"]
    random_p = gt.p_interact(outcomes["user_id"], random_videos, ts)
    assert outcomes["p_interact"].mean() > 1.1 * random_p.mean()


@pytest.mark.parametrize("column, outcome", [("p_complete", "completed"), ("p_interact", "watched")])
def test_ground_truth_is_calibrated(outcomes, column, outcome):
    deciles = (pl.col(column).rank("ordinal") * 10 // (pl.len() + 1)).alias("bin")
    binned = outcomes.with_columns(deciles).group_by("bin").agg(pred=pl.col(column).mean(), emp=pl.col(outcome).mean(), n=pl.len())
    se = np.sqrt(binned["pred"] * (1 - binned["pred"]) / binned["n"])
    assert (np.abs(binned["emp"] - binned["pred"]) < 4 * se + 0.005).all(), binned
    assert binned["pred"].max() - binned["pred"].min() > 0.2  # the truth discriminates


def test_oracle_is_argsort_of_p_complete_over_available_videos(ds, gt):
    users = ds.users["user_id"].head(5).to_list()
    ts = SMALL.start + timedelta(days=6, hours=5)
    videos = ds.videos["video_id"]
    avail = gt.available(int(to_epoch_us(ts, 1)[0]))
    assert 0 < avail.sum() < len(avail)
    exclude = {users[0]: set(videos.head(50).to_list()), users[2]: {"no-such-video"}}
    best = gt.best_videos(users, ts, k=10, exclude=exclude)
    assert best.columns == ["user_id", "rank", "video_id", "p_complete"]
    for u in users:
        p = gt.p_complete([u] * len(videos), videos, ts)
        ok = avail & ~videos.is_in(list(exclude.get(u, set()))).to_numpy()
        candidates = np.flatnonzero(ok)
        expected = videos.gather(candidates[np.argsort(-p[candidates], kind="stable")[:10]]).to_list()
        got = best.filter(pl.col("user_id") == u).sort("rank")
        assert got["video_id"].to_list() == expected
        assert got["rank"].to_list() == list(range(1, 11))
        np.testing.assert_array_equal(got["p_complete"].to_numpy(), np.sort(p[ok])[::-1][:10])
        assert np.all(np.diff(got["p_complete"].to_numpy()) <= 0)


def test_oracle_per_user_times_and_chunking(gt, monkeypatch):
    import vidrec.data.simulator.groundtruth as module

    users = gt.user_ids.ids.head(7)
    ts = [SMALL.start + timedelta(days=d) for d in range(7)]
    full = gt.best_videos(users, ts, k=3)
    monkeypatch.setattr(module, "CELLS_PER_CHUNK", 1)  # one user per chunk
    assert gt.best_videos(users, ts, k=3).equals(full)
    assert full.height == 21


def test_ground_truth_rejects_unknown_ids_and_missing_dirs(gt, tmp_path):
    with pytest.raises(KeyError, match="unknown user"):
        gt.p_complete(["nobody"], ["v0000"], SMALL.start)
    with pytest.raises(DataError, match="no ground truth"):
        GroundTruth.load(tmp_path)


def test_times_are_accepted_in_many_forms():
    t = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)
    us = int(t.timestamp()) * 1_000_000
    assert to_epoch_us(t, 2).tolist() == [us, us]
    assert to_epoch_us(t.replace(tzinfo=None), 1).tolist() == [us]
    assert to_epoch_us(np.array([np.datetime64("2025-06-03T12:00:00")]), 1).tolist() == [us]
    assert to_epoch_us(pl.Series([t, t]), 2).tolist() == [us, us]
    assert to_epoch_us([t, t], 2).tolist() == [us, us]
    with pytest.raises(ValueError):
        to_epoch_us([t, t], 3)


def test_simulation_json_holds_config_and_summary(sim_dir, ds):
    meta = json.loads((sim_dir / "simulation.json").read_text())
    assert meta["config"]["users"] == SMALL.users and meta["config"]["seed"] == SMALL.seed
    assert meta["summary"]["events"] == ds.events.height
    assert meta["summary"]["events_by_kind"]["watch"] == (ds.events["event"] == "watch").sum()


@pytest.mark.parametrize(
    "kwargs",
    [{"users": 0}, {"videos": 1}, {"days": -1}, {"seed": -2}, {"removal_rate": 1.5},
     {"policy_personal_share": 0.8, "policy_fresh_share": 0.3}, {"impressions_per_user_day": 0.0},
     {"start": datetime(2025, 6, 1)}, {"creators": 10_000}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="SimulatorConfig"):
        SimulatorConfig(**kwargs)


def test_target_events_sets_the_impression_rate():
    cfg = SimulatorConfig.for_target_events(users=1000, videos=500, days=10, events=123_000)
    assert cfg.impressions_per_user_day == pytest.approx(123_000 / (1.23 * 1000 * 10))
