"""Point-in-time features: exact values on a tiny log, and no feature ever reads the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from vidrec.data.schema import TIMESTAMP
from vidrec.features.point_in_time import (
    FEATURE_COLUMNS,
    EventTables,
    PointInTimeConfig,
    histories_at,
    point_in_time_features,
)
from vidrec.features.user_state import build_user_state

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def t(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def videos_frame(ids: list[str], creators: list[str], cats: list[str], durations: list[float], up: list[datetime]) -> pl.DataFrame:
    return pl.DataFrame({
        "video_id": ids, "creator_id": creators, "category": cats, "tags": [[] for _ in ids],
        "duration_seconds": durations, "uploaded_at": pl.Series(up).cast(TIMESTAMP), "available": [True] * len(ids),
    })  # fmt: skip


def events_frame(rows: list[tuple[str, str, datetime, str, float | None]]) -> pl.DataFrame:
    u, v, ts, e, w = zip(*rows)
    return pl.DataFrame({"user_id": u, "video_id": v, "ts": pl.Series(ts).cast(TIMESTAMP), "event": e,
                         "watch_seconds": pl.Series(w, dtype=pl.Float64)})  # fmt: skip


VIDEOS = videos_frame(["a", "b", "c"], ["x", "x", "y"], ["music", "music", "news"], [100.0, 200.0, 50.0], [T0, T0, t(5)])
EVENTS = events_frame([
    ("u", "a", t(1), "watch", 90.0),  # completed (0.9)
    ("u", "b", t(2), "watch", 20.0),  # abandoned (0.1)
    ("u", "a", t(2), "dislike", None),  # dislikes creator x at exactly t(2)
    ("v", "a", t(3), "watch", 100.0),
    ("u", "c", t(6), "watch", 50.0),
])  # fmt: skip


def test_exact_tiny_case_and_strict_boundary() -> None:
    tables = EventTables.build(EVENTS, VIDEOS, PointInTimeConfig(prior_weight=2.0, user_prior_weight=1.0, history_len=2))
    rows = pl.DataFrame({"user_id": ["u", "u", "u", "v"], "video_id": ["b", "b", "c", "c"],
                         "ts": [t(2), t(2.5), t(10), t(0)]})  # fmt: skip
    out = point_in_time_features(rows, tables, VIDEOS, with_history=True)
    r0, r1, r2, r3 = out.to_dicts()
    # At t(2): only u's completed watch of a at t(1) is visible; the t(2) events are not.
    assert (r0["u_views"], r0["u_completions"], r0["u_dislikes"], r0["creator_disliked"]) == (1, 1, 0, 0)
    assert (r0["v_views"], r0["uc_views"], r0["creator_views"]) == (0, 1, 1)
    # global completion prior (1 + 1) / (1 + 2); video b has no views: its rate is the prior
    assert r0["v_completion_rate"] == pytest.approx(2 / 3)
    # user rate: (1 + 1 * 2/3) / (1 + 1); music share prior (1 + 1) / (1 + 2 categories)
    assert r0["u_completion_rate"] == pytest.approx((1 + 2 / 3) / 2)
    assert r0["uc_affinity"] == pytest.approx((1 + 2 / 3) / 2)
    assert r0["video_age_days"] == pytest.approx(2 / 24)
    assert r0["history"] == ["a"]
    # Half an hour later the t(2) watch and dislike count.
    assert (r1["u_views"], r1["u_dislikes"], r1["creator_disliked"], r1["v_views"]) == (2, 1, 1, 1)
    # global prior (1 + 1) / (2 + 2) = 0.5; user (1 + 0.5) / (2 + 1) = 0.5; music (1 + 0.5) / (2 + 1)
    assert r1["uc_views"] == 2 and r1["uc_completion_rate"] == pytest.approx(0.5)
    assert r2["history"] == ["a", "c"] and r2["u_views"] == 3 and r2["creator_disliked"] == 0
    assert r3["u_views"] == 0 and r3["history"] == [] and r3["video_age_days"] == pytest.approx(-5 / 24)
    assert out.select("user_id", "video_id", "ts").equals(rows.with_columns(pl.col("ts").cast(TIMESTAMP)))


def random_log(seed: int, n: int = 400) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A random log on a coarse time grid, so many events share timestamps."""
    rng = np.random.default_rng(seed)
    vids = [f"v{i}" for i in range(12)]
    videos = videos_frame(vids, [f"c{i % 4}" for i in range(12)], [["m", "n", "s"][i % 3] for i in range(12)],
                          list(rng.uniform(10, 300, 12)), [t(float(h)) for h in rng.integers(-20, 20, 12)])  # fmt: skip
    kinds = rng.choice(["impression", "watch", "like", "dislike"], size=n, p=[0.4, 0.4, 0.1, 0.1])
    secs = np.where(kinds == "watch", rng.uniform(0, 400, n), np.nan)
    events = pl.DataFrame({
        "user_id": rng.choice(["u0", "u1", "u2", "u3", "u4"], size=n), "video_id": rng.choice(vids, size=n),
        "ts": pl.Series([t(float(h)) for h in rng.integers(0, 60, n)]).cast(TIMESTAMP),
        "event": kinds, "watch_seconds": pl.Series(secs).fill_nan(None),
    })  # fmt: skip
    return events, videos


