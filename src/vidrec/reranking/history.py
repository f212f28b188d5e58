"""What a user's past says about a candidate: creator fatigue and the re-watch policy.

Feedback fatigue: after a user dislikes a video, that creator's other videos are
filtered for ``filter_days`` and then scaled by a factor that rises linearly from
``floor`` to 1 over ``recover_days`` (X's home-mixer: 14 days filtered, 140 to recover).
The most recent dislike of a creator counts.

Re-watch: a watched video stays hidden unless the user *completed* it at least
``after_days`` ago and its category is one the policy covers.

Both read the user's past events (``events``: ``user_id, video_id, ts, event`` and, for
re-watch, ``watch_seconds``); without them, dislike times may come from a users column
``disliked_at`` (a list of times parallel to ``disliked``). Events at or after ``now``
are ignored, so a request never sees its own future.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD

_US_PER_DAY = 86_400 * 1_000_000
FATIGUE = "__fatigue"
"""Private column: the fatigue factor of a candidate's creator for its user (1.0 when none)."""
REWATCH = "__rewatch"
"""Private column: True when the re-watch policy lets a seen video back in."""
EVENT_COLUMNS: tuple[str, ...] = ("user_id", "video_id", "ts", "event")


def _now(now: datetime) -> pl.Expr:
    return pl.lit(now.astimezone(timezone.utc)).cast(pl.Datetime("us", "UTC"))


def _days_before(ts: pl.Expr, now: datetime) -> pl.Expr:
    """Days from ``ts`` to ``now`` (>= 0 for past events)."""
    return (_now(now) - ts.cast(pl.Datetime("us", "UTC"))).dt.total_microseconds() / _US_PER_DAY


def fatigue_factor(days: pl.Expr, filter_days: float, recover_days: float, floor: float) -> pl.Expr:
    """0 during the filter period, then ``floor`` rising linearly to 1 over ``recover_days``."""
    if recover_days > 0:
        ramp = (floor + (1.0 - floor) * (days - filter_days) / recover_days).clip(upper_bound=1.0)
    else:
        ramp = pl.lit(1.0)
    return pl.when(days < filter_days).then(pl.lit(0.0)).otherwise(ramp)


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

    The re-ranker calls this first thing, so a request over a large log scans it once
    (a columnar ``is_in`` on ``user_id``) and every later step works on the few rows left.
    """
    wanted = [c for c in (*EVENT_COLUMNS, "watch_seconds") if c in events.columns]
    mine = events.select(wanted).filter(pl.col("user_id").is_in(user_ids.unique().implode()))
    return mine.filter(
        pl.col("event").is_in(["dislike", "watch"]) & (pl.col("ts").cast(pl.Datetime("us", "UTC")) < _now(now))
    )


def _past(events: pl.DataFrame, now: datetime, users: pl.Series) -> pl.DataFrame:
    return events.filter(
        (pl.col("ts").cast(pl.Datetime("us", "UTC")) < _now(now)) & pl.col("user_id").is_in(users.implode())
    )


def _catalogue_of(videos: pl.DataFrame, rows: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """Catalogue ``columns`` of the videos in ``rows`` only (one row per video, first wins)."""
    mine = videos.join(rows.select(pl.col("video_id").unique()), on="video_id", how="semi")
    return mine.select("video_id", *columns).unique(subset="video_id", keep="first", maintain_order=True)


def dislike_times(
    users: pl.DataFrame, videos: pl.DataFrame, now: datetime, events: pl.DataFrame | None
) -> pl.DataFrame | None:
    """``user_id, creator_id, ts`` of each user's latest dislike per creator, or None if unknown."""
    if events is not None:
        pairs = _past(events, now, users["user_id"]).filter(pl.col("event") == "dislike")
        pairs = pairs.select("user_id", "video_id", "ts")
    elif "disliked_at" in users.columns:
        pairs = users.select("user_id", pl.col("disliked").alias("video_id"), pl.col("disliked_at").alias("ts"))
        pairs = pairs.explode("video_id", "ts").drop_nulls()
    else:
        return None
    creators = _catalogue_of(videos, pairs, "creator_id")
    return (
        pairs.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        .filter(pl.col("ts") < _now(now))
        .join(creators, on="video_id", how="inner")
        .group_by("user_id", "creator_id")
        .agg(pl.col("ts").max())
    )


def creator_fatigue(
    frame: pl.DataFrame,
    creator_col: str,
    dislikes: pl.DataFrame | None,
    now: datetime,
    filter_days: float,
    recover_days: float,
    floor: float,
) -> pl.DataFrame:
    """Add :data:`FATIGUE` to candidates (with their creator in ``creator_col``)."""
    if dislikes is None or dislikes.height == 0:
        return frame.with_columns(pl.lit(1.0).alias(FATIGUE))
    factors = dislikes.select(
        "user_id",
        pl.col("creator_id").alias(creator_col),
        fatigue_factor(_days_before(pl.col("ts"), now), filter_days, recover_days, floor).alias(FATIGUE),
    )
    out = frame.join(factors, on=["user_id", creator_col], how="left", maintain_order="left")
    return out.with_columns(pl.col(FATIGUE).fill_null(1.0))


def rewatchable(
    users: pl.DataFrame,
    videos: pl.DataFrame,
    now: datetime,
    events: pl.DataFrame | None,
    after_days: float | None,
    categories: tuple[str, ...],
) -> pl.DataFrame | None:
    """``user_id, video_id`` pairs the re-watch policy allows back, or None when it is off."""
    if after_days is None or events is None or "watch_seconds" not in events.columns:
        return None
    watched = _past(events, now, users["user_id"]).filter(pl.col("event") == "watch")
    catalogue = _catalogue_of(videos, watched, "duration_seconds", "category")
    if categories:
        catalogue = catalogue.filter(pl.col("category").is_in(list(categories)))
    watches = (
        watched.join(catalogue, on="video_id", how="inner")
        .with_columns(done=(pl.col("watch_seconds") / pl.col("duration_seconds")) >= COMPLETION_THRESHOLD)
        .group_by("user_id", "video_id")
        .agg(pl.col("done").any(), last=pl.col("ts").max())
    )
    allowed = watches.filter(pl.col("done") & (_days_before(pl.col("last"), now) >= after_days))
    return allowed.select("user_id", "video_id", pl.lit(True).alias(REWATCH))
