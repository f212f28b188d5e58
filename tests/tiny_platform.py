"""A tiny platform whose right answer is known: two audiences, two kinds of videos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from vidrec.config import PipelineConfig
from vidrec.data.dataset import Dataset

T0 = datetime(2025, 6, 1, tzinfo=UTC)

SMALL_CONFIG = {
    "candidates": {"per_generator": 30, "target": 30, "quotas": {"trending": 10}},
    "two_tower": {
        "embedding_dim": 16, "user_hidden": [32], "video_hidden": [32], "user_hash_buckets": 512,
        "epochs": 12, "batch_size": 256, "patience": 3, "threads": 1, "eval_k": 10,
    },
    "ranker": {"hidden": [16], "max_epochs": 4, "batch_size": 512, "threads": 1},
}  # fmt: skip


def small_config() -> PipelineConfig:
    """Settings small enough to train the whole pipeline in seconds."""
    return PipelineConfig.from_dict(SMALL_CONFIG)


def two_audiences(n_users: int = 40, n_videos: int = 40, days: int = 20, seed: int = 0) -> Dataset:
    """Even users love even (``music``) videos, odd users odd (``news``) ones.

    Users complete videos of their kind (completion 0.95) and abandon the other kind
    (0.2) on the rare occasions they try it, so the right answer for every user is
    "videos of their own kind".
    """
    rng = np.random.default_rng(seed)
    videos = pl.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n_videos)],
            "creator_id": [f"c{i % 8}" for i in range(n_videos)],
            "category": ["music" if i % 2 == 0 else "news" for i in range(n_videos)],
            "tags": [["even"] if i % 2 == 0 else ["odd"] for i in range(n_videos)],
            "duration_seconds": [100.0] * n_videos,
            "uploaded_at": [T0 - timedelta(days=1)] * n_videos,
            "available": [True] * n_videos,
        }
    )
    rows = []
    for u in range(n_users):
        kind = u % 2
        own = [v for v in range(n_videos) if v % 2 == kind]
        other = [v for v in range(n_videos) if v % 2 != kind]
        picks = list(rng.choice(own, size=12, replace=False)) + list(rng.choice(other, size=2, replace=False))
        times = np.sort(rng.uniform(0, days * 86400, size=len(picks)))
        for v, t in zip(rng.permutation(picks), times):
            done = 95.0 if v % 2 == kind else 20.0
            rows.append((f"u{u}", f"v{v}", T0 + timedelta(seconds=float(t)), "watch", done))
    events = pl.DataFrame(rows, schema=["user_id", "video_id", "ts", "event", "watch_seconds"], orient="row")
    events = events.with_columns(pl.col("ts").dt.cast_time_unit("us"))
    users = pl.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return Dataset(events, videos, users)