def sample_rows(events: pl.DataFrame, seed: int, n: int = 25) -> pl.DataFrame:
    """Query rows whose ts often coincide exactly with event timestamps."""
    rng = np.random.default_rng(seed + 1)
    ts = events["ts"].sample(n, seed=seed, with_replacement=True).to_list()
    return pl.DataFrame({"user_id": rng.choice(["u0", "u1", "u2", "u3", "u9"], n),
                         "video_id": rng.choice([f"v{i}" for i in range(13)], n), "ts": ts})  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_features_equal_those_of_the_log_truncated_at_each_rows_ts(seed: int) -> None:
    """Oracle: each row's features from the full log equal those from events strictly before its ts."""
    events, videos = random_log(seed)
    cfg = PointInTimeConfig(history_len=3)
    rows = sample_rows(events, seed)
    full = point_in_time_features(rows, EventTables.build(events, videos, cfg), videos, with_history=True)
    for i in range(rows.height):  # a test oracle, one row at a time
        row = rows.slice(i, 1)
        past = events.filter(pl.col("ts") < row["ts"][0])
        alone = point_in_time_features(row, EventTables.build(past, videos, cfg), videos, with_history=True)
        assert_same_features(full.slice(i, 1), alone)


@pytest.mark.parametrize("seed", [3, 4])
def test_adding_events_at_or_after_a_rows_ts_changes_nothing(seed: int) -> None:
    events, videos = random_log(seed)
    rows = sample_rows(events, seed)
    tables = EventTables.build(events, videos)
    before = point_in_time_features(rows, tables, videos, with_history=True)
    rng = np.random.default_rng(seed)
    for i in range(rows.height):
        row = rows.slice(i, 1)
        extra, _ = random_log(seed + 100 + i, n=60)
        shift = row["ts"][0] - extra["ts"].min()  # every extra event at or after the row's ts
        extra = extra.with_columns(pl.col("ts") + shift, user_id=pl.lit(row["user_id"][0]) if rng.random() < 0.5 else pl.col("user_id"))
        grown = pl.concat([events, extra])
        after = point_in_time_features(row, EventTables.build(grown, videos), videos, with_history=True)
        assert_same_features(before.slice(i, 1), after)


def assert_same_features(a: pl.DataFrame, b: pl.DataFrame) -> None:
    np.testing.assert_allclose(a.select(FEATURE_COLUMNS).to_numpy(), b.select(FEATURE_COLUMNS).to_numpy(), rtol=1e-12)
    assert a["history"].to_list() == b["history"].to_list()


def test_history_matches_the_serving_user_state() -> None:
    events, videos = random_log(5)
    now = t(45)
    state = build_user_state(events, videos, as_of=now, history_len=4)
    rows = state.select("user_id", video_id=pl.lit("v0"), ts=pl.lit(now).cast(TIMESTAMP))
    cfg = PointInTimeConfig(history_len=4)
    out = point_in_time_features(rows, EventTables.build(events, videos, cfg), videos, with_history=True)
    assert out["history"].to_list() == state["recent_completed"].to_list()


