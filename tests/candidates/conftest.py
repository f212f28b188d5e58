"""A tiny platform with a known answer: two user groups, each watching one video cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_clustered(
    n_users: int = 40, n_videos: int = 60, per_user: int = 15, seed: int = 0
) -> tuple[Dataset, datetime]:
    """Users u0..: group = index % 2; videos v0..: cluster = index % 2; users watch own cluster."""
    rng = np.random.default_rng(seed)
    vids = np.arange(n_videos)
    rows_u, rows_v, rows_t, rows_c = [], [], [], []
    for u in range(n_users):  # test data construction, not a hot path
        own = vids[vids % 2 == u % 2]
        picked = rng.choice(own, size=per_user, replace=False)
        rows_u += [f"u{u}"] * per_user
        rows_v += [f"v{v}" for v in picked]
        rows_t += sorted(rng.uniform(0, 10 * 86400, per_user).tolist())
        rows_c += rng.choice([0.3, 1.0], size=per_user, p=[0.3, 0.7]).tolist()
    events = pl.DataFrame(
        {
            "user_id": rows_u,
            "video_id": rows_v,
            "ts": [T0 + timedelta(seconds=t) for t in rows_t],
            "event": ["watch"] * len(rows_u),
            "watch_seconds": [c * 100.0 for c in rows_c],
        }
    ).with_columns(pl.col("ts").cast(TIMESTAMP))
    videos = pl.DataFrame(
        {
            "video_id": [f"v{v}" for v in vids],
            "creator_id": [f"c{v % 6}" for v in vids],
            "category": ["even" if v % 2 == 0 else "odd" for v in vids],
            "tags": [["t_even", f"t{v % 5}"] if v % 2 == 0 else ["t_odd", f"t{v % 5}"] for v in vids],
            "duration_seconds": [100.0] * n_videos,
            "uploaded_at": [T0 - timedelta(days=1)] * n_videos,
            "available": [True] * n_videos,
        }
    ).with_columns(pl.col("uploaded_at").cast(TIMESTAMP))
    users = pl.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return Dataset(events, videos, users), T0 + timedelta(days=11)


@pytest.fixture(scope="session")
def clustered() -> tuple[Dataset, datetime]:
    return make_clustered()


def cluster_of(ids: pl.Series) -> np.ndarray:
    """0/1 cluster of user or video ids ('u7' -> 1, 'v4' -> 0)."""
    return ids.str.slice(1).cast(pl.Int64).to_numpy() % 2


def with_rule_cases(ds: Dataset, now: datetime) -> Dataset:
    """``ds`` with the cases every generator must respect: v0 and v1 unavailable, v2 uploaded
    after ``now``, and v3 disliked by the users of the first 20 events."""
    videos = ds.videos.with_columns(
        available=~pl.col("video_id").is_in(["v0", "v1"]),
        uploaded_at=pl.when(pl.col("video_id") == "v2").then(pl.lit(now + timedelta(days=5)).cast(TIMESTAMP))
        .otherwise(pl.col("uploaded_at")),
    )
    dislikes = ds.events.head(20).with_columns(
        video_id=pl.lit("v3"), event=pl.lit("dislike"), watch_seconds=pl.lit(None, dtype=pl.Float64)
    )
    return Dataset(pl.concat([ds.events, dislikes]), videos, ds.users)
