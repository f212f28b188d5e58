"""The scoring feature set: point-in-time features, item-to-item similarity, two-tower embeddings.

The same :class:`FeatureSet` builds the matrix of training examples and of request
candidates. The retrieval signal is the dot product of the two-tower user and video
vectors, recomputed here for every row, so training examples (which never went
through retrieval) and candidates see the same feature. Merge-time columns
(``retrieval_score``, ``sources``) are passed through for explanations but are not
model inputs: they do not exist for training rows and would be filled differently.
The similarity features (:mod:`vidrec.scoring.similarity`) compare the candidate with
the user's recent completions, the item-to-item signal neighbourhood models live on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from vidrec.features.point_in_time import FEATURE_COLUMNS
from vidrec.scoring.base import EmbeddingSource
from vidrec.scoring.similarity import SIMILARITY_FEATURES, CoOccurrence, similarity_features

LOG1P_FEATURES: tuple[str, ...] = (
    "v_impressions", "v_views", "v_completions", "v_likes", "v_dislikes",
    "u_impressions", "u_views", "u_completions", "u_likes", "u_dislikes",
    "uc_views", "creator_views", "duration_seconds", "video_age_days",
)  # fmt: skip
"""Heavy-tailed counts and times, fed as ``log1p(max(x, 0))``; the rest (rates and log-lifts) as they are."""
_STAT_ROWS = 262_144  # rows per block of the standardiser's float64 sums


def dense_names(embedding_dim: int, similarity: bool = False) -> list[str]:
    """Column names of the model input, in order."""
    names = list(FEATURE_COLUMNS)
    if similarity:
        names += list(SIMILARITY_FEATURES)
    if embedding_dim:
        names += [f"user_emb_{i}" for i in range(embedding_dim)]
        names += [f"video_emb_{i}" for i in range(embedding_dim)]
        names.append("emb_dot")
    return names


def point_matrix(columns: dict[str, np.ndarray]) -> np.ndarray:
    """float32 ``(n, len(FEATURE_COLUMNS))``: the point-in-time features as the model reads them."""
    parts = [
        np.log1p(np.maximum(columns[c], 0.0)) if c in LOG1P_FEATURES else np.asarray(columns[c], dtype=np.float64)
        for c in FEATURE_COLUMNS
    ]
    return np.stack(parts, axis=1).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


def point_features(frame: pl.DataFrame) -> np.ndarray:
    """float32 ``(n, len(FEATURE_COLUMNS))`` from a frame of point-in-time features."""
    return point_matrix({c: frame[c].cast(pl.Float64).to_numpy() for c in FEATURE_COLUMNS})


def embedding_features(frame: pl.DataFrame, embeddings: EmbeddingSource) -> np.ndarray:
    """float32 ``(n, 2d + 1)``: user vector, video vector and their dot product per row.

    The user tower runs once per distinct (user, history) state, not once per row.
    """
    keyed = frame.select("user_id", "history", _h=pl.col("history").hash())
    states = keyed.unique(["user_id", "_h"], keep="first", maintain_order=True).with_row_index("_s")
    pos = keyed.join(states.select("user_id", "_h", "_s"), on=["user_id", "_h"], how="left", maintain_order="left")
    user = np.asarray(embeddings.user_vectors(states["user_id"], states["history"]), dtype=np.float32)
    user = user[pos["_s"].to_numpy()]  # (n, d)
    videos = frame["video_id"]
    uniq = videos.unique(maintain_order=True)
    index = pl.DataFrame({"video_id": uniq, "_v": np.arange(len(uniq))})
    at = videos.to_frame().join(index, on="video_id", how="left", maintain_order="left")["_v"].to_numpy()
    video = np.asarray(embeddings.video_vectors(uniq), dtype=np.float32)[at]  # (n, d)
    dot = np.einsum("nd,nd->n", user, video)[:, None]  # (n, 1)
    return np.concatenate([user, video, dot], axis=1)


@dataclass
class Standardizer:
    """Per-column mean and standard deviation of the training matrix, saved with the model."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def fit(self, x: np.ndarray) -> Standardizer:
        """Column means and deviations in float64, a block of rows at a time (two passes), so
        a large matrix is never copied whole in double precision."""
        n = max(len(x), 1)
        total = np.zeros(x.shape[1], dtype=np.float64)
        for s in range(0, len(x), _STAT_ROWS):
            total += x[s : s + _STAT_ROWS].sum(axis=0, dtype=np.float64)
        mean = total / n
        square = np.zeros(x.shape[1], dtype=np.float64)
        for s in range(0, len(x), _STAT_ROWS):
            square += np.square(x[s : s + _STAT_ROWS].astype(np.float64) - mean).sum(axis=0)
        std = np.sqrt(square / n)
        self.mean = mean.tolist()
        self.std = np.where(std > 1e-8, std, 1.0).tolist()
        return self

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 ``(x - mean) / std``; ``out=x`` standardises a float32 ``x`` in place."""
        if x.shape[1] != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} feature columns, got {x.shape[1]}")
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        out = np.subtract(x, mean, out=out, dtype=np.float32)
        return np.divide(out, std, out=out)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Standardizer:
        return cls(list(data["mean"]), list(data["std"]))


def feature_matrix(
    frame: pl.DataFrame,
    embeddings: EmbeddingSource | None,
    cooc: CoOccurrence | None = None,
    recent: int = 20,
) -> np.ndarray:
    """The model input before standardisation: float32 ``(n, len(dense_names(d, cooc is not None)))``.

    ``frame`` needs a ``history`` column when ``embeddings`` or ``cooc`` is given.
    """
    parts = [point_features(frame)]
    if cooc is not None:
        parts.append(similarity_features(frame, cooc, embeddings, recent))
    if embeddings is not None:
        parts.append(embedding_features(frame, embeddings))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
