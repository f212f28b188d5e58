"""A tiny event log whose user states and video statistics are worked out by hand."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from vidrec.data.schema import TIMESTAMP

T0 = datetime(2024, 1, 1, tzinfo=UTC)
VIDEOS = pl.DataFrame(
    {
        "video_id": ["a", "b", "c", "d"],
        "creator_id": ["x"] * 4,
        "category": ["k"] * 4,
        "tags": [[]] * 4,
        "duration_seconds": [100.0] * 4,
        "uploaded_at": [T0] * 4,
        "available": [True] * 4,
    },
    schema_overrides={"tags": pl.List(pl.String), "uploaded_at": TIMESTAMP},
)


def events(rows: list[tuple[str, str, int, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "video_id": [r[1] for r in rows],
            "ts": [T0 + timedelta(hours=r[2]) for r in rows],
            "event": [r[3] for r in rows],
            "watch_seconds": [r[4] for r in rows],
        },
        schema_overrides={"ts": TIMESTAMP, "watch_seconds": pl.Float64},
    )


TINY = events(
    [
        ("u1", "a", 1, "watch", 90.0),  # completed
        ("u1", "b", 2, "watch", 10.0),  # watched, not completed
        ("u1", "c", 3, "impression", None),  # impression only: not seen
        ("u1", "d", 4, "dislike", None),
        ("u1", "b", 5, "watch", 85.0),  # b completed later
        ("u2", "c", 1, "like", None),
        ("u2", "a", 6, "watch", 100.0),
    ]
)




@pytest.fixture
def tiny() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events, videos) of the hand-worked case."""
    return TINY, VIDEOS
