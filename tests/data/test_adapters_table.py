"""The generic table adapter (CSV / Parquet + a TOML mapping) and the adapter registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from vidrec.data.adapters import ADAPTERS, load_source
from vidrec.data.adapters.base import PARSE_ERROR, SOURCE_ROW, RawTables
from vidrec.data.adapters.table import load
from vidrec.data.schema import EVENTS_REQUIRED, VIDEOS_REQUIRED
from vidrec.errors import DataError

UTC = UTC

LOG = """uid,item,time,action,secs,device
u1,v1,2024-01-01 10:00:00,view,30,ios
u1,v1,2024-01-01 10:01:00,thumbs_up,,ios
u2,v2,2024-01-02 11:00:00,view,12.5,web
u2,v3,not a time,view,x,web
u3,v1,2024-01-03 09:00:00,skip,,web
"""

MAPPING = """
[events]
file = "log.csv"
user_id = "uid"
video_id = "item"
ts = "time"
ts_format = "%Y-%m-%d %H:%M:%S"
event = "action"
watch_seconds = "secs"

[events.event_values]
view = "watch"
thumbs_up = "like"
skip = "impression"

[videos]
file = "items.parquet"
video_id = "id"
creator_id = "author"
tags = "labels"
duration_seconds = "length_ms"
duration_unit = "ms"
default_duration_seconds = 45
uploaded_at = "published"
available = "visible"
title = "name"

[users]
file = "users.csv"
user_id = "user"
country = "cc"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "log.csv").write_text(LOG)
    pl.DataFrame(
        {
            "id": ["v1", "v2"], "author": ["c1", None], "length_ms": [60_000, None], "labels": [["a", "b"], []],
            "published": ["2023-12-31T00:00:00+01:00", "2024-01-01T00:00:00+00:00"], "visible": ["yes", "no"],
            "name": ["One", "Two"], "category": ["x", "y"],
        }
    ).write_parquet(tmp_path / "items.parquet")  # fmt: skip
    (tmp_path / "users.csv").write_text("user,cc,plan\nu1,FR,free\nu2,DE,paid\n")
    (tmp_path / "mapping.toml").write_text(MAPPING)
    return tmp_path


def test_csv_and_parquet_exact(folder):
    tables = load_source("table", folder / "mapping.toml")
    ev = tables.events
    assert {c: ev.schema[c] for c in EVENTS_REQUIRED} == EVENTS_REQUIRED
    assert ev["event"].to_list() == ["watch", "like", "watch", "watch", "impression"]
    assert ev["watch_seconds"].to_list() == [30.0, None, 12.5, None, None]
    assert ev["ts"].to_list()[:3] == [
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 1, 10, 1, tzinfo=UTC),
        datetime(2024, 1, 2, 11, tzinfo=UTC),
    ]
    assert ev["device"].to_list() == ["ios", "ios", "web", "web", "web"]
    bad = ev.row(3, named=True)
    assert (bad[SOURCE_ROW], bad["ts"]) == (4, None)
    assert bad[PARSE_ERROR] == "ts: cannot read 'not a time'; watch_seconds: cannot read 'x'"

    videos = {r["video_id"]: r for r in tables.videos.iter_rows(named=True)}
    assert {c: tables.videos.schema[c] for c in VIDEOS_REQUIRED} == VIDEOS_REQUIRED
    fields = ("creator_id", "category", "tags", "duration_seconds", "uploaded_at", "available", "title")
    assert {v: tuple(r[f] for f in fields) for v, r in videos.items()} == {
        "v1": ("c1", "unknown", ["a", "b"], 60.0, datetime(2023, 12, 30, 23, tzinfo=UTC), True, "One"),
        "v2": (None, "unknown", [], 45.0, datetime(2024, 1, 1, tzinfo=UTC), False, "Two"),
        "v3": ("unknown-creator-v3", "unknown", [], 45.0, None, True, None),  # only event has no time
    }
    assert videos["v1"]["source_category"] == "x"  # an unmapped canonical name is kept aside
    assert videos["v3"][SOURCE_ROW] is None

    users = {r["user_id"]: r for r in tables.users.iter_rows(named=True)}
    assert {u: (r["country"], r.get("plan"), r["signed_up_at"]) for u, r in users.items()} == {
        "u1": ("FR", "free", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        "u2": ("DE", "paid", datetime(2024, 1, 2, 11, tzinfo=UTC)),
        "u3": (None, None, datetime(2024, 1, 3, 9, tzinfo=UTC)),
    }
    assert tables.sources == {
        "events": str(folder / "log.csv"), "videos": str(folder / "items.parquet"), "users": str(folder / "users.csv")
    }  # fmt: skip
    notes = "\n".join(tables.notes)
    assert "log.csv: 5 events (1 impression, 1 like, 3 watch)" in notes
    assert "1 video in the events but not in the videos file" in notes
    assert "1 user in the events but not in the users file" in notes


def test_folder_with_mapping_toml_is_enough(folder):
    assert load_source("table", folder).events.height == 5


def test_options_only_with_parquet_events_and_epoch_ms(tmp_path):
    log = tmp_path / "log.parquet"
    pl.DataFrame({"u": [1, 2, 2], "v": [10, 10, 11], "t_ms": [1_700_000_000_000, 1_700_000_001_500, None],
                  "ms": [1500, 60_000, 2000]}).write_parquet(log)  # fmt: skip
    tables = load(
        log,
        events={"user_id": "u", "video_id": "v", "ts": "t_ms", "ts_format": "epoch_ms",
                "watch_seconds": "ms", "watch_unit": "ms"},
        videos={"default_duration_seconds": 120},
    )  # fmt: skip
    ev = tables.events
    assert ev["user_id"].to_list() == ["1", "2", "2"] and ev["event"].to_list() == ["watch"] * 3
    assert ev["ts"].to_list() == [
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), datetime(2023, 11, 14, 22, 13, 21, 500000, tzinfo=UTC), None
    ]  # fmt: skip
    assert ev["watch_seconds"].to_list() == [1.5, 60.0, 2.0]
    assert tables.videos["video_id"].to_list() == ["10", "11"]
    assert tables.videos["duration_seconds"].to_list() == [120.0, 120.0]
    assert tables.videos["uploaded_at"].to_list() == [datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), None]
    assert tables.users[SOURCE_ROW].to_list() == [1, 2]


