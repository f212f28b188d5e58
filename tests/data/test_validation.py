"""Validation keeps every valid row and quarantines every bad one with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.data.ingest import ingest_tables
from vidrec.data.validation import REASONS, ValidationConfig, validate
from vidrec.errors import DataError

T0 = datetime(2025, 6, 1, tzinfo=UTC)
CFG = ValidationConfig(now=datetime(2026, 1, 1, tzinfo=UTC))


def make_videos(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "creator_id": [f"c{i % 3}" for i in range(n)],
            "category": ["music" if i % 2 else "news" for i in range(n)],
            "tags": [["a", "b"] if i % 2 else [] for i in range(n)],
            "duration_seconds": [60.0 + i for i in range(n)],
            "uploaded_at": [T0 + timedelta(days=i) for i in range(n)],
            "available": [True] * n,
            "title": [f"video {i}" for i in range(n)],
        }
    )


def make_users(n: int) -> pl.DataFrame:
    return pl.DataFrame({"user_id": [f"u{i}" for i in range(n)], "country": ["DE"] * n})


def make_events(n: int, n_videos: int, n_users: int) -> pl.DataFrame:
    kinds = ["watch", "impression", "like", "dislike"]
    vid = [i % n_videos for i in range(n)]
    return pl.DataFrame(
        {
            "user_id": [f"u{i % n_users}" for i in range(n)],
            "video_id": [f"v{v}" for v in vid],
            "ts": [(T0 + timedelta(days=v + 1, seconds=i)).isoformat() for i, v in enumerate(vid)],
            "event": [kinds[i % 4] for i in range(n)],
            "watch_seconds": [float(i % 90) if i % 4 == 0 else None for i in range(n)],
            "rid": list(range(n)),
        }
    )


def test_valid_tables_pass_untouched() -> None:
    ev, vi, us = make_events(40, 5, 4), make_videos(5), make_users(4)
    r = validate(ev, vi, us, config=CFG)
    assert r.ok
    assert r.dataset.events["rid"].to_list() == list(range(40))
    assert r.dataset.events.schema["ts"] == pl.Datetime("us", "UTC")
    assert r.dataset.videos.columns == vi.columns  # optional and extra columns kept


def test_each_reason_exactly() -> None:
    vi = make_videos(3).with_columns(
        duration_seconds=pl.Series([60.0, 0.0, 70.0]),  # v1 is invalid
    )
    vi = pl.concat([vi, vi.head(1)])  # v0 defined twice: second copy is a duplicate_key
    us = make_users(2)
    ts = (T0 + timedelta(days=5)).isoformat()
    rows = [
        ("u0", "v0", ts, "watch", 10.0),  # 1 valid
        ("u0", "v0", ts, "watch", 10.0),  # 2 duplicate_event
        ("u0", "v0", ts, "share", None),  # 3 unknown_event
        ("u0", "v0", "yesterday", "like", None),  # 4 wrong_type
        ("u0", "v0", ts, "watch", None),  # 5 missing_watch_seconds
        ("u0", "v0", ts, "like", 3.0),  # 6 unexpected_watch_seconds
        ("u0", "v0", ts, "watch", -1.0),  # 7 invalid_watch_seconds
        ("u0", "v0", "1960-01-01T00:00:00", "like", None),  # 8 timestamp_out_of_range
        ("u0", "v1", ts, "like", None),  # 9 unknown_video (v1 quarantined)
        ("u9", "v0", ts, "like", None),  # 10 unknown_user
        ("u1", "v2", T0.isoformat(), "like", None),  # 11 before_upload (v2 uploaded day 2)
        (None, "v0", ts, "like", None),  # 12 missing_field
        ("u1", "v2", "2030-01-01T00:00:00", "like", None),  # 13 timestamp_out_of_range
        ("u0", "v0", ts, "watch", 1e308),  # 14 invalid_watch_seconds (over a week)
    ]
    ev = pl.DataFrame(rows, schema=["user_id", "video_id", "ts", "event", "watch_seconds"], orient="row")
    r = validate(ev, vi, us, sources={"events": "log.parquet"}, config=CFG)
    q = r.quarantine
    got = dict(zip(q.filter(pl.col("table") == "events")["source_row"], q.filter(pl.col("table") == "events")["reason"]))
    assert got == {
        2: "duplicate_event", 3: "unknown_event", 4: "wrong_type", 5: "missing_watch_seconds",
        6: "unexpected_watch_seconds", 7: "invalid_watch_seconds", 8: "timestamp_out_of_range",
        9: "unknown_video", 10: "unknown_user", 11: "before_upload", 12: "missing_field",
        13: "timestamp_out_of_range", 14: "invalid_watch_seconds",
    }
    vq = q.filter(pl.col("table") == "videos")
    assert sorted(zip(vq["source_row"], vq["reason"])) == [(2, "non_positive_duration"), (4, "duplicate_key")]
    assert r.dataset.events.height == 1
    wrong = q.filter(pl.col("source_row") == 4, pl.col("table") == "events").row(0, named=True)
    assert wrong["field"] == "ts" and wrong["value"] == "yesterday"
    assert wrong["source_file"] == "log.parquet"
    assert json.loads(wrong["record"])["ts"] == "yesterday"
    assert set(q["reason"]) <= set(REASONS)


def test_missing_column_is_one_readable_error() -> None:
    ev = make_events(4, 2, 2).drop("ts")
    with pytest.raises(DataError, match="no column 'ts'"):
        validate(ev, make_videos(2), make_users(2), config=CFG)


def test_strict_mode_lists_first_errors_and_writes_nothing(tmp_path) -> None:
    ev = make_events(8, 2, 2).with_columns(event=pl.lit("share"))
    with pytest.raises(DataError) as exc:
        ingest_tables(ev, make_videos(2), make_users(2), tmp_path / "out", strict=True, config=CFG)
    assert "events.parquet, row 1, field 'event', value 'share'" in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_default_mode_writes_clean_tables_and_quarantine(tmp_path) -> None:
    ev = make_events(8, 2, 2)
    ev = ev.with_columns(event=pl.when(pl.col("rid") == 3).then(pl.lit("share")).otherwise(pl.col("event")))
    res = ingest_tables(ev, make_videos(2), make_users(2), tmp_path, config=CFG)
    assert pl.read_parquet(tmp_path / "events.parquet").height == 7
    q = pl.read_parquet(tmp_path / "quarantine.parquet")
    assert q["source_row"].to_list() == [4] and q["reason"].to_list() == ["unknown_event"]
    assert "unknown_event" in res.summary()


MANGLES = {
    "null_user": ("user_id", None, "missing_field"),
    "bad_ts": ("ts", "not a time", "wrong_type"),
    "kind": ("event", "share", "unknown_event"),
    "unknown_video": ("video_id", "v-missing", "unknown_video"),
    "unknown_user": ("user_id", "u-missing", "unknown_user"),
    "early": ("ts", "2000-01-01T00:00:00+00:00", "before_upload"),
    "future": ("ts", "2099-01-01T00:00:00+00:00", "timestamp_out_of_range"),
}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    mangles=st.dictionaries(st.integers(0, 59), st.sampled_from(sorted(MANGLES)), max_size=20),
    dups=st.sets(st.integers(0, 59), max_size=5),
    bad_video=st.booleans(),
)
def test_property_valid_in_equals_valid_out(n, mangles, dups, bad_video) -> None:
    """Mangled rows are quarantined with their reason; every other row comes out intact."""
    vi, us = make_videos(4), make_users(3)
    ev = make_events(n, 4, 3)
    mangles = {i: m for i, m in mangles.items() if i < n}
    records = ev.to_dicts()
    expected: dict[int, str] = {}
    for i, kind in mangles.items():
        field, value, reason = MANGLES[kind]
        records[i][field] = value
        expected[i] = reason
    for i in sorted(d for d in dups if d < n):
        if i not in mangles:
            copy = dict(records[i])
            copy["rid"] = n + i
            records.append(copy)
            expected[n + i] = "duplicate_event"
    if bad_video:  # v3 invalid: its still-valid events become unknown_video
        vi = vi.with_columns(duration_seconds=pl.when(pl.col("video_id") == "v3").then(-5.0).otherwise(pl.col("duration_seconds")))
        for r in records:
            later = expected.get(r["rid"]) in (None, "unknown_user", "before_upload")
            if r["video_id"] == "v3" and later:  # checks after unknown_video give way to it
                expected[r["rid"]] = "unknown_video"
            if r["video_id"] == "v3" and r["rid"] >= n:  # a copy of a dropped row is no longer a duplicate
                expected[r["rid"]] = "unknown_video"
    raw = pl.DataFrame(records, schema=ev.schema)
    r = validate(raw, vi, us, config=CFG)
    kept = set(r.dataset.events["rid"].to_list())
    assert kept == {rec["rid"] for rec in records} - set(expected)
    eq = r.quarantine.filter(pl.col("table") == "events")
    rows_to_rid = {i + 1: rec["rid"] for i, rec in enumerate(records)}
    got = {rows_to_rid[row]: reason for row, reason in zip(eq["source_row"], eq["reason"])}
    assert got == expected
    assert r.dataset.events.height + eq.height == len(records)
