"""Stage 2, scoring: the ``Ranker`` interface and what it needs from candidate generation.

A ranker turns O(hundreds) of merged candidates per request into calibrated
probabilities that the user completes each video. It is fitted on a training
:class:`~vidrec.data.dataset.Dataset` and scores a candidate frame as of ``now``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np
import polars as pl

from vidrec.data.dataset import Dataset


@runtime_checkable
class EmbeddingSource(Protocol):
    """The two-tower model as the ranker sees it: video vectors and a user tower over histories."""

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        ...

    def video_vectors(self, video_ids: pl.Series) -> np.ndarray:
        """float32 ``(n, d)`` vectors of ``video_ids``; zeros for videos the model does not know."""
        ...

    def user_vectors(self, user_ids: pl.Series, histories: pl.Series) -> np.ndarray:
        """float32 ``(n, d)``: the user tower on each user's completed videos (List[String], most recent last)."""
        ...


class Ranker(ABC):
    """Scores (user, candidate video) pairs with a calibrated P(completion >= threshold)."""

    @abstractmethod
    def fit(self, train: Dataset, embeddings: EmbeddingSource | None = None) -> Self:
        """Learn from the training period of ``train``; ``embeddings`` may be None (no embedding features)."""

    @abstractmethod
    def score(
        self, candidates: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame, now: datetime
    ) -> pl.DataFrame:
        """``candidates`` (user_id, video_id, ...) with float ``p_complete`` and ``score`` added.

        ``users`` is the user state frame (``build_user_state`` columns) as of ``now``;
        ``videos`` the catalogue with metadata. Row order and extra columns are kept.
        """

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write everything :meth:`load` needs into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path, embeddings: EmbeddingSource | None = None) -> Self:
        """Read a ranker written by :meth:`save`; pass the embedding source it was trained with, if any."""
