"""Item-to-item generators: a table of each video's neighbours, and a request's history voting.

Co-watch (:mod:`vidrec.candidates.cowatch`) and EASE (:mod:`vidrec.candidates.ease`) differ
only in how the ``video_id, neighbour_id, sim`` table is learnt; serving is the same: each
video of the user's recent history votes for its neighbours with ``sim`` times a recency
weight, and the votes are summed. The table is held as CSR rows of the serving catalogue, so
a request costs its history's neighbour lists, not the catalogue.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix

from vidrec.candidates.base import CandidateGenerator, Nominations, check_k
from vidrec.candidates.common import (
    finish,
    load_state,
    not_fitted,
    recency_weights,
    save_state,
    sum_by_row,
    watches_before,
)
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.request import Request

SIGNALS = ("completed", "watched")
EMPTY = pl.DataFrame(schema={"video_id": pl.String, "neighbour_id": pl.String, "sim": pl.Float64})
"""A neighbour table with no rows."""


def pair_matrix(pairs: pl.DataFrame) -> tuple[pl.Series, csr_matrix]:
    """(sorted video ids, users x videos matrix of ``w``) from ``user_id, video_id, w`` pairs."""
    users = pairs["user_id"].unique().sort()
    items = pairs["video_id"].unique().sort()
    codes = pairs.select(
        u=pl.col("user_id").cast(pl.Enum(users)).to_physical(),
        i=pl.col("video_id").cast(pl.Enum(items)).to_physical(),
        w=pl.col("w").cast(pl.Float64),
    )
    shape = (users.len(), items.len())
    return items, csr_matrix((codes["w"].to_numpy(), (codes["u"].to_numpy(), codes["i"].to_numpy())), shape=shape)


def top_per_row(i: np.ndarray, j: np.ndarray, sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` best ``(j, sim)``, rows ascending, best first, ties to the lower ``j``."""
    order = np.lexsort((j, -sim, i))
    i, j, sim = i[order], j[order], sim[order]
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else np.zeros(0, dtype=np.int64)
    rank = np.arange(len(i)) - np.repeat(starts, np.diff(np.r_[starts, len(i)]))
    keep = rank < k
    return i[keep], j[keep], sim[keep]


class NeighbourGenerator(CandidateGenerator):
    """Votes of the user's last ``config.history`` videos (of ``config.signal``) for their neighbours.

    Subclasses learn the table (:meth:`similarity`); their config carries ``signal``,
    ``history`` and ``recency_decay``.
    """

    config_type: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        self.config = config or self.config_type()
        self._sim: pl.DataFrame | None = None  # video_id, neighbour_id, sim
        self._fitted_at: datetime | None = None

    @abstractmethod
    def similarity(self, train: Dataset, now: datetime) -> pl.DataFrame:
        """``video_id, neighbour_id, sim`` learnt from the events before ``now``, each video's best first."""

    def signal_watches(self, train: Dataset, now: datetime) -> pl.DataFrame:
        """The watches before ``now`` the table learns from: every one, or completions only."""
        ev = watches_before(train.events, train.videos, now)
        return ev.filter(pl.col("completed")) if self.config.signal == "completed" else ev

    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
        self._sim = self.similarity(train, now)
        self._fitted_at = now
        return self.bind(catalogue or Catalogue(train.videos))

    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: each row's neighbours as rows (CSR, best first)."""
        if self._sim is None:
            raise not_fitted(type(self).__name__)
        src, dst = catalogue.rows_of(self._sim["video_id"]), catalogue.rows_of(self._sim["neighbour_id"])
        keep = (src >= 0) & (dst >= 0)
        src, dst, sim = src[keep], dst[keep], self._sim["sim"].to_numpy()[keep].astype(np.float64)
        order = np.argsort(src, kind="stable")  # the table is sorted per video already: keep that order
        counts = np.bincount(src, minlength=len(catalogue))
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._neighbours, self._sims = dst[order], sim[order]
        self.catalogue = catalogue
        catalogue.subscribe(self._on_upload)
        return self

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        """New rows have no neighbours yet: empty lists."""
        self._offsets = np.concatenate([self._offsets, np.full(len(rows), self._offsets[-1])])

    def nominate(self, request: Request, k: int) -> Nominations:
        check_k(k)
        catalogue = self.require_catalogue()
        cfg = self.config
        history = request.recent_completed if cfg.signal == "completed" else request.recent_watched
        rows, weights = recency_weights(history, cfg.history, cfg.recency_decay)
        if len(rows) == 0:
            return Nominations.empty()
        starts, ends = self._offsets[rows], self._offsets[rows + 1]
        lengths = ends - starts
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
        votes = np.repeat(weights, lengths) * self._sims[idx]
        cand, score = sum_by_row(self._neighbours[idx], votes)
        return finish(cand, score, request, catalogue, k)

    def save(self, directory: str | Path) -> Path:
        if self._sim is None or self._fitted_at is None:
            raise not_fitted(type(self).__name__)
        return save_state(Path(directory), self.config, self._fitted_at, {"similarity": self._sim})

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        config, fitted_at, frames = load_state(Path(directory))
        gen = cls(cls.config_type(**config))
        gen._sim, gen._fitted_at = frames["similarity"], fitted_at
        return gen
