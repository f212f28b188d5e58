"""More from the creators a user completes most: the subscription-like signal of a video
platform. Each creator's videos are ranked by recent popularity plus a bonus for new
uploads; a user's candidates are those lists, weighted by the creator's share of the
user's recent completions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import numpy as np
import polars as pl

from vidrec.candidates.base import CandidateGenerator, Nominations, check_k
from vidrec.candidates.common import (
    age_days,
    catalogue_columns,
    decay,
    finish,
    first_eligible,
    load_state,
    not_fitted,
    save_state,
    sum_by_row,
    watches_before,
)
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import epoch_us
from vidrec.request import Request


@dataclass(frozen=True)
class CreatorsConfig:
    """How a user's creators are chosen and how each creator's videos are ordered."""

    top_creators: int = 10  # creators per user, by share of the user's recent completions
    per_creator: int = 50  # unseen videos nominated per creator, best first
    watched_weight: float = 0.25  # a watched-not-completed video votes this much for its creator
    popularity_half_life_days: float = 14.0  # a watch counts half after this many days
    new_upload_bonus: float = 1.0  # added to log-popularity for a video uploaded right now
    new_upload_half_life_days: float = 7.0  # the bonus halves with each such period of age

    def __post_init__(self) -> None:
        if self.top_creators < 1 or self.per_creator < 1:
            raise ValueError("creators.top_creators and creators.per_creator must be at least 1")
        if self.popularity_half_life_days <= 0 or self.new_upload_half_life_days <= 0:
            raise ValueError("creators half-lives must be positive")
        if self.watched_weight < 0 or self.new_upload_bonus < 0:
            raise ValueError("creators.watched_weight and creators.new_upload_bonus must be non-negative")


class CreatorsGenerator(CandidateGenerator):
    """Popular and new videos of the creators the user completes most."""

    name = "creators"

    def __init__(self, config: CreatorsConfig | None = None) -> None:
        self.config = config or CreatorsConfig()
        self._videos: pl.DataFrame | None = None  # catalogue + value, per creator best first
        self._fitted_at: datetime | None = None

    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
        cfg = self.config
        ev = watches_before(train.events, train.videos, now)
        recency = decay(age_days("ts", now), cfg.popularity_half_life_days)
        weight = (1.0 + pl.col("completed").cast(pl.Float64)) * recency
        pop = ev.group_by("video_id").agg(pop=weight.sum())
        fresh = cfg.new_upload_bonus * decay(age_days("uploaded_at", now), cfg.new_upload_half_life_days)
        self._videos = (
            catalogue_columns(train.videos)
            .filter(pl.col("available"))
            .join(pop, on="video_id", how="left")
            .with_columns(value=pl.col("pop").fill_null(0.0).log1p() + fresh)
            .drop("pop")
            .sort(["creator_id", "value", "video_id"], descending=[False, True, False])
        )
        self._fitted_at = now
        return self.bind(catalogue or Catalogue(train.videos))

    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: every creator's shelf as rows, best value first."""
        if self._videos is None or self._fitted_at is None:
            raise not_fitted("CreatorsGenerator")
        self._value = np.full(len(catalogue), np.nan)  # NaN: not on a shelf (unavailable at fit)
        rows = catalogue.rows_of(self._videos["video_id"])
        keep = rows >= 0
        self._value[rows[keep]] = self._videos["value"].to_numpy()[keep]
        self.catalogue = catalogue
        self._shelve()
        catalogue.subscribe(self._on_upload)
        return self

    def _shelve(self) -> None:
        """Rows grouped by creator code, each creator's best value first (ties by id)."""
        catalogue = self.require_catalogue()
        on = np.flatnonzero(~np.isnan(self._value))
        order = np.lexsort((catalogue.id_keys[on], -self._value[on], catalogue.creator[on]))
        self._shelf = on[order]
        counts = np.bincount(catalogue.creator[self._shelf], minlength=len(catalogue.creators))
        self._offsets = np.concatenate([[0], np.cumsum(counts)])

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        """New uploads join their creator's shelf at once, valued by the new-upload bonus alone.

        Their age is measured at the fit clock (as every shelf value is), so an upload
        after fit counts as brand new: no watches yet, the full bonus.
        """
        cfg, catalogue = self.config, self.require_catalogue()
        assert self._fitted_at is not None
        age = np.clip((epoch_us(self._fitted_at) - catalogue.uploaded_us[rows]) / 86_400e6, 0.0, None)
        value = cfg.new_upload_bonus * np.exp(-math.log(2.0) * age / cfg.new_upload_half_life_days)
        value[~catalogue.available[rows]] = np.nan
        self._value = np.concatenate([self._value, value])
        self._shelve()
        shelved = catalogue_columns(videos).with_columns(value=pl.Series(value)).filter(pl.col("value").is_not_nan())
        self._videos = pl.concat([self._videos, shelved], how="vertical_relaxed")  # saved with the generator

    def nominate(self, request: Request, k: int) -> Nominations:
        check_k(k)
        catalogue, cfg = self.require_catalogue(), self.config
        rows = np.concatenate([request.recent_completed, request.recent_watched])
        weights = np.concatenate(
            [np.ones(len(request.recent_completed)), np.full(len(request.recent_watched), cfg.watched_weight)]
        )
        voted = ~np.isnan(self._value[rows])
        if not voted.any():
            return Nominations.empty()
        creators, votes = sum_by_row(catalogue.creator[rows[voted]], weights[voted])
        share = votes / votes.sum()
        names = np.array([catalogue.creators.names[c] for c in creators], dtype=object)
        top = np.lexsort((names.astype(str), -share))[: cfg.top_creators]
        picks, scores = [], []
        for c, s in zip(creators[top], share[top]):  # at most top_creators shelves
            shelf = self._shelf[self._offsets[c] : self._offsets[c + 1]]
            pos = first_eligible(shelf, request, catalogue, cfg.per_creator)
            picks.append(shelf[pos])
            scores.append(s * (self._value[shelf[pos]] + 1e-6))
        return finish(np.concatenate(picks), np.concatenate(scores), request, catalogue, k)

    def save(self, directory: str | Path) -> Path:
        if self._videos is None or self._fitted_at is None:
            raise not_fitted("CreatorsGenerator")
        return save_state(Path(directory), self.config, self._fitted_at, {"videos": self._videos})

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        config, fitted_at, frames = load_state(Path(directory))
        gen = cls(CreatorsConfig(**config))
        gen._videos, gen._fitted_at = frames["videos"], fitted_at
        return gen
