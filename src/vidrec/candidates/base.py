"""The one interface of stage 1: a candidate generator retrieves O(hundreds) videos per request
from a corpus of O(millions), never ones the user has seen, disliked or cannot watch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl

from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import epoch_us
from vidrec.request import Request, from_lists

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "video_id": pl.String(),
    "score": pl.Float64(),
    "rank": pl.Int64(),
    "source": pl.String(),
}
STATE_LISTS = ("recent_completed", "recent_watched", "seen", "disliked")


@dataclass(frozen=True)
class Nominations:
    """One generator's answer to one request: catalogue rows, best first, and their scores."""

    rows: np.ndarray  # (m,) int64
    scores: np.ndarray  # (m,) float64

    @classmethod
    def empty(cls) -> Nominations:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.rows)


class CandidateGenerator(ABC):
    """Fixed verbs of every generator: ``fit``, ``bind``, ``nominate``, ``save``, ``load``.

    ``fit`` learns from a training set; ``bind`` attaches the serving :class:`Catalogue`
    (row-indexed structures are built there and extended on uploads); ``nominate`` answers
    one hydrated :class:`Request` with at most ``k`` rows, never excluded, unavailable or
    not yet uploaded ones. ``generate`` is the same over a frame of user states.
    """

    name: str
    catalogue: Catalogue | None = None
    checkpoints: Path | None = None  # where a generator with a long training loop keeps its checkpoints

    @abstractmethod
    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
        """Learn from events strictly before ``now``, and bind to ``catalogue`` (default: one of ``train.videos``)."""

    @abstractmethod
    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: build the row-indexed structures, follow its uploads."""

    @abstractmethod
    def nominate(self, request: Request, k: int) -> Nominations:
        """Top-``k`` rows for the request, best first."""

    def nominate_many(self, requests: list[Request], k: int) -> list[Nominations]:
        """:meth:`nominate` for requests that arrived together (a generator may batch its work)."""
        return [self.nominate(r, k) for r in requests]

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write everything ``load`` needs into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> Self:
        """Rebuild a fitted generator written by ``save`` (bind it before nominating)."""

    def require_catalogue(self) -> Catalogue:
        if self.catalogue is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() or load() and bind() before generate()")
        return self.catalogue

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        """``CANDIDATE_SCHEMA`` rows for a frame of user states (``build_user_state`` columns; other
        string columns are the users' profiles): one request per row, at most ``k`` each."""
        check_k(k)
        catalogue = self.require_catalogue()
        now_us = epoch_us(now)
        parts = [(request.user_id, self.nominate(request, k)) for request in requests_of(users, catalogue, now_us, k)]
        return nominations_frame(parts, catalogue, self.name)


def requests_of(users: pl.DataFrame, catalogue: Catalogue, now_us: int, k: int) -> list[Request]:
    """One :class:`Request` per row of a user-state frame (lists of ids; string columns as profile)."""
    lists = [c for c in STATE_LISTS if c in users.columns]
    extra = [c for c, t in users.schema.items() if c != "user_id" and t == pl.String]
    out = []
    for row in users.select("user_id", *lists, *extra).iter_rows(named=True):
        profile = {c: row[c] for c in extra if row[c] is not None}
        out.append(from_lists(row["user_id"], row, catalogue, now_us, k, profile))
    return out


def nominations_frame(parts: list[tuple[str, Nominations]], catalogue: Catalogue, source: str) -> pl.DataFrame:
    """Per-user nominations as ``CANDIDATE_SCHEMA`` rows (rank 1 = best)."""
    parts = [(u, n) for u, n in parts if len(n)]
    if not parts:
        return empty_candidates()
    rows = np.concatenate([n.rows for _, n in parts])
    return pl.DataFrame(
        {
            "user_id": [u for u, n in parts for _ in range(len(n))],
            "video_id": catalogue.ids_of(rows),
            "score": np.concatenate([n.scores for _, n in parts]).astype(np.float64),
            "rank": np.concatenate([np.arange(1, len(n) + 1) for _, n in parts]).astype(np.int64),
            "source": source,
        },
        schema=CANDIDATE_SCHEMA,
    )


def empty_candidates() -> pl.DataFrame:
    """A zero-row frame with the candidate columns."""
    return pl.DataFrame(schema=CANDIDATE_SCHEMA)


def check_k(k: int) -> None:
    """Reject a non-positive ``k`` with a clear message."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
