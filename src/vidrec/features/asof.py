"""The two primitives of every point-in-time feature: cumulate counts per key over time, and
read them as of a time strictly before each query row.

Both :mod:`vidrec.features.point_in_time` and :mod:`vidrec.features.crosses` build their
tables and read them with these, so "strictly before ts" is written once.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from vidrec.data.schema import TIMESTAMP


def cumulate(
    ev: pl.DataFrame | pl.LazyFrame, keys: list[str], aggs: dict[str, pl.Expr], since: datetime | None = None
) -> pl.DataFrame:
    """Per (keys, ts): running totals of ``aggs`` up to and including ts, sorted by ts.

    With ``since`` the table answers only for times at or after it: the events before it
    are summed into one row per key (at that key's last earlier ts), so the table grows with
    the events from ``since`` on, not with the whole log. The sums run on Polars' streaming
    engine, so the events before ``since`` (a lazy join, for example) are never all held.
    String keys come back as ``pl.Categorical`` and per-user integer counts as Int32.
    """
    lazy = ev.lazy()
    schema = lazy.collect_schema()
    # string keys as categorical codes: the largest tables (user x tag) hold a 4-byte code
    # per key instead of the string, and their group-bys and as-of joins compare integers
    lazy = lazy.with_columns(pl.col(k).cast(pl.Categorical) for k in keys if schema[k] == pl.String)
    if since is None:
        per_ts = lazy.group_by(*keys, "ts").agg(**aggs).collect()
    else:
        at = pl.lit(since).cast(TIMESTAMP)
        head = lazy.filter(pl.col("ts") < at)
        summed = {**aggs, "ts": pl.col("ts").max()}
        head = head.group_by(*keys).agg(**summed) if keys else head.select(**summed)
        tail = lazy.filter(pl.col("ts") >= at).group_by(*keys, "ts").agg(**aggs)
        cols = [*keys, "ts", *aggs]
        parts = [q.select(cols).collect(engine="streaming") for q in (head, tail)]
        per_ts = pl.concat(parts).filter(pl.col("ts").is_not_null())
    if "user_id" in keys:  # one user's running totals fit 32 bits; a global one (a tag's views) may not
        per_ts = per_ts.with_columns(pl.col(c).cast(pl.Int32) for c in aggs if per_ts.schema[c] == pl.Int64)
    # one sort by time, then running sums within each key in that order: a sort by the keys
    # first would hold another copy of the largest table (user x tag) at once
    per_ts = per_ts.sort("ts")
    running = [pl.col(c).cum_sum().over(keys) if keys else pl.col(c).cum_sum() for c in aggs]
    return per_ts.with_columns(running)


def asof(
    left: pl.DataFrame, right: pl.DataFrame, keys: list[str], prefix: str, cols: list[str], fill: bool = False
) -> pl.DataFrame:
    """Attach ``cols`` (renamed ``prefix + col``) of the last ``right`` row with ts strictly before
    each left row's ts; both sorted by ts. ``fill``: no such row reads as 0.0. Keys ``right``
    holds as categorical codes (:func:`cumulate`) are matched as codes; ``left`` keeps its own
    columns and types. Only the rows of ``right`` before the latest left ts take part, so a
    block of early rows joins a prefix of the table, not all of it."""
    if left.height:
        right = right.head(right["ts"].search_sorted(left["ts"].max(), side="left"))
    r = right.select(*keys, pl.col("ts").alias("_ts"), *[pl.col(c).alias(prefix + c) for c in cols])
    theirs, mine = r.schema, left.schema
    coded = {k: f"_by_{k}" for k in keys if theirs[k] != mine[k]}
    left = left.with_columns(pl.col(k).cast(theirs[k]).alias(tmp) for k, tmp in coded.items())
    by = [coded.get(k, k) for k in keys]
    out = left.join_asof(
        r, left_on="ts", right_on="_ts", by_left=by or None, by_right=keys or None, strategy="backward",
        allow_exact_matches=False, check_sortedness=False,
    ).drop("_ts", *coded.values())  # fmt: skip
    if fill:
        out = out.with_columns(pl.col(prefix + c).fill_null(0).cast(pl.Float64) for c in cols)
    return out