def test_options_override_the_mapping_file(folder):
    tables = load(folder / "mapping.toml", events={"event_values": {"view": "watch", "thumbs_up": "dislike"}})
    assert tables.events["event"].to_list() == ["watch", "dislike", "watch", "watch", "skip"]


def test_a_missing_column_names_file_column_and_fix(folder):
    (folder / "mapping.toml").write_text(MAPPING.replace('user_id = "uid"', 'user_id = "user_ident"'))
    with pytest.raises(DataError) as err:
        load_source("table", folder / "mapping.toml")
    message = str(err.value)
    assert str(folder / "log.csv") in message and "'user_ident'" in message
    assert "uid, item, time" in message  # what the file does have
    assert "what to do: fix the column name in [events]" in message


def test_a_missing_parquet_column_is_named(folder):
    (folder / "mapping.toml").write_text(MAPPING.replace('creator_id = "author"', 'creator_id = "maker"'))
    with pytest.raises(DataError, match=r"items\.parquet: column 'maker' \(for creator_id\) not found"):
        load(folder / "mapping.toml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('ts_format = "%Y-%m-%d %H:%M:%S"', 'ts_fmt = "x"'), "unknown key(s) ts_fmt in [events]"),
        (("[users]", "[user]"), "unknown section [user]"),
        (('duration_seconds = "length_ms"', ""), None),  # default_duration_seconds still applies
        (('default_duration_seconds = 45\n', 'default_duration_seconds = -1\n'), "must be a positive number"),
        (('watch_seconds = "secs"', ""), "the log has watch events but [events] maps no watch_seconds"),
        (('user_id = "uid"', 'user_id = 3'), "user_id must be a column name"),
        (('file = "log.csv"', 'file = "gone.csv"'), "gone.csv: file not found"),
        (('[events]\n', '[events\n'), "not valid TOML"),
        (('watch_seconds = "secs"', 'watch_seconds = "secs"\nwatch_unit = "h"'), "watch_unit = 'h' is not known"),
        (('ts_format = "%Y-%m-%d %H:%M:%S"', 'timezone = "Mars/Base"'), "unknown time zone 'Mars/Base'"),
        (('ts_format = "%Y-%m-%d %H:%M:%S"', "ts_format = 3"), "ts_format must be text"),
        (('view = "watch"', "view = 1"), "must map source values to event kinds"),
    ],
)
def test_mapping_mistakes_are_data_errors(folder, change, expected):
    (folder / "mapping.toml").write_text(MAPPING.replace(*change))
    if expected is None:
        assert load(folder).videos["duration_seconds"].to_list() == [45.0, 45.0, 45.0]
        return
    with pytest.raises(DataError) as err:
        load_source("table", folder)
    assert expected in str(err.value)


def test_no_duration_at_all_is_refused(folder):
    mapping = MAPPING.replace('duration_seconds = "length_ms"\n', "").replace("default_duration_seconds = 45\n", "")
    (folder / "mapping.toml").write_text(mapping)
    with pytest.raises(DataError, match="videos need a duration"):
        load(folder)


def test_numeric_times_need_an_epoch_format(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("u,v,t,s\n1,2,1700000000,3\n")
    with pytest.raises(DataError, match="epoch_s"):
        load(log, events={"user_id": "u", "video_id": "v", "ts": "t", "ts_format": "iso", "watch_seconds": "s"},
             videos={"default_duration_seconds": 10})  # fmt: skip


# --- the registry -----------------------------------------------------------------------


def test_registry_names_every_source():
    assert set(ADAPTERS) == {"movielens", "kuairec", "table"}


def test_registry_errors_are_readable(tmp_path):
    with pytest.raises(DataError, match="unknown source 'netflix'") as err:
        load_source("netflix", tmp_path)
    assert "movielens, kuairec, table" in str(err.value)
    with pytest.raises(DataError, match="no such file or folder"):
        load_source("kuairec", tmp_path / "missing")
    with pytest.raises(DataError, match=r"does not take the option\(s\) colour"):
        load_source("kuairec", tmp_path, colour="red")


def test_registry_returns_raw_tables(folder):
    assert isinstance(load_source("table", str(folder)), RawTables)


def test_wrong_separator_is_named(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("u;v;t;s\n1;2;2024-01-01T00:00:00;3\n")
    with pytest.raises(DataError) as err:
        load(log, events={"user_id": "u", "video_id": "v", "ts": "t", "watch_seconds": "s"},
             videos={"default_duration_seconds": 10})  # fmt: skip
    assert "separated by ';'; set separator" in str(err.value)
    tables = load(log, events={"user_id": "u", "video_id": "v", "ts": "t", "watch_seconds": "s", "separator": ";"},
                  videos={"default_duration_seconds": 10})  # fmt: skip
    assert tables.events.row(0, named=True)["ts"] == datetime(2024, 1, 1, tzinfo=UTC)
