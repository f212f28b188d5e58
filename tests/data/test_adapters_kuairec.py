"""KuaiRec adapter: exact answers on a small fixture in the KuaiRec 2.0 layout."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from vidrec.data.adapters import load_source
from vidrec.data.adapters.base import PARSE_ERROR, SOURCE_ROW
from vidrec.data.adapters.kuairec import load
from vidrec.data.schema import EVENTS_REQUIRED, VIDEOS_REQUIRED, completion
from vidrec.errors import DataError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kuairec"
UTC = UTC
BASE = 1593820800  # 2020-07-04 00:00:00 UTC


def shanghai_midnight(year: int, month: int, day: int) -> datetime:
    """upload_dt is a Beijing calendar date: its midnight, in UTC."""
    return datetime(year, month, day, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


@pytest.fixture(scope="module")
def tables():
    return load(FIXTURE)


def test_every_matrix_row_is_one_watch(tables):
    raw = pl.read_csv(FIXTURE / "small_matrix.csv")
    ev = tables.events
    assert ev.height == raw.height == 26
    assert set(ev["event"]) == {"watch"}
    assert ev[SOURCE_ROW].to_list() == list(range(1, 27))
    assert ev["watch_seconds"].to_list() == (raw["play_duration"] / 1000).to_list()
    assert {c: ev.schema[c] for c in EVENTS_REQUIRED} == EVENTS_REQUIRED
    assert all(PARSE_ERROR not in t.columns for t in (ev, tables.videos, tables.users))  # all clean


def test_completion_equals_watch_ratio(tables):
    joined = tables.events.join(tables.videos, on="video_id")
    with_c = joined.with_columns(completion(pl.col("watch_seconds"), pl.col("duration_seconds")))
    steady = with_c.filter(pl.col("video_id") != "106")  # 106's duration varies: the median is used
    assert steady.height == 22
    assert ((steady["completion"] - steady["watch_ratio"]).abs() < 1e-12).all()
    varying = with_c.filter(pl.col("video_id") == "106").sort(SOURCE_ROW)
    assert varying["completion"].to_list() == pytest.approx([1.0, 0.5, 1.2, 0.2])


def test_quirks_come_through_for_validation(tables):
    ev = tables.events
    assert ev.filter(pl.col(SOURCE_ROW).is_in([5, 6])).drop(SOURCE_ROW).n_unique() == 1  # exact duplicate
    untimed = ev.filter(pl.col("ts").is_null())
    assert untimed[SOURCE_ROW].to_list() == [10]
    assert untimed.row(0, named=True)["watch_seconds"] == 1.5
    assert ev.row(1, named=True)["ts"] == datetime(2020, 7, 4, 1, 0, 0, 125000, tzinfo=UTC)
    notes = "\n".join(tables.notes)
    assert "26 matrix rows -> 26 watch events" in notes
    assert "1 exact duplicate row, 1 row without a timestamp" in notes


def test_videos_exact(tables):
    videos = {r["video_id"]: r for r in tables.videos.iter_rows(named=True)}
    assert sorted(videos) == ["100", "101", "102", "103", "104", "105", "106"]
    expected = {
        #      creator, category, tags, duration, uploaded_at, available
        "100": ("3001", "cat-8", ["cat-8", "Food"], 10.0, shanghai_midnight(2020, 7, 1), True),
        "101": ("3002", "cat-27", ["cat-27", "cat-9", "Pets"], 7.5, shanghai_midnight(2020, 6, 20), True),
        "102": ("3003", "cat-3", ["cat-3"], 20.0, datetime.fromtimestamp(BASE - 14 * 3600 + 0.5, UTC), False),
        "103": ("unknown-creator-103", "cat-11", ["cat-11", "cat-2", "cat-5"], 3.0,
                datetime.fromtimestamp(BASE + 3 * 3600, UTC), True),
        "104": ("unknown-creator-104", "unknown", [], 9.0, datetime.fromtimestamp(BASE + 4 * 3600 + 0.125, UTC), True),
        "105": ("3005", "cat-6", ["cat-6", "Travel"], 12.0, shanghai_midnight(2020, 7, 2), True),
        "106": ("3001", "cat-8", ["cat-8", "Food"], 5.0, shanghai_midnight(2020, 6, 30), True),
    }  # fmt: skip
    fields = ("creator_id", "category", "tags", "duration_seconds", "uploaded_at", "available")
    assert {v: tuple(r[f] for f in fields) for v, r in videos.items()} == expected
    assert {c: tables.videos.schema[c] for c in VIDEOS_REQUIRED} == VIDEOS_REQUIRED
    assert videos["104"][SOURCE_ROW] is None and videos["105"][SOURCE_ROW] == 5
    assert videos["105"]["video_type"] == "AD"


def test_no_event_before_upload(tables):
    joined = tables.events.join(tables.videos.select("video_id", "uploaded_at"), on="video_id")
    assert joined.filter(pl.col("ts") < pl.col("uploaded_at")).height == 0


def test_video_notes(tables):
    notes = "\n".join(tables.notes)
    for text in (
        "1 video with varying video_duration in the matrix: the median is used",
        "1 video in the matrix but in no item table",
        "1 video with events before upload_dt",
        "1 video not in the matrix (duration from the daily features)",
    ):
        assert text in notes


def test_users_keep_their_features(tables):
    users = tables.users
    assert users["user_id"].to_list() == ["0", "1", "2", "3", "4"]
    assert users.schema["register_days"] == pl.Int64 and users.schema["onehot_feat17"] == pl.Int64
    assert users.schema["user_active_degree"] == pl.String
    one = users.filter(pl.col("user_id") == "1").row(0, named=True)
    assert one["follow_user_num"] == 386 and one["signed_up_at"] == datetime.fromtimestamp(BASE - 14 * 3600 + 0.5, UTC)
    four = users.filter(pl.col("user_id") == "4").row(0, named=True)
    assert four[SOURCE_ROW] is None and four["register_days"] is None
    assert "1 matrix user missing from user_features.csv" in "\n".join(tables.notes)


def test_matrix_choice_and_sources(tmp_path):
    data = tmp_path / "KuaiRec 2.0" / "data"
    shutil.copytree(FIXTURE, data)
    (data / "small_matrix.csv").rename(data / "big_matrix.csv")
    tables = load_source("kuairec", tmp_path / "KuaiRec 2.0")  # finds data/
    assert tables.sources["events"] == str(data / "big_matrix.csv")
    assert tables.sources["users"] == str(data / "user_features.csv")
    with pytest.raises(DataError, match="small_matrix.csv: file not found"):
        load_source("kuairec", data, matrix="small")
    with pytest.raises(DataError, match="unknown KuaiRec matrix"):
        load_source("kuairec", data, matrix="medium")


def test_only_a_matrix_still_loads(tmp_path):
    shutil.copy(FIXTURE / "small_matrix.csv", tmp_path / "small_matrix.csv")
    tables = load(tmp_path)
    assert tables.videos.height == 6 and tables.users.height == 5
    assert set(tables.videos["category"]) == {"unknown"}
    assert "no user_features.csv" in "\n".join(tables.notes)
    assert tables.users[SOURCE_ROW].to_list() == [1, 7, 10, 16, 19]  # first matrix row of each user
    assert tables.sources["users"] == str(tmp_path / "small_matrix.csv")


def test_bad_values_and_wrong_separator(tmp_path):
    lines = (FIXTURE / "small_matrix.csv").read_text().splitlines()
    lines[3] = lines[3].replace("2000,20000", "2000,twenty")  # video_duration of row 3
    lines[4] = lines[4] + ",extra"  # a line with one field too many
    (tmp_path / "small_matrix.csv").write_text("\n".join(lines) + "\n")
    ev = load(tmp_path).events
    assert ev.height == 26
    row3, row4 = ev.row(2, named=True), ev.row(3, named=True)
    assert row3["watch_seconds"] == 2.0 and "video_duration: cannot read 'twenty'" in row3[PARSE_ERROR]
    assert row4["user_id"] is None and row4[PARSE_ERROR] == "expected 8 fields, found 9"

    (tmp_path / "small_matrix.csv").write_text("\n".join(line.replace(",", ";") for line in lines[:3]) + "\n")
    with pytest.raises(DataError) as err:
        load_source("kuairec", tmp_path)
    assert "missing column(s) user_id" in str(err.value) and "separated by ';'" in str(err.value)


def test_an_unreadable_item_row_still_reaches_validation(tmp_path):
    for name in ("small_matrix.csv", "item_categories.csv"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    with open(tmp_path / "item_categories.csv", "a") as f:
        f.write("video-x,[4]\n")
    videos = load(tmp_path).videos
    bad = videos.filter(pl.col("video_id").is_null())
    assert bad.height == 1 and bad.row(0, named=True)[SOURCE_ROW] == 7
    assert bad.row(0, named=True)[PARSE_ERROR] == "video_id: cannot read 'video-x'"


def test_validation_quarantines_the_quirks_with_reasons(tables):
    from vidrec.data.validation import ValidationConfig, validate

    config = ValidationConfig(now=datetime(2030, 1, 1, tzinfo=UTC))
    result = validate(tables.events, tables.videos, tables.users, sources=tables.sources, config=config)
    got = sorted(result.quarantine.select("source_row", "reason").iter_rows())
    assert got == [(6, "duplicate_event"), (10, "missing_field")]
