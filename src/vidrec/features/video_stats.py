"""Per-video engagement statistics as of a point in time, smoothed towards global priors.

Used by the trending generator and as features by the scoring stage.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, with_derived

PRIOR_WEIGHT = 20.0
"""Pseudo-views of the global rate added to every video's rates (beta-binomial smoothing)."""


def _as_of_lit(events: pl.DataFrame, videos: pl.DataFrame, as_of: datetime | None) -> pl.Expr:
    """``as_of``, or the time of the last event (the upload time of the newest video if none)."""
    dtype = videos.schema["uploaded_at"]
    if as_of is not None:
        return pl.lit(as_of).cast(dtype)
    last = events["ts"].max() if events.height else videos["uploaded_at"].max()
    return pl.lit(last).cast(dtype)


def video_stats(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    as_of: datetime | None = None,
    prior_weight: float = PRIOR_WEIGHT,
    threshold: float = COMPLETION_THRESHOLD,
) -> pl.DataFrame:
    """One row per video of ``videos``: counts, smoothed rates and age, from events before ``as_of``.

    Columns: ``video_id, impressions, views, completions, likes, dislikes,
    completion_rate, like_rate, dislike_rate, age_days``. Rates are
    ``(count + prior_weight * global_rate) / (views + prior_weight)`` so that a video
    with two views does not rank above one with two thousand.
    """
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be non-negative, got {prior_weight}")
    ev = events
    if as_of is not None:
        ev = ev.filter(pl.col("ts") < pl.lit(as_of).cast(ev.schema["ts"]))
    ev = with_derived(ev, videos, threshold)
    e = pl.col("event")
    counts = ev.group_by("video_id").agg(
        impressions=(e == "impression").sum(),
        views=(e == "watch").sum(),
        completions=pl.col("completed").sum(),
        likes=(e == "like").sum(),
        dislikes=(e == "dislike").sum(),
    )
    count_cols = ["impressions", "views", "completions", "likes", "dislikes"]
    out = videos.select("video_id", "uploaded_at").join(counts, on="video_id", how="left")
    out = out.with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in count_cols)
    total_views = max(int(out["views"].sum()), 1)
    rates = {
        "completion_rate": "completions",
        "like_rate": "likes",
        "dislike_rate": "dislikes",
    }
    exprs = []
    for rate, count in rates.items():
        prior = float(out[count].sum()) / total_views
        exprs.append(
            ((pl.col(count) + prior_weight * prior) / (pl.col("views") + prior_weight))
            .fill_nan(prior)
            .alias(rate)
        )
    age = (_as_of_lit(events, videos, as_of) - pl.col("uploaded_at")).dt.total_seconds() / 86400.0
    return out.with_columns(*exprs, age_days=age.cast(pl.Float64)).drop("uploaded_at")
