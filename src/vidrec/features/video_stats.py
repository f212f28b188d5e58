"""Per-video engagement statistics: counted from events, then derived into smoothed rates and age.

The two halves are separate because three places need them at different times and must
agree exactly: :func:`video_stats` (batch, from an event log), the online store
(:mod:`vidrec.features.store`, which keeps only the raw counts, merged event by event, and
derives the rest per read) and the ranker's point-in-time features
(:mod:`vidrec.features.point_in_time`, counts as of each example's time). Counting is
:func:`count_aggs` / :func:`count_video_events`; deriving is :func:`derive_video_stats`,
built from the expressions :func:`video_rates` and :func:`age_days`, which the
point-in-time features use directly on their per-row counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP, with_derived

PRIOR_WEIGHT = 20.0
"""Pseudo-views of the global rate added to every video's rates (beta-binomial smoothing)."""

COUNTS: tuple[str, ...] = ("impressions", "views", "completions", "likes", "dislikes")
"""Raw per-video event counts, the only per-video values that are stored or accumulated."""

RATES: dict[str, tuple[str, str]] = {
    "completion_rate": ("completions", "views"),
    "like_rate": ("likes", "views"),
    "dislike_rate": ("dislikes", "views"),
    "watch_rate": ("views", "impressions"),
}
"""Smoothed rates: each is a count divided by another count. The watch rate (share of
impressions followed by a watch) is the exposure-corrected popularity where a log has
impressions; without them it is the prior for every video."""

VIDEO_STATS_SCHEMA: dict[str, pl.DataType] = {
    "video_id": pl.String(),
    **{c: pl.Int64() for c in COUNTS},
    **{r: pl.Float64() for r in RATES},
    "age_days": pl.Float64(),
}
"""Columns of :func:`video_stats`, :func:`derive_video_stats` and ``OnlineStore.get_video_stats``."""

_DAY_US = 86_400e6


class VideoStatsSource(Protocol):
    """Anything that answers current video statistics by id (the online store does)."""

    def get_video_stats(self, video_ids: list[str] | pl.Series, now: datetime | None = None) -> pl.DataFrame:
        """One row per requested id, :data:`VIDEO_STATS_SCHEMA` columns, age at ``now``."""
        ...


# ---- counting ------------------------------------------------------------------------------


def count_aggs() -> dict[str, pl.Expr]:
    """Aggregations turning events with ``event`` and ``completed`` (``with_derived``) into :data:`COUNTS`."""
    e = pl.col("event")
    return {
        "impressions": (e == "impression").sum().cast(pl.Int64),
        "views": (e == "watch").sum().cast(pl.Int64),
        "completions": pl.col("completed").sum().cast(pl.Int64),
        "likes": (e == "like").sum().cast(pl.Int64),
        "dislikes": (e == "dislike").sum().cast(pl.Int64),
    }


def count_video_events(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    as_of: datetime | None = None,
    threshold: float = COMPLETION_THRESHOLD,
) -> pl.DataFrame:
    """``video_id, *COUNTS`` for every video with events strictly before ``as_of`` (all if None)."""
    ev = events
    if as_of is not None:
        ev = ev.filter(pl.col("ts") < pl.lit(as_of).cast(ev.schema["ts"]))
    return with_derived(ev, videos, threshold).group_by("video_id").agg(**count_aggs())


# ---- deriving ------------------------------------------------------------------------------


def global_rate(count_total: pl.Expr, views_total: pl.Expr) -> pl.Expr:
    """The platform-wide rate every per-view rate shrinks towards, Laplace-smoothed (defined with no views)."""
    return (count_total.cast(pl.Float64) + 1.0) / (views_total.cast(pl.Float64) + 2.0)


def _expr(x: str | pl.Expr) -> pl.Expr:
    return pl.col(x) if isinstance(x, str) else x


def smoothed_rate(count: str | pl.Expr, total: str | pl.Expr, prior: pl.Expr, weight: float) -> pl.Expr:
    """Beta-binomial smoothing ``(count + weight * prior) / (total + weight)``; the prior when both
    are 0. ``count`` and ``total`` are expressions or column names."""
    denominator = _expr(total).cast(pl.Float64) + weight
    rate = (_expr(count).cast(pl.Float64) + weight * prior) / denominator
    return pl.when(denominator > 0).then(rate).otherwise(prior)


