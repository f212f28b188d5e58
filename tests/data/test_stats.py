"""describe / format_summary: exact answers on a hand-made data set."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from vidrec.data import Dataset
from vidrec.data.stats import describe, format_summary


def _t(day: int, month: int = 1, year: int = 2025, second: int = 0) -> datetime:
    return datetime(year, month, day, 0, 0, second, tzinfo=UTC)


@pytest.fixture
def tiny() -> Dataset:
    videos = pl.DataFrame(
        {
            "video_id": ["v1", "v2", "v3"],
            "creator_id": ["c1", "c1", "c2"],
            "category": ["music", "pets", "news"],
            "tags": [["a"], [], ["b", "c"]],
            "duration_seconds": [100.0, 10.0, 50.0],
            "uploaded_at": [_t(1), _t(9), _t(1, 12, 2024)],
            "available": [True, True, False],
        }
    )
    users = pl.DataFrame({"user_id": ["a", "b", "c"]})
    rows = [
        ("a", "v1", _t(10), "impression", None),
        ("a", "v1", _t(10, second=1), "watch", 90.0),  # 0.9: completed
        ("a", "v1", _t(10, second=2), "like", None),
        ("a", "v2", _t(10, second=3), "impression", None),
        ("a", "v2", _t(10, second=4), "watch", 25.0),  # 2.5: a loop, on a 1-day-old video
        ("b", "v1", _t(11), "watch", 10.0),  # 0.1: abandoned
        ("b", "v1", _t(11, second=1), "dislike", None),
        ("b", "v3", _t(11, second=2), "watch", 50.0),  # 1.0 on a 41-day-old video
    ]
    events = pl.DataFrame(rows, schema=["user_id", "video_id", "ts", "event", "watch_seconds"], orient="row")
    return Dataset(events, videos, users).conform()


def test_describe_gives_exact_figures(tiny):
    s = describe(tiny)
    assert (s["users"], s["videos"], s["events"]) == (3, 3, 8)
    assert s["events_by_kind"] == {"impression": 2, "watch": 4, "like": 1, "dislike": 1}
    assert s["first_event"] == "2025-01-10T00:00:00+00:00"
    assert s["last_event"] == "2025-01-11T00:00:02+00:00"
    assert s["completion_rate"] == 0.75
    q = s["completion_quantiles"]  # sorted completions 0.1, 0.9, 1.0, 2.5; linear interpolation
    assert q["p50"] == pytest.approx(0.95)
    assert q["p10"] == pytest.approx(0.1 + 0.3 * 0.8)
    assert q["p99"] == pytest.approx(1.0 + 0.97 * 1.5)
    assert s["completion_above_1"] == 0.25
    assert s["like_rate"] == 0.25 and s["dislike_rate"] == 0.25
    assert s["top1pct_watch_share"] == 0.5 and s["top10pct_watch_share"] == 0.5
    assert s["events_per_user"] == {"median": 3.0, "p90": pytest.approx(4.6), "max": 5}
    assert s["fresh_watch_share"] == 0.25


def test_completion_threshold_is_respected(tiny):
    assert describe(tiny, completion_threshold=1.0)["completion_rate"] == 0.5
    with pytest.raises(ValueError, match="completion_threshold"):
        describe(tiny, completion_threshold=0.0)


def test_works_without_impressions_or_events(tiny):
    no_impressions = Dataset(tiny.events.filter(pl.col("event") != "impression"), tiny.videos, tiny.users)
    s = describe(no_impressions)
    assert s["events_by_kind"]["impression"] == 0 and s["completion_rate"] == 0.75
    empty = describe(Dataset(tiny.events.clear(), tiny.videos, tiny.users))
    assert empty["events"] == 0 and empty["completion_rate"] is None and empty["like_rate"] is None
    assert empty["top10pct_watch_share"] is None and empty["first_event"] is None
    assert empty["events_per_user"] == {"median": 0.0, "p90": 0.0, "max": 0}
    assert "n/a" in format_summary(empty)


def test_format_summary_is_a_readable_table(tiny):
    text = format_summary(describe(tiny))
    lines = text.splitlines()
    assert lines[0].split() == ["users", "3"]
    assert any(line.startswith("completion rate (>= 0.8)") and line.endswith("75.0%") for line in lines)
    assert any(line.startswith("likes per watch") and line.endswith("25.0%") for line in lines)
    assert any(line.endswith("50.0% / 50.0%") for line in lines)
    assert any(line.endswith("3 / 4.600 / 5") for line in lines)
