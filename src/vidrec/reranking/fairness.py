"""Which creators the fairness minimum protects: small ones and new ones.

A creator is *small* when their watches (in the events given, before ``now``) are at
or below the ``quantile`` of all catalogue creators' watches (creators never watched
count as 0), and *new* when their first upload is less than ``new_days`` old. A slate
owes ``ceil(fair_min_share * k)`` of its slots to their videos when the candidates allow.

Watch counts per creator are a statistic of the whole log, so the re-ranker computes
them once per (log, catalogue, time) with :func:`creator_watches` and keeps them, rather
than once per request.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from vidrec.reranking.freshness import upload_age_days


def creator_watches(events: pl.DataFrame, videos: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """``creator_id, watches``: watch events before ``now`` per creator (only creators watched)."""
    cut = pl.lit(now.astimezone(timezone.utc)).cast(pl.Datetime("us", "UTC"))
    watched = events.select("video_id", "event", "ts").filter(
        (pl.col("event") == "watch") & (pl.col("ts").cast(pl.Datetime("us", "UTC")) < cut)
    )
    per_video = watched.group_by("video_id").agg(pl.len().alias("watches"))
    creators = videos.select("video_id", "creator_id").unique(subset="video_id", keep="first")
    return (
        per_video.join(creators, on="video_id", how="inner")
        .group_by("creator_id")
        .agg(pl.col("watches").sum())
    )


def protected_creators(
    videos: pl.DataFrame, watches: pl.DataFrame | None, now: datetime, quantile: float, new_days: float
) -> pl.DataFrame:
    """``creator_id, protected`` (bool) for every creator of the catalogue.

    ``watches`` comes from :func:`creator_watches`; without it only new creators count.
    """
    firsts = videos.group_by("creator_id").agg(pl.col("uploaded_at").min().alias("__first"))
    new = upload_age_days(pl.col("__first"), now) < new_days
    if watches is None:
        return firsts.select("creator_id", new.alias("protected"))
    stats = firsts.join(watches.rename({"watches": "__watches"}), on="creator_id", how="left")
    stats = stats.with_columns(pl.col("__watches").fill_null(0))
    limit = stats["__watches"].quantile(quantile, interpolation="lower")
    small = pl.col("__watches") <= (limit if limit is not None else 0)
    return stats.select("creator_id", (small | new).alias("protected"))
