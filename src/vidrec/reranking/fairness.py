"""Which creators the fairness minimum protects: small ones and new ones.

A creator is *small* when their watches (in the events given, before ``now``) are at
or below the ``quantile`` of all catalogue creators' watches (creators never watched
count as 0), and *new* when their first upload is less than ``new_days`` old. A slate
owes ``ceil(fair_min_share * k)`` of its slots to their videos when the candidates allow.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from vidrec.reranking.freshness import upload_age_days


def protected_creators(
    videos: pl.DataFrame, events: pl.DataFrame | None, now: datetime, quantile: float, new_days: float
) -> pl.DataFrame:
    """``creator_id, protected`` (bool) for every creator of the catalogue."""
    firsts = videos.group_by("creator_id").agg(pl.col("uploaded_at").min().alias("__first"))
    new = upload_age_days(pl.col("__first"), now) < new_days
    if events is None:
        return firsts.select("creator_id", new.alias("protected"))
    cut = pl.lit(now.astimezone(timezone.utc)).cast(pl.Datetime("us", "UTC"))
    watches = (
        events.filter((pl.col("event") == "watch") & (pl.col("ts").cast(pl.Datetime("us", "UTC")) < cut))
        .join(videos.select("video_id", "creator_id").unique(subset="video_id"), on="video_id", how="inner")
        .group_by("creator_id")
        .agg(pl.len().alias("__watches"))
    )
    stats = firsts.join(watches, on="creator_id", how="left").with_columns(pl.col("__watches").fill_null(0))
    limit = stats["__watches"].quantile(quantile, interpolation="lower")
    small = pl.col("__watches") <= (limit if limit is not None else 0)
    return stats.select("creator_id", (small | new).alias("protected"))
