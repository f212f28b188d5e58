"""Column helpers every heuristic generator shares: the catalogue filter, user history
weights, exclusions and the final top-k cut, so each generator only says how it scores.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from vidrec.candidates.base import CANDIDATE_SCHEMA
from vidrec.data.schema import TIMESTAMP, with_derived

CATALOGUE_COLUMNS = ("video_id", "creator_id", "category", "uploaded_at", "available")


def ts(now: datetime) -> pl.Expr:
    """``now`` as a literal of the canonical timestamp type."""
    return pl.lit(now).cast(TIMESTAMP)


def watches_before(train_events: pl.DataFrame, videos: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Watch events strictly before ``now`` with the derived ``completion``/``completed``."""
    ev = train_events.filter((pl.col("event") == "watch") & (pl.col("ts") < ts(now)))
    return with_derived(ev, videos)


def catalogue(videos: pl.DataFrame) -> pl.DataFrame:
    """The video columns the generators need to filter and group by."""
    return videos.select(CATALOGUE_COLUMNS)


def recommendable(cat: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Videos that may be nominated at ``now``: available and already uploaded."""
    return cat.filter(pl.col("available") & (pl.col("uploaded_at") <= ts(now)))


def decay(age_days: pl.Expr, half_life_days: float) -> pl.Expr:
    """``2^(-age / half_life)``: 1 now, 1/2 after one half-life."""
    return (-math.log(2.0) * age_days / half_life_days).exp()


def age_days(column: str, now: datetime) -> pl.Expr:
    """Days between ``column`` and ``now`` (never negative)."""
    return ((ts(now) - pl.col(column)).dt.total_seconds() / 86400.0).clip(0.0, None)


def history(users: pl.DataFrame, column: str, last: int | None = None, recency_decay: float = 1.0) -> pl.DataFrame:
    """``user_id, video_id, w``: the user's last ``last`` videos of a state list column.

    Lists are ordered most recent last; the i-th most recent video weighs ``recency_decay^i``.
    """
    lists = pl.col(column) if last is None else pl.col(column).list.tail(last)
    out = (
        users.select("user_id", v=lists)
        .with_columns(pos=pl.int_ranges(pl.col("v").list.len(), dtype=pl.Int64), n=pl.col("v").list.len())
        .explode("v", "pos")
        .drop_nulls("v")
    )
    back = (pl.col("n") - 1 - pl.col("pos")).cast(pl.Float64)
    return out.select("user_id", video_id="v", w=pl.lit(recency_decay, dtype=pl.Float64).pow(back))


def exclusions(users: pl.DataFrame) -> pl.DataFrame:
    """``user_id, video_id`` pairs never to return: every seen or disliked video."""
    return (
        users.select("user_id", video_id=pl.concat_list("seen", "disliked"))
        .explode("video_id")
        .drop_nulls("video_id")
        .unique()
    )


def longest_exclusion(users: pl.DataFrame) -> int:
    """The most videos any requested user excludes (how far a shared list must reach)."""
    if users.height == 0:
        return 0
    return int(users.select(pl.concat_list("seen", "disliked").list.len().max()).item() or 0)


def top_k(scored: pl.DataFrame, users: pl.DataFrame, k: int, source: str) -> pl.DataFrame:
    """Cut ``user_id, video_id, score`` rows to each user's best ``k`` unseen videos.

    Drops excluded pairs and non-positive scores; ties broken by video id so the answer
    is deterministic; returns ``CANDIDATE_SCHEMA`` rows.
    """
    out = (
        scored.filter(pl.col("score") > 0)
        .join(exclusions(users), on=["user_id", "video_id"], how="anti")
        .sort(["user_id", "score", "video_id"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user_id"))
        .filter(pl.col("rank") <= k)
        .with_columns(source=pl.lit(source))
    )
    return out.select(pl.col(c).cast(t) for c, t in CANDIDATE_SCHEMA.items())


def save_state(root: Path, config: Any, fitted_at: datetime, frames: dict[str, pl.DataFrame]) -> Path:
    """Write a generator's config, clock and tables into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.write_parquet(root / f"{name}.parquet")
    meta = {"config": asdict(config), "fitted_at": fitted_at.isoformat(), "tables": sorted(frames)}
    (root / "generator.json").write_text(json.dumps(meta, indent=2))
    return root


def load_state(root: Path) -> tuple[dict[str, Any], datetime, dict[str, pl.DataFrame]]:
    """Read what :func:`save_state` wrote: (config dict, fitted_at, tables)."""
    meta = json.loads((root / "generator.json").read_text())
    frames = {name: pl.read_parquet(root / f"{name}.parquet") for name in meta["tables"]}
    return meta["config"], datetime.fromisoformat(meta["fitted_at"]), frames


def not_fitted(name: str) -> RuntimeError:
    return RuntimeError(f"{name}: call fit() or load() before generate() or save()")
