"""Seeded synthetic logs whose completion rule is known, and a simple embedding source."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from vidrec.data.dataset import Dataset
from vidrec.data.ids import IdMap
from vidrec.data.schema import TIMESTAMP

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CATEGORIES = ["music", "news", "sports", "comedy", "gaming", "food"]


def synthetic_log(users: int = 300, videos: int = 200, impressions: int = 30_000, days: int = 20,
                  seed: int = 0, signal: float = 4.0) -> Dataset:
    """Impressions shown uniformly; watch and completion both rise with the user's category interest.

    P(complete | shown) = sigmoid(signal * (interest - 1/C) * C / 2 - 1 + quality): a model
    that learns each user's category affinity from past watches can rank well.
    """
    rng = np.random.default_rng(seed)
    n_cat = len(CATEGORIES)
    interest = rng.dirichlet(np.full(n_cat, 0.4), size=users)  # (users, C)
    cat = rng.integers(0, n_cat, size=videos)
    quality = rng.normal(0.0, 0.5, size=videos)
    duration = rng.uniform(15.0, 600.0, size=videos)
    start_us = int(T0.timestamp() * 1e6)
    day_us = 86_400 * 10**6
    uploaded = start_us + rng.integers(-5 * day_us, days * day_us // 2, size=videos)
    u = rng.integers(0, users, size=impressions)
    v = rng.integers(0, videos, size=impressions)
    ts = start_us + rng.integers(0, days * day_us, size=impressions)
    ts = np.maximum(ts, uploaded[v] + 1)
    aff = interest[u, cat[v]]
    p_complete = 1.0 / (1.0 + np.exp(-(signal * (aff - 1.0 / n_cat) * n_cat / 2.0 - 1.0 + quality[v])))
    complete = rng.random(impressions) < p_complete
    watched = complete | (rng.random(impressions) < 0.2 + 0.6 * aff)
    share = np.where(complete, rng.uniform(0.8, 1.3, impressions), rng.uniform(0.02, 0.75, impressions))
    w_ts = ts + rng.integers(5, 600, size=impressions) * 10**6
    liked = complete & (rng.random(impressions) < 0.2)
    disliked = watched & ~complete & (rng.random(impressions) < 0.1)
    uid = np.char.add("u", np.arange(users).astype(str))
    vid = np.char.add("v", np.arange(videos).astype(str))

    def part(mask: np.ndarray, kind: str, when: np.ndarray, secs: np.ndarray | None) -> pl.DataFrame:
        return pl.DataFrame({
            "user_id": uid[u[mask]], "video_id": vid[v[mask]],
            "ts": pl.Series(when[mask]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "event": [kind] * int(mask.sum()),
            "watch_seconds": pl.Series(np.full(int(mask.sum()), np.nan) if secs is None else secs[mask]).fill_nan(None),
        })  # fmt: skip

    everything = np.ones(impressions, dtype=bool)
    events = pl.concat([
        part(everything, "impression", ts, None),
        part(watched, "watch", w_ts, share * duration[v]),
        part(liked, "like", w_ts + 10**6, None),
        part(disliked, "dislike", w_ts + 10**6, None),
    ]).sort("ts")  # fmt: skip
    vids = pl.DataFrame({
        "video_id": vid, "creator_id": np.char.add("c", (np.arange(videos) % 40).astype(str)),
        "category": np.array(CATEGORIES)[cat], "tags": [[CATEGORIES[c]] for c in cat],
        "duration_seconds": duration,
        "uploaded_at": pl.Series(uploaded).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        "available": np.ones(videos, dtype=bool),
    })  # fmt: skip
    return Dataset(events.with_columns(pl.col("ts").cast(TIMESTAMP)), vids, pl.DataFrame({"user_id": uid}))


def split_by_time(ds: Dataset, at: datetime) -> tuple[Dataset, pl.DataFrame]:
    """Training dataset of events before ``at`` and the test events from ``at`` on."""
    before = pl.col("ts") < pl.lit(at).cast(TIMESTAMP)
    return Dataset(ds.events.filter(before), ds.videos, ds.users), ds.events.filter(~before)


class FixedEmbeddings:
    """An embedding source for tests: seeded random video vectors; a user is the mean of their history."""

    def __init__(self, video_ids: list[str] | pl.Series, dim: int = 8, seed: int = 0) -> None:
        self.ids = IdMap(video_ids)
        self._dim = dim
        self.vectors = np.random.default_rng(seed).normal(size=(len(self.ids), dim)).astype(np.float32)

    @property
    def dim(self) -> int:
        return self._dim

    def video_vectors(self, video_ids: pl.Series) -> np.ndarray:
        idx = self.ids.to_index(video_ids)
        return np.where((idx >= 0)[:, None], self.vectors[np.maximum(idx, 0)], 0.0).astype(np.float32)

    def user_vectors(self, user_ids: pl.Series, histories: pl.Series) -> np.ndarray:
        lengths = histories.list.len().fill_null(0).to_numpy()
        flat = self.video_vectors(histories.explode().drop_nulls())  # (total, d)
        row = np.repeat(np.arange(len(lengths)), lengths)
        out = np.zeros((len(lengths), self._dim), dtype=np.float64)
        np.add.at(out, row, flat)
        return (out / np.maximum(lengths, 1)[:, None]).astype(np.float32)
