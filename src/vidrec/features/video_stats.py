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

import numpy as np
import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP, with_derived
from vidrec.features import derive

PRIOR_WEIGHT = 20.0
"""Pseudo-views of the global rate added to every video's rates (beta-binomial smoothing)."""

COUNTS = derive.COUNTS
RATES = derive.RATES

VIDEO_STATS_SCHEMA: dict[str, pl.DataType] = {
    "video_id": pl.String(),
    **{c: pl.Int64() for c in COUNTS},
    **{r: pl.Float64() for r in RATES},
    "age_days": pl.Float64(),
}
"""Columns of :func:`video_stats` and :func:`derive_video_stats`."""




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
    raw = {c: out[c].to_numpy() for c in COUNTS}
    rates = derive.video_rates(raw, {c: float(totals.get(c, 0)) for c in COUNTS}, prior_weight)
    uploaded = out["uploaded_at"].cast(TIMESTAMP).dt.epoch("us").cast(pl.Float64).fill_null(np.nan).to_numpy()
    at = np.nan if as_of is None else float(pl.select(pl.lit(as_of, dtype=TIMESTAMP).dt.epoch("us")).item())
    age = derive.age_days(at, uploaded)
    return out.with_columns(
        *(pl.Series(r, v, dtype=pl.Float64) for r, v in rates.items()),
        pl.Series("age_days", age, dtype=pl.Float64).fill_nan(None),
    ).select(pl.col(c).cast(t) for c, t in VIDEO_STATS_SCHEMA.items())


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
