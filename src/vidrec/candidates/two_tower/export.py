"""Offline video embeddings (computed once, indexed) and request-time user embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from vidrec.candidates.two_tower.data import hash_ids, padded_indices
from vidrec.candidates.two_tower.model import TwoTowerModel


@torch.no_grad()
def video_embeddings(
    model: TwoTowerModel, videos: pl.DataFrame, batch_size: int = 8192
) -> tuple[pl.Series, np.ndarray]:
    """Embed every row of ``videos`` from its own columns: (video_ids, float32 (n, d)).

    Videos unknown to the model are embedded from category, tags and creator alone.
    """
    model.eval()
    feats = model.vocab.encode_videos(videos, max_tags=model.video_tags.shape[1])
    out = np.empty((videos.height, model.config.embedding_dim), dtype=np.float32)
    for s in range(0, videos.height, batch_size):
        part = {k: v[s : s + batch_size] for k, v in feats.items()}
        emb = model.video_tower(part["video"], part["category"], part["tags"], part["creator"])
        out[s : s + batch_size] = emb.numpy()
    return videos["video_id"], out


@torch.no_grad()
def user_embeddings(model: TwoTowerModel, user_state: pl.DataFrame, batch_size: int = 8192) -> np.ndarray:
    """Embed users from their current state (``build_user_state`` rows): float32 (n, d)."""
    model.eval()
    cfg = model.config
    buckets = hash_ids(user_state["user_id"], cfg.user_hash_buckets, cfg.user_hash_functions)
    history = padded_indices(user_state["recent_completed"], model.vocab.videos, cfg.history_len)
    out = np.empty((user_state.height, cfg.embedding_dim), dtype=np.float32)
    for s in range(0, user_state.height, batch_size):
        b = torch.from_numpy(buckets[s : s + batch_size])
        h = torch.from_numpy(history[s : s + batch_size])
        out[s : s + batch_size] = model.user_tower(b, h).numpy()
    return out


def save_video_embeddings(path: str | Path, video_ids: pl.Series, vectors: np.ndarray) -> Path:
    """Write ``video_id`` and ``embedding`` (fixed-size float32 array) as Parquet."""
    dim = vectors.shape[1]
    frame = pl.DataFrame(
        {
            "video_id": pl.Series(video_ids, dtype=pl.String),
            "embedding": pl.Series(vectors.astype(np.float32), dtype=pl.Array(pl.Float32, dim)),
        }
    )
    frame.write_parquet(path)
    return Path(path)


def load_video_embeddings(path: str | Path) -> tuple[pl.Series, np.ndarray]:
    """Read embeddings written by :func:`save_video_embeddings`: (video_ids, float32 (n, d))."""
    frame = pl.read_parquet(path)
    return frame["video_id"], np.ascontiguousarray(frame["embedding"].to_numpy(), dtype=np.float32)
