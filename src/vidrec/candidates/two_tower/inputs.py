"""The richer towers' inputs, computed by the same code for training examples and for serving:
recent dislikes, demographics, request context (hour, day of week), example age and the
video's duration bucket. Every index is shifted: 0 means "unknown / missing / padding".
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from vidrec.data.ids import IdMap
from vidrec.data.schema import TIMESTAMP

# Users-table columns read as categorical demographics when present (the MovieLens adapter
# fills age_bucket, gender, occupation; the simulator and other sources may fill country).
DEMOGRAPHIC_COLUMNS = ("age_bucket", "country", "gender", "occupation")
# Log-spaced duration edges (seconds): 15 s .. 4 h; bucket = 1 + number of edges <= duration.
DURATION_EDGES = np.geomspace(15.0, 4 * 3600.0, 12)
N_DURATION = len(DURATION_EDGES) + 2
# Log-spaced example-age edges (days): age 0 (serving) falls in bucket 1.
AGE_EDGES_DAYS = np.geomspace(1.0, 2048.0, 12)
N_AGE = len(AGE_EDGES_DAYS) + 2
N_HOUR, N_DOW = 25, 8  # 0 = unknown, then 24 hours / 7 days
_US_PER_DAY = 86_400 * 1_000_000
_US_PER_HOUR = 3_600 * 1_000_000
USER_INPUTS = ("dislikes", "demographics", "hour", "dow", "example_age")


def duration_bucket(seconds: pl.Series) -> np.ndarray:
    """Log-spaced duration bucket (1..N_DURATION-1) of each video; 0 where the duration is missing."""
    d = seconds.cast(pl.Float64).to_numpy()
    bucket = np.searchsorted(DURATION_EDGES, np.nan_to_num(d, nan=0.0), side="right") + 1
    return np.where(np.isfinite(d) & (d > 0), bucket, 0).astype(np.int64)


def example_age_bucket(age_us: np.ndarray) -> np.ndarray:
    """Bucket of an example's age (end of the training window minus example time, in us)."""
    days = np.clip(np.asarray(age_us, dtype=np.float64), 0, None) / _US_PER_DAY
    return (np.searchsorted(AGE_EDGES_DAYS, days, side="right") + 1).astype(np.int64)


def time_context(ts_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hour of day + 1, ISO day of week 1..7) of UTC epoch-microsecond times."""
    ts = np.asarray(ts_us, dtype=np.int64)
    hour = (ts // _US_PER_HOUR) % 24 + 1
    dow = (ts // _US_PER_DAY + 3) % 7 + 1  # 1970-01-01 was a Thursday (ISO day 4)
    return hour.astype(np.int64), dow.astype(np.int64)


def epoch_us(now: datetime) -> int:
    """A datetime as UTC epoch microseconds (naive datetimes are read as UTC)."""
    return int(pl.select(pl.lit(now).cast(TIMESTAMP).dt.epoch("us")).item())


def demographic_vocab(users: pl.DataFrame | None) -> dict[str, IdMap]:
    """One sorted vocabulary per demographic column the users table has (string columns only)."""
    if users is None:
        return {}
    return {
        c: IdMap(users[c].cast(pl.String).drop_nulls().unique().sort())
        for c in DEMOGRAPHIC_COLUMNS
        if c in users.columns and users[c].dtype in (pl.String, pl.Categorical, pl.Enum)
    }


def demographic_indices(frame: pl.DataFrame, fields: dict[str, IdMap]) -> np.ndarray:
    """(n, len(fields)) shifted indices of each row's demographics; missing column/value -> 0."""
    out = np.zeros((frame.height, len(fields)), dtype=np.int64)
    for j, (name, vocab) in enumerate(fields.items()):
        if name in frame.columns:
            out[:, j] = vocab.to_index(frame[name].cast(pl.String)) + 1
    return out


def join_demographics(frame: pl.DataFrame, users: pl.DataFrame | None, fields: dict[str, IdMap]) -> pl.DataFrame:
    """``frame`` (with ``user_id``) plus the demographic columns of ``users`` it does not carry."""
    cols = [c for c in fields if users is not None and c in users.columns and c not in frame.columns]
    if not cols:
        return frame
    table = users.select("user_id", *[pl.col(c).cast(pl.String) for c in cols]).unique("user_id")
    return frame.join(table, on="user_id", how="left", maintain_order="left")
