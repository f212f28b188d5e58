"""EventLog: exact round trips, durability across processes, atomic numbered batches."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from vidrec.data.schema import EVENTS_REQUIRED
from vidrec.features.store import EventLog

T0 = datetime(2025, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)


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
    s = EventLog(tmp_path / "events.sqlite")
    yield s
    s.close()


def test_round_trip_is_exact_and_ordered_by_time(store) -> None:
    assert store.append(SAMPLE) == 1  # the batch number
    assert store.all_events().equals(SAMPLE.sort("ts"))
    assert store.all_events().schema == pl.Schema(EVENTS_REQUIRED)
    assert store.events_for_user("u1")["video_id"].to_list() == ["v2", "v1", "v3"]
    assert store.events_for_user("nobody").equals(pl.DataFrame(schema=EVENTS_REQUIRED))
    assert store.all_events(since=T0 + timedelta(minutes=5))["video_id"].to_list() == ["v1", "v3"]


def test_empty_store_gives_empty_canonical_frames(store) -> None:
    assert store.all_events().schema == pl.Schema(EVENTS_REQUIRED)
    assert store.all_events().height == 0
    assert store.append(SAMPLE.head(0)) == 0
    assert store.last() == 0 and store.batches() == []


def test_events_survive_closing_and_reopening(tmp_path) -> None:
    path = tmp_path / "events.sqlite"
    first = EventLog(path)
    first.append(SAMPLE)
    first.close()
    again = EventLog(path)
    again.append(events([("u3", "v9", 20, "watch", 0.0)]))
    assert again.count() == 5
    assert again.all_events().head(4).equals(SAMPLE.sort("ts"))


def test_events_survive_a_process_that_dies_without_closing(tmp_path) -> None:
    path = tmp_path / "events.sqlite"
    script = (
        "import os, sys; from datetime import datetime, timezone; import polars as pl\n"
        "from vidrec.features.store.log import EventLog\n"
        "s = EventLog(sys.argv[1])\n"
        "s.append(pl.DataFrame({'user_id': ['u'], 'video_id': ['v'], "
        "'ts': [datetime(2025, 1, 1, tzinfo=timezone.utc)], 'event': ['like'], "
        "'watch_seconds': pl.Series([None], dtype=pl.Float64)}))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=120)
    reopened = EventLog(path)
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
    with pytest.raises(ValueError, match="refused by the event log"):
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


def test_batches_come_back_in_log_order_with_their_rows(store) -> None:
    from vidrec.data.schema import TIMESTAMP

    first = store.append(SAMPLE)
    videos = pl.DataFrame([{"video_id": "new", "creator_id": "c", "category": "k", "tags": ["t"], "duration_seconds": 9.0,
                            "uploaded_at": T0, "available": True}]).with_columns(pl.col("uploaded_at").cast(TIMESTAMP))
    second = store.append_videos(videos)
    third = store.append_removals(["v1"], T0)
    assert (first, second, third) == (1, 2, 3) and store.last() == 3
    got = store.batches()
    assert [(b.seq, b.kind, b.rows.height) for b in got] == [(1, "events", 4), (2, "uploads", 1), (3, "removals", 1)]
    assert got[0].rows.sort("ts").equals(SAMPLE.sort("ts"))
    assert got[1].rows["video_id"].to_list() == ["new"] and got[2].rows["video_id"].to_list() == ["v1"]
    assert [b.seq for b in store.batches(since=1)] == [2, 3] and [b.seq for b in store.batches(1, 2)] == [2]
    with pytest.raises(ValueError, match="never reused"):
        store.append_videos(videos)
    assert store.last() == 3  # a refused batch takes no number


def test_the_log_has_a_stable_id(tmp_path) -> None:
    a = EventLog(tmp_path / "x.sqlite")
    b = EventLog(tmp_path / "x.sqlite")
    assert a.id == b.id and a.id != EventLog(tmp_path / "y.sqlite").id
