"""The two-tower model as an embedding source for the scoring stage, by catalogue row."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from vidrec.candidates.two_tower.export import RequestInputs, user_embeddings, video_embeddings
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.catalogue import Catalogue


class TwoTowerEmbeddings:
    """User and video vectors of a trained two-tower (implements ``scoring.base.EmbeddingSource``).

    Video vectors of every catalogue row are computed once (uploads from their content, as
    they arrive); ids outside the catalogue get zeros. ``unit`` holds them normalised, for
    the similarity features.
    """

    def __init__(self, model: TwoTowerModel, catalogue: Catalogue) -> None:
        self.model, self.catalogue = model, catalogue
        _, vectors = video_embeddings(model, catalogue.frame)
        self._vectors = vectors  # (n, d)
        self._zero = np.zeros((1, vectors.shape[1]), dtype=np.float32)
        self._inputs = RequestInputs(model, model.vocab.video_index(pl.Series(catalogue.ids, dtype=pl.String)),
                                     context=False)  # fmt: skip
        self._set_unit()
        catalogue.subscribe(self._on_upload)

    def _set_unit(self) -> None:
        norm = np.linalg.norm(self._vectors, axis=1, keepdims=True)
        self.unit = (self._vectors / np.where(norm > 0, norm, 1.0)).astype(np.float32)  # (n, d)

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        ids, vectors = video_embeddings(self.model, videos)
        self._vectors = np.vstack([self._vectors, vectors])
        self._inputs.extend(int(rows[-1]) + 1, self.model.vocab.video_index(ids))
        self._set_unit()

    @property
    def dim(self) -> int:
        """Width of both towers' outputs."""
        return int(self._vectors.shape[1])

    def row_vectors(self, rows: np.ndarray) -> np.ndarray:
        """float32 (n, d) of catalogue rows."""
        return self._vectors[rows]

    def video_vectors(self, video_ids: pl.Series) -> np.ndarray:
        """float32 (n, d) for the given ids; zeros for ids outside the catalogue."""
        rows = self.catalogue.rows_of(pl.Series(video_ids, dtype=pl.String))
        return np.vstack([self._vectors, self._zero])[np.where(rows >= 0, rows, len(self._vectors))]

    def user_vectors(self, user_ids: pl.Series, histories: pl.Series, now: datetime | None = None) -> np.ndarray:
        """float32 (n, d): the user tower on each user's completed history (most recent last),
        at request time ``now`` (hour/day context, when the model uses it)."""
        state = pl.DataFrame(
            {
                "user_id": pl.Series(user_ids, dtype=pl.String),
                "recent_completed": pl.Series(histories).cast(pl.List(pl.String)).fill_null([]),
            }
        )
        return user_embeddings(self.model, state, now=now)

    def request_vectors(self, requests: list, histories: list[np.ndarray]) -> np.ndarray:
        """float32 (n, d): the user tower on each request's history (rows, most recent last)."""
        return self._inputs.vectors(requests, histories)
