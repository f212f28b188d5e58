"""Helpers every heuristic generator shares: fit-time columns (watches before now, decay) and
request-time numpy (history weights, exclusions, the final top-k cut), so each generator
only says how it scores.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vidrec.candidates.base import Nominations
from vidrec.catalogue import Catalogue
from vidrec.data.schema import TIMESTAMP, with_derived
from vidrec.request import Request

CATALOGUE_COLUMNS = ("video_id", "creator_id", "category", "uploaded_at", "available")


def ts(now: datetime) -> pl.Expr:
    """``now`` as a literal of the canonical timestamp type."""
    return pl.lit(now).cast(TIMESTAMP)


def watches_before(train_events: pl.DataFrame, videos: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Watch events strictly before ``now`` with the derived ``completion``/``completed``."""
    ev = train_events.filter((pl.col("event") == "watch") & (pl.col("ts") < ts(now)))
    return with_derived(ev, videos)


def catalogue_columns(videos: pl.DataFrame) -> pl.DataFrame:
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


def in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """(n,) bool: which ``values`` occur in ``sorted_values`` (sorted, unique); O(n log m)."""
    if len(sorted_values) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[pos] == values


def recency_weights(rows: np.ndarray, last: int | None, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights) of a history (most recent last): its last ``last`` rows, the i-th most
    recent weighing ``decay^i``."""
    rows = rows if last is None else rows[len(rows) - min(last, len(rows)):]
    back = np.arange(len(rows) - 1, -1, -1, dtype=np.float64)
    return rows, np.power(decay, back)


def sum_by_row(rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique rows, summed weights)."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    return uniq, np.bincount(inverse, weights=weights, minlength=len(uniq))


def max_by_row(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique rows, max score per row)."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    out = np.full(len(uniq), -np.inf)
    np.maximum.at(out, inverse, scores)
    return uniq, out


def finish(rows: np.ndarray, scores: np.ndarray, request: Request, catalogue: Catalogue, k: int) -> Nominations:
    """The best ``k`` of scored rows (distinct): positive, not excluded, recommendable now; ties by id."""
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    keep = (scores > 0) & ~in_sorted(rows, request.excluded) & catalogue.recommendable(rows, request.now_us)
    rows, scores = rows[keep], scores[keep]
    order = np.lexsort((catalogue.id_keys[rows], -scores))[:k]
    return Nominations(rows[order], scores[order])


def first_eligible(rows: np.ndarray, request: Request, catalogue: Catalogue, n: int) -> np.ndarray:
    """Positions in ``rows`` (an ordered list) of its first ``n`` entries that are recommendable
    now and not excluded; reads O(n + exclusions) entries, not the whole list."""
    take = n + len(request.excluded) + 16
    while True:
        head = rows[:take]
        ok = catalogue.recommendable(head, request.now_us) & ~in_sorted(head, request.excluded)
        pos = np.flatnonzero(ok)
        if len(pos) >= n or take >= len(rows):
            return pos[:n]
        take *= 2


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