@pytest.mark.parametrize("seed", [6, 7])
def test_histories_at_equal_the_feature_history_and_read_only_the_past(seed: int) -> None:
    events, videos = random_log(seed)
    cfg = PointInTimeConfig(history_len=3)
    rows = sample_rows(events, seed).with_columns(extra=pl.int_range(pl.len()))
    got = histories_at(rows, EventTables.build(events, videos, cfg))
    assert got.columns == [*rows.columns, "history"] and got.drop("history").equals(rows)
    full = point_in_time_features(rows, EventTables.build(events, videos, cfg), videos, with_history=True)
    assert got["history"].to_list() == full["history"].to_list()
    for i in range(rows.height):  # oracle: the log cut strictly before each row's ts
        row = rows.slice(i, 1)
        past = events.filter(pl.col("ts") < row["ts"][0])
        assert histories_at(row, EventTables.build(past, videos, cfg))["history"].to_list() == got["history"].to_list()[i : i + 1]


def test_histories_at_exact_tiny_case() -> None:
    rows = pl.DataFrame({"user_id": ["u", "u", "u", "w"], "ts": [t(1), t(1.5), t(7), t(7)]}).with_columns(
        pl.col("ts").cast(TIMESTAMP)
    )
    got = histories_at(rows, EventTables.build(EVENTS, VIDEOS))
    # a completed at t(1) is not history at t(1) (strictly before); b was abandoned; c (50 s
    # of 50) completed at t(6); w has none
    assert got["history"].to_list() == [[], ["a"], ["a", "c"], []]


def test_compacted_tables_answer_like_the_full_ones_after_the_last_event() -> None:
    events, videos = random_log(6)
    cfg = PointInTimeConfig(history_len=3)
    full = EventTables.build(events, videos, cfg)
    compact = full.compact()
    later = sample_rows(events, 6).with_columns(ts=pl.lit(t(100)).cast(TIMESTAMP))
    assert_same_features(
        point_in_time_features(later, full, videos, with_history=True),
        point_in_time_features(later, compact, videos, with_history=True),
    )
    assert compact.tables["video"].height == full.tables["video"]["video_id"].n_unique()
    with pytest.raises(ValueError, match="compacted"):
        point_in_time_features(later.with_columns(ts=pl.lit(t(59)).cast(TIMESTAMP)), compact, videos)


def test_tables_round_trip_through_disk(tmp_path) -> None:
    events, videos = random_log(7)
    tables = EventTables.build(events, videos).compact()
    loaded = EventTables.load(tables.save(tmp_path / "t"))
    rows = sample_rows(events, 7).with_columns(ts=pl.lit(t(100)).cast(TIMESTAMP))
    assert_same_features(point_in_time_features(rows, tables, videos, with_history=True),
                         point_in_time_features(rows, loaded, videos, with_history=True))  # fmt: skip


@pytest.mark.parametrize("kwargs", [{"prior_weight": -1.0}, {"history_len": 0}, {"threshold": 0.0}, {"completion_cap": 0.0}])
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="PointInTimeConfig"):
        PointInTimeConfig(**kwargs)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_tables_built_since_a_time_answer_as_the_full_tables_from_then_on(seed: int) -> None:
    """Oracle: tables holding one row per key for the events before ``since`` give every row at
    or after ``since`` the features the full tables give, and are smaller."""
    events, videos = random_log(seed)
    cfg = PointInTimeConfig(history_len=3)
    since = events["ts"].sort().gather(events.height // 2).item()
    rows = sample_rows(events, seed).filter(pl.col("ts") >= since)
    full_tables, cut_tables = EventTables.build(events, videos, cfg), EventTables.build(events, videos, cfg, since)
    full = point_in_time_features(rows, full_tables, videos, with_history=True)
    cut = point_in_time_features(rows, cut_tables, videos, with_history=True)
    assert_same_features(full, cut)
    assert sum(t.height for t in cut_tables.tables.values()) < sum(t.height for t in full_tables.tables.values())
    for name, table in full_tables.compact().tables.items():  # serving reads the same (sums to float rounding)
        keys = [c for c in table.columns if table.schema[c] in (pl.String, pl.Categorical) or c in ("ts", "rank")]
        assert_frame_equal(table.sort(keys), cut_tables.compact().tables[name].sort(keys), check_exact=False)
    with pytest.raises(ValueError, match="answer only for ts from"):
        point_in_time_features(sample_rows(events, seed).filter(pl.col("ts") < since), cut_tables, videos)