def watch_rate(views: str | pl.Expr, impressions: str | pl.Expr, prior: pl.Expr, weight: float) -> pl.Expr:
    """Smoothed share of impressions followed by a watch; watches beyond the impressions (a log
    that misses some impressions) do not push it above 1."""
    return smoothed_rate(pl.min_horizontal(_expr(views), _expr(impressions)), impressions, prior, weight)


def global_watch_rate(views_total: pl.Expr, impressions_total: pl.Expr) -> pl.Expr:
    """The platform-wide watch rate every per-video or per-user watch rate shrinks towards."""
    return global_rate(pl.min_horizontal(views_total, impressions_total), impressions_total)


def video_rates(
    counts: Mapping[str, pl.Expr], totals: Mapping[str, pl.Expr], prior_weight: float
) -> dict[str, pl.Expr]:
    """The :data:`RATES` of one video from its counts and the platform totals (both by :data:`COUNTS` name).

    ``(count + prior_weight * global_rate) / (per + prior_weight)``, so that a video with
    two views does not rank above one with two thousand.
    """
    out = {}
    for rate, (count, per) in RATES.items():
        if per == "impressions":
            prior = global_watch_rate(totals[count], totals[per])
            out[rate] = watch_rate(counts[count], counts[per], prior, prior_weight)
        else:
            prior = global_rate(totals[count], totals[per])
            out[rate] = smoothed_rate(counts[count], counts[per], prior, prior_weight)
    return out


def age_days(at: pl.Expr, uploaded_at: pl.Expr) -> pl.Expr:
    """Days from upload to ``at`` (microsecond precision; null for an unknown upload time)."""
    return ((at - uploaded_at).dt.total_microseconds() / _DAY_US).cast(pl.Float64)


def derive_video_stats(
    counts: pl.DataFrame,
    as_of: datetime | None,
    prior_weight: float = PRIOR_WEIGHT,
    totals: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """:data:`VIDEO_STATS_SCHEMA` rows from raw counts: the one definition of rates and age.

    ``counts`` is ``video_id, *COUNTS, uploaded_at`` (null counts are zeros; a null upload
    time, a video outside the catalogue, gives a null age). ``totals`` are the platform-wide
    sums of the counts, by default those of ``counts`` (right when it covers the catalogue).
    Age is measured at ``as_of`` (null if None).
    """
    if not prior_weight >= 0:
        raise ValueError(f"prior_weight must be non-negative, got {prior_weight}")
    out = counts.with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in COUNTS)
    if totals is None:
        totals = {c: int(out[c].sum()) for c in COUNTS}
    total_exprs = {c: pl.lit(int(totals.get(c, 0)), dtype=pl.Int64) for c in COUNTS}
    rates = video_rates({c: pl.col(c) for c in COUNTS}, total_exprs, prior_weight)
    at = pl.lit(as_of, dtype=TIMESTAMP) if as_of is not None else pl.lit(None, dtype=TIMESTAMP)
    age = age_days(at, pl.col("uploaded_at").cast(TIMESTAMP))
    return out.with_columns(**rates, age_days=age).select(pl.col(c).cast(t) for c, t in VIDEO_STATS_SCHEMA.items())


def video_stats(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    as_of: datetime | None = None,
    prior_weight: float = PRIOR_WEIGHT,
    threshold: float = COMPLETION_THRESHOLD,
) -> pl.DataFrame:
    """One row per video of ``videos``: counts, smoothed rates and age, from events before ``as_of``.

    Columns :data:`VIDEO_STATS_SCHEMA`. Without ``as_of`` every event counts and age is
    measured at the last event (the newest upload if there are none).
    """
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be non-negative, got {prior_weight}")
    counts = count_video_events(events, videos, as_of, threshold)
    rows = videos.select("video_id", "uploaded_at").join(counts, on="video_id", how="left", maintain_order="left")
    if as_of is None:
        as_of = events["ts"].max() if events.height else videos["uploaded_at"].max()  # type: ignore[assignment]
    return derive_video_stats(rows, as_of, prior_weight)
