"""A user's state (history, seen, disliked) as of a point in time.

The same function builds the state used to make training examples and the state
read at request time, so the two can never drift apart.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, with_derived

STATE_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "recent_completed": pl.List(pl.String()),
    "recent_watched": pl.List(pl.String()),
    "seen": pl.List(pl.String()),
    "disliked": pl.List(pl.String()),
}


def _before(events: pl.DataFrame, as_of: datetime | None) -> pl.DataFrame:
    """Events strictly before ``as_of`` (all events when it is None)."""
    if as_of is None:
        return events
    return events.filter(pl.col("ts") < pl.lit(as_of).cast(events.schema["ts"]))


def completed_pairs(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    as_of: datetime | None = None,
    threshold: float = COMPLETION_THRESHOLD,
) -> pl.DataFrame:
    """One row per (user, video) the user completed: ``user_id, video_id, ts``.

    ``ts`` is when the user *first* completed the video; user histories are ordered
    by it both in training examples and in the serving state.
    """
    ev = with_derived(_before(events, as_of).filter(pl.col("event") == "watch"), videos, threshold)
    return (
        ev.filter(pl.col("completed"))
        .group_by("user_id", "video_id")
        .agg(ts=pl.col("ts").min())
        .sort("user_id", "ts", "video_id")
    )


def _ordered_lists(pairs: pl.DataFrame, name: str, history_len: int | None) -> pl.DataFrame:
    """Collapse (user_id, video_id, ts) pairs into one time-ordered list per user."""
    ordered = pairs.sort("user_id", "ts", "video_id")
    col = pl.col("video_id")
    agg = col.tail(history_len) if history_len is not None else col
    return ordered.group_by("user_id", maintain_order=True).agg(agg.alias(name))


def build_user_state(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    as_of: datetime | None = None,
    history_len: int = 50,
    threshold: float = COMPLETION_THRESHOLD,
) -> pl.DataFrame:
    """One row per user with their history as of ``as_of`` (only events with ts < as_of).

    Columns: ``user_id``; ``recent_completed`` and ``recent_watched`` (distinct video
    ids ordered by the first time the user completed / watched them, most recent last,
    at most ``history_len``); ``seen`` (every video watched, liked or disliked) and
    ``disliked``. Candidate generators exclude ``seen`` and ``disliked``.
    """
    if history_len < 1:
        raise ValueError(f"history_len must be at least 1, got {history_len}")
    ev = _before(events, as_of).filter(pl.col("event") != "impression")
    users = ev.select("user_id").unique().sort("user_id")
    firsts = ev.group_by("user_id", "video_id", "event").agg(ts=pl.col("ts").min())
    watched = firsts.filter(pl.col("event") == "watch").drop("event")
    disliked = firsts.filter(pl.col("event") == "dislike").drop("event")
    seen = firsts.group_by("user_id", "video_id").agg(ts=pl.col("ts").min())
    parts = [
        _ordered_lists(completed_pairs(ev, videos, None, threshold), "recent_completed", history_len),
        _ordered_lists(watched, "recent_watched", history_len),
        _ordered_lists(seen, "seen", None),
        _ordered_lists(disliked, "disliked", None),
    ]
    out = users
    for part in parts:
        out = out.join(part, on="user_id", how="left")
    empty = pl.lit([], dtype=pl.List(pl.String()))
    return out.with_columns(pl.col(c).fill_null(empty) for c in list(STATE_SCHEMA)[1:]).select(
        pl.col(c).cast(t) for c, t in STATE_SCHEMA.items()
    )


def empty_user_state(user_ids: list[str] | pl.Series) -> pl.DataFrame:
    """The state of users with no history (cold users), same columns as :func:`build_user_state`."""
    ids = pl.Series("user_id", user_ids, dtype=pl.String)
    empty = pl.lit([], dtype=pl.List(pl.String()))
    return ids.to_frame().with_columns(empty.alias(c) for c in list(STATE_SCHEMA)[1:])
