"""The one interface of stage 1: a candidate generator retrieves O(hundreds) videos per user
from a corpus of O(millions), never ones the user has seen, disliked or cannot watch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Self

import polars as pl

from vidrec.data.dataset import Dataset

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "video_id": pl.String(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
    "source": pl.String(),
}


class CandidateGenerator(ABC):
    """Fixed verbs of every generator: ``fit``, ``generate``, ``save``, ``load``.

    ``generate`` takes ``build_user_state`` rows for the requested users (users with empty
    lists are cold and still get an answer) and returns ``CANDIDATE_SCHEMA`` rows: at most
    ``k`` per user, rank 1 = best, ``source`` = the generator's ``name``.
    """

    name: str

    @abstractmethod
    def fit(self, train: Dataset, now: datetime) -> Self:
        """Learn from events strictly before ``now``."""

    @abstractmethod
    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        """Top-``k`` candidates per user, excluding seen, disliked and unavailable videos."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write everything ``load`` needs into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> Self:
        """Rebuild a fitted generator written by ``save``."""


def empty_candidates() -> pl.DataFrame:
    """A zero-row frame with the candidate columns."""
    return pl.DataFrame(schema=CANDIDATE_SCHEMA)


def check_k(k: int) -> None:
    """Reject a non-positive ``k`` with a clear message."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
