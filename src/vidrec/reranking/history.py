"""What a frame of past events says about the users of a frame of candidates (offline use).

A request carries its user's history already (:class:`~vidrec.request.Request`: the dislikes
of each creator and the latest, completions and their last watch, from the online store). For
frames of many users -- tests, batch tools -- these helpers derive the same from an
events frame, reading only the requested users' events before ``now``: a request never
sees its own future.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "video_id", "ts", "event")


def _now(now: datetime) -> pl.Expr:
    return pl.lit(now.astimezone(UTC)).cast(pl.Datetime("us", "UTC"))


def check_events(events: pl.DataFrame) -> None:
    """Refuse an events frame without the columns the history rules read."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(
            f"the events frame has no column {', '.join(map(repr, missing))}; pass the users' past "
            "events (user_id, video_id, ts, event, watch_seconds)"
        )


def user_events(events: pl.DataFrame, user_ids: pl.Series, now: datetime) -> pl.DataFrame:
    """The requested users' dislikes and watches before ``now``, only the columns the rules read.

    One columnar ``is_in`` on ``user_id``: every later step works on the few rows left.
    """
    wanted = [c for c in (*EVENT_COLUMNS, "watch_seconds") if c in events.columns]
    mine = events.select(wanted).filter(pl.col("user_id").is_in(user_ids.unique().implode()))
    return mine.filter(
        pl.col("event").is_in(["dislike", "watch"]) & (pl.col("ts").cast(pl.Datetime("us", "UTC")) < _now(now))
    )


def last_dislikes(events: pl.DataFrame, videos: pl.DataFrame) -> pl.DataFrame:
    """``user_id, creator_id, last_us, dislikes``: each user's latest dislike per creator and how many
    (``user_events`` rows), as the store's user x creator table counts them."""
    creators = videos.select("video_id", "creator_id").unique(subset="video_id", keep="first")
    return (
        events.filter(pl.col("event") == "dislike")
        .join(creators, on="video_id", how="inner")
        .group_by("user_id", "creator_id")
        .agg(last_us=pl.col("ts").cast(pl.Datetime("us", "UTC")).dt.epoch("us").max(), dislikes=pl.len())
    )


def completions(events: pl.DataFrame, videos: pl.DataFrame) -> pl.DataFrame:
    """``user_id, video_id, last_us``: videos each user completed, with their last watch (``user_events`` rows)."""
    if "watch_seconds" not in events.columns:
        return pl.DataFrame(schema={"user_id": pl.String, "video_id": pl.String, "last_us": pl.Int64})
    durations = videos.select("video_id", "duration_seconds").unique(subset="video_id", keep="first")
    return (
        events.filter(pl.col("event") == "watch")
        .join(durations, on="video_id", how="inner")
        .with_columns(done=(pl.col("watch_seconds") / pl.col("duration_seconds")) >= COMPLETION_THRESHOLD)
        .group_by("user_id", "video_id")
        .agg(pl.col("done").any(), last_us=pl.col("ts").cast(pl.Datetime("us", "UTC")).dt.epoch("us").max())
        .filter(pl.col("done"))
        .select("user_id", "video_id", "last_us")
    )


def creator_watches(events: pl.DataFrame, videos: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """``creator_id, watches``: watch events before ``now`` per creator (only creators watched)."""
    watched = events.select("video_id", "event", "ts").filter(
        (pl.col("event") == "watch") & (pl.col("ts").cast(pl.Datetime("us", "UTC")) < _now(now))
    )
    per_video = watched.group_by("video_id").agg(pl.len().alias("watches"))
    creators = videos.select("video_id", "creator_id").unique(subset="video_id", keep="first")
    return per_video.join(creators, on="video_id", how="inner").group_by("creator_id").agg(pl.col("watches").sum())
