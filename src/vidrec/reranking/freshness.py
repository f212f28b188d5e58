"""Freshness: lift recently uploaded videos, with a boost that halves every half-life.

New uploads have little history, so the models under-score them; a bounded boost
that decays with upload age gives them a chance to be seen without swamping the
model's judgement (at most ``1 + fresh_boost`` times the score).
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from vidrec.reranking.filters import UPLOADED

_US_PER_DAY = 86_400 * 1_000_000


def upload_age_days(uploaded_at: pl.Expr, now: datetime) -> pl.Expr:
    """Days since upload as of ``now``; uploads dated after ``now`` count as age 0."""
    now_utc = pl.lit(now.astimezone(timezone.utc)).cast(pl.Datetime("us", "UTC"))
    age_us = (now_utc - uploaded_at.cast(pl.Datetime("us", "UTC"))).dt.total_microseconds()
    return (age_us / _US_PER_DAY).clip(lower_bound=0.0)


def freshness_multiplier(
    uploaded_at: pl.Expr, now: datetime, boost: float, half_life_days: float
) -> pl.Expr:
    """``1 + boost * 0.5 ** (age_days / half_life_days)``: 1 + boost at upload, -> 1 when old."""
    age = upload_age_days(uploaded_at, now)
    return 1.0 + boost * pl.lit(0.5).pow(age / half_life_days)


FRESH = "__fresh"
"""Private column holding each candidate's freshness multiplier (for its reason code)."""


def fresh_code(multiplier: pl.Expr) -> pl.Expr:
    """Reason code ``fresh_boost:x1.18`` (two decimals), null when it rounds to x1.00."""
    hundredths = (multiplier * 100).round(0).cast(pl.Int64)
    code = pl.format(
        "fresh_boost:x{}.{}",
        hundredths // 100,
        (hundredths % 100).cast(pl.String).str.zfill(2),
    )
    return pl.when(hundredths > 100).then(code).otherwise(pl.lit(None, dtype=pl.String))


def apply_freshness(
    frame: pl.DataFrame, now: datetime, boost: float, half_life_days: float
) -> pl.DataFrame:
    """Add ``final_score`` (score with the freshness boost) and the multiplier :data:`FRESH`.

    A positive score is multiplied by the boost; a negative one is moved towards zero
    by the same share (``score + |score| * (multiplier - 1)``), so freshness always
    helps. Reason codes are written later, only for the rows that are returned.
    """
    mult = freshness_multiplier(pl.col(UPLOADED), now, boost, half_life_days)
    score = pl.col("score").cast(pl.Float64)
    out = frame.with_columns(mult.alias(FRESH))
    return out.with_columns((score + score.abs() * (pl.col(FRESH) - 1.0)).alias("final_score"))
