"""SQLiteEventStore: exact round trips, durability across processes, atomic batches."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from vidrec.data.schema import EVENTS_REQUIRED
from vidrec.serving import SQLiteEventStore

T0 = datetime(2025, 5, 1, 8, 30, 0, 123456, tzinfo=timezone.utc)


def events(rows: list[tuple[str, str, int, str, float | None]]) -> pl.DataFrame:
    """(user, video, minutes after T0, kind, watch_seconds) -> canonical events."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "video_id": [r[1] for r in rows],
            "ts": [T0 + timedelta(minutes=r[2]) for r in rows],
            "event": [r[3] for r in rows],
            "watch_seconds": [r[4] for r in rows],
        },
        schema=EVENTS_REQUIRED,
    )


SAMPLE = events(
    [("u1", "v1", 5, "watch", 12.5), ("u2", "v1", 1, "like", None), ("u1", "v2", 0, "dislike", None),
     ("u1", "v3", 9, "impression", None)]
)


@pytest.fixture
def store(tmp_path):
    s = SQLiteEventStore(tmp_path / "events.sqlite")
    yield s
    s.close()


def test_round_trip_is_exact_and_ordered_by_time(store) -> None:
    assert store.append(SAMPLE) == 4
    assert store.all_events().equals(SAMPLE.sort("ts"))
    assert store.all_events().schema == pl.Schema(EVENTS_REQUIRED)
    assert store.events_for_user("u1")["video_id"].to_list() == ["v2", "v1", "v3"]
    assert store.events_for_user("nobody").equals(pl.DataFrame(schema=EVENTS_REQUIRED))
    assert store.all_events(since=T0 + timedelta(minutes=5))["video_id"].to_list() == ["v1", "v3"]


def test_empty_store_gives_empty_canonical_frames(store) -> None:
    assert store.all_events().schema == pl.Schema(EVENTS_REQUIRED)
    assert store.all_events().height == 0
    assert store.append(SAMPLE.head(0)) == 0


def test_events_survive_closing_and_reopening(tmp_path) -> None:
    path = tmp_path / "events.sqlite"
    first = SQLiteEventStore(path)
    first.append(SAMPLE)
    first.close()
    again = SQLiteEventStore(path)
    again.append(events([("u3", "v9", 20, "watch", 0.0)]))
    assert again.count() == 5
    assert again.all_events().head(4).equals(SAMPLE.sort("ts"))


def test_events_survive_a_process_that_dies_without_closing(tmp_path) -> None:
    path = tmp_path / "events.sqlite"
    script = (
        "import os, sys; from datetime import datetime, timezone; import polars as pl\n"
        "from vidrec.serving.event_store import SQLiteEventStore\n"
        "s = SQLiteEventStore(sys.argv[1])\n"
        "s.append(pl.DataFrame({'user_id': ['u'], 'video_id': ['v'], "
        "'ts': [datetime(2025, 1, 1, tzinfo=timezone.utc)], 'event': ['like'], "
        "'watch_seconds': pl.Series([None], dtype=pl.Float64)}))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=120)
    reopened = SQLiteEventStore(path)
    assert reopened.all_events().select("user_id", "video_id", "event").rows() == [("u", "v", "like")]
    reopened.close()


def test_file_is_in_wal_mode_with_a_user_index(store) -> None:
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {row[1] for row in con.execute("PRAGMA index_list(events)")}
    assert "events_user_ts" in indexes
    plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE user_id = 'u'"))
    assert "events_user_ts" in plan
    con.close()


@pytest.mark.parametrize(
    "bad",
    [("u", "v", 0, "like", 3.0), ("u", "v", 0, "watch", None), ("u", "v", 0, "watch", -1.0),
     ("u", "v", 0, "share", None), ("", "v", 0, "like", None)],
)
def test_a_bad_row_refuses_the_whole_batch(store, bad) -> None:
    with pytest.raises(ValueError, match="refused by the store"):
        store.append(events([("u", "v", 0, "like", None), bad]))
    assert store.count() == 0


def test_missing_columns_and_naive_since_are_refused(store) -> None:
    with pytest.raises(ValueError, match="'watch_seconds'"):
        store.append(SAMPLE.drop("watch_seconds"))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.all_events(since=datetime(2025, 1, 1))


def test_concurrent_appends_from_threads_all_land(store) -> None:
    batch = events([("u", f"v{i}", i, "impression", None) for i in range(50)])
    threads = [threading.Thread(target=store.append, args=(batch,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 400
