"""The canonical data model: three tables and the derived signals, defined once.

A data directory holds ``events.parquet``, ``videos.parquet`` and ``users.parquet``.
Every other part of vidrec reads these tables through this module's constants, so a
column name or type is spelled in exactly one place.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

import polars as pl

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

TIMESTAMP = pl.Datetime("us", "UTC")

EVENT_KINDS: tuple[str, ...] = ("impression", "watch", "like", "dislike")
"""What a user can do to a video. ``watch`` carries ``watch_seconds``."""

EVENTS_REQUIRED: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "video_id": pl.String(),
    "ts": TIMESTAMP,
    "event": pl.String(),
    "watch_seconds": pl.Float64(),
}
EVENTS_OPTIONAL: dict[str, pl.DataType] = {}

VIDEOS_REQUIRED: dict[str, pl.DataType] = {
    "video_id": pl.String(),
    "creator_id": pl.String(),
    "category": pl.String(),
    "tags": pl.List(pl.String()),
    "duration_seconds": pl.Float64(),
    "uploaded_at": TIMESTAMP,
    "available": pl.Boolean(),
}
VIDEOS_OPTIONAL: dict[str, pl.DataType] = {
    "title": pl.String(),
    "language": pl.String(),
}

USERS_REQUIRED: dict[str, pl.DataType] = {"user_id": pl.String()}
USERS_OPTIONAL: dict[str, pl.DataType] = {
    "country": pl.String(),
    "age_bucket": pl.String(),
    "signed_up_at": TIMESTAMP,
}

TABLES: dict[str, tuple[dict[str, pl.DataType], dict[str, pl.DataType]]] = {
    "events": (EVENTS_REQUIRED, EVENTS_OPTIONAL),
    "videos": (VIDEOS_REQUIRED, VIDEOS_OPTIONAL),
    "users": (USERS_REQUIRED, USERS_OPTIONAL),
}
"""Table name -> (required columns, optional columns). Extra columns are kept."""

KEYS: dict[str, str] = {"videos": "video_id", "users": "user_id"}

COMPLETION_THRESHOLD = 0.8
"""Default share of a video that counts as 'completed' (the scoring objective)."""

EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
"""Event times at or before this are rejected: a zero or negative epoch is a logging bug."""

EARLIEST_UPLOAD = datetime(1900, 1, 1, tzinfo=UTC)
"""Upload and sign-up times before this are rejected (films from the 1930s are fine)."""
MAX_WATCH_SECONDS = 7 * 86_400.0
"""One watch lasts at most a week: larger values are a unit or logging error (and would
overflow the sums of seconds watched)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(when: datetime) -> int:
    """A datetime as integer microseconds since the epoch (a naive datetime is read as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> datetime:
    """Epoch microseconds as a UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(us))


def completion(watch_seconds: pl.Expr, duration_seconds: pl.Expr) -> pl.Expr:
    """Raw completion, ``watch_seconds / duration_seconds``; above 1 means a rewatch or loop."""
    return (watch_seconds / duration_seconds).alias("completion")


def with_derived(events: Frame, videos: pl.DataFrame, threshold: float = COMPLETION_THRESHOLD) -> Frame:
    """Add ``completion``, ``interacted``, ``completed`` and ``disliked`` to each event.

    ``interacted`` is any watch or like; ``completed`` is a watch with completion at or
    above ``threshold``; ``disliked`` is a dislike event. Non-watch events have a null
    completion and ``completed`` false. A LazyFrame stays lazy (a query over a large log).
    """
    if not 0.0 < threshold:
        raise ValueError(f"completion threshold must be positive, got {threshold}")
    durations = videos.select("video_id", "duration_seconds")
    out = events.join(durations.lazy() if isinstance(events, pl.LazyFrame) else durations, on="video_id", how="left")
    ev = pl.col("event")
    return out.with_columns(
        completion(pl.col("watch_seconds"), pl.col("duration_seconds")),
    ).with_columns(
        interacted=ev.is_in(["watch", "like"]),
        completed=(ev == "watch") & (pl.col("completion") >= threshold).fill_null(False),
        disliked=ev == "dislike",
    ).drop("duration_seconds")

