"""The two-tower model as an embedding source for the scoring stage."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from vidrec.candidates.two_tower.export import user_embeddings, video_embeddings
from vidrec.candidates.two_tower.model import TwoTowerModel


class TwoTowerEmbeddings:
    """User and video vectors of a trained two-tower (implements ``scoring.base.EmbeddingSource``).

    Video vectors of the catalogue are computed once; videos outside it get zeros.
    """

    def __init__(self, model: TwoTowerModel, videos: pl.DataFrame) -> None:
        self.model = model
        ids, vectors = video_embeddings(model, videos)
        self._lookup = pl.DataFrame({"video_id": ids, "row": np.arange(len(ids), dtype=np.int64)})
        self._vectors = np.vstack([vectors, np.zeros((1, vectors.shape[1]), dtype=np.float32)])

    @property
    def dim(self) -> int:
        """Width of both towers' outputs."""
        return int(self._vectors.shape[1])

    def video_vectors(self, video_ids: pl.Series) -> np.ndarray:
        """float32 (n, d) for the given ids; zeros for ids outside the catalogue."""
        rows = (
            pl.DataFrame({"video_id": pl.Series(video_ids, dtype=pl.String)})
            .join(self._lookup, on="video_id", how="left", maintain_order="left")["row"]
            .fill_null(len(self._vectors) - 1)
            .to_numpy()
        )
        return self._vectors[rows]

    def user_vectors(
        self, user_ids: pl.Series, histories: pl.Series, now: datetime | None = None
    ) -> np.ndarray:
        """float32 (n, d): the user tower on each user's completed history (most recent last),
        at request time ``now`` (hour/day context, when the model uses it)."""
        state = pl.DataFrame(
            {
                "user_id": pl.Series(user_ids, dtype=pl.String),
                "recent_completed": pl.Series(histories).cast(pl.List(pl.String)).fill_null([]),
            }
        )
        return user_embeddings(self.model, state, now=now)
