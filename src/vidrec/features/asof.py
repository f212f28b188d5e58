"""The two primitives of every point-in-time feature: cumulate counts per key over time, and
read them as of a time strictly before each query row.

Both :mod:`vidrec.features.point_in_time` and :mod:`vidrec.features.crosses` build their
tables and read them with these, so "strictly before ts" is written once.
"""

from __future__ import annotations

import polars as pl


def cumulate(ev: pl.DataFrame, keys: list[str], aggs: dict[str, pl.Expr]) -> pl.DataFrame:
    """Per (keys, ts): running totals of ``aggs`` up to and including ts, sorted by ts."""
    per_ts = ev.group_by(*keys, "ts").agg(**aggs).sort(*keys, "ts")
    running = [pl.col(c).cum_sum().over(keys) if keys else pl.col(c).cum_sum() for c in aggs]
    return per_ts.with_columns(running).sort("ts")


def asof(
    left: pl.DataFrame, right: pl.DataFrame, keys: list[str], prefix: str, cols: list[str], fill: bool = False
) -> pl.DataFrame:
    """Attach ``cols`` (renamed ``prefix + col``) of the last ``right`` row with ts strictly before
    each left row's ts; ``left`` must be sorted by ts. ``fill``: no such row reads as 0.0."""
    r = right.select(*keys, pl.col("ts").alias("_ts"), *[pl.col(c).alias(prefix + c) for c in cols])
    out = left.join_asof(
        r, left_on="ts", right_on="_ts", by=keys or None, strategy="backward",
        allow_exact_matches=False, check_sortedness=False,
    ).drop("_ts")  # fmt: skip
    if fill:
        out = out.with_columns(pl.col(prefix + c).fill_null(0).cast(pl.Float64) for c in cols)
    return out
