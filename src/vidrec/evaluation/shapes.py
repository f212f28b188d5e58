"""Log shapes vidrec must hold on: a log with one kind of information taken away.

Real logs come without likes, impressions or demographics, with one category for
everything, with creators as coarse as channels of hundreds of videos (or none), or with
times that carry no order. Each function here turns a full log (a simulated platform's)
into one of those, so the same defaults are trained and judged on every shape
(``tests/test_data_shapes.py``, ``benchmarks/end_to_end.py sim --shape``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import polars as pl

from vidrec.data.dataset import Dataset


def _events(ds: Dataset, keep: pl.Expr) -> Dataset:
    return replace(ds, events=ds.events.filter(keep))


def _videos(ds: Dataset, **columns: pl.Expr) -> Dataset:
    return replace(ds, videos=ds.videos.with_columns(**columns))


def shuffled_times(ds: Dataset) -> Dataset:
    """Every event keeps its user and video but takes another event's time: no order means anything."""
    return replace(ds, events=ds.events.with_columns(pl.col("ts").shuffle(seed=0)))


SHAPES: dict[str, Callable[[Dataset], Dataset]] = {
    "as-logged": lambda ds: ds,
    "no-likes": lambda ds: _events(ds, ~pl.col("event").is_in(["like", "dislike"])),
    "no-impressions": lambda ds: _events(ds, pl.col("event") != "impression"),
    "no-demographics": lambda ds: replace(ds, users=ds.users.select("user_id")),
    "one-category": lambda ds: _videos(ds, category=pl.lit("all")),
    "coarse-creators": lambda ds: _videos(ds, creator_id=pl.col("category")),
    "one-creator": lambda ds: _videos(ds, creator_id=pl.lit("everyone")),
    "no-time-order": shuffled_times,
}
"""Shape name -> the function that makes a log of that shape from a full one."""
