"""Fresh uploads in the categories a user likes: new videos have no co-watch history and few
embedding updates, so a generator of their own gives them a way into the candidates.

Score = (category affinity + explore) x early quality x recency, where the affinity is the
user's share of recent watches (completions count extra) in the video's category, the
early quality is the video's completion rate smoothed toward the catalogue's, and the
recency halves every ``half_life_days``. Cold users (no history) get the best fresh videos
overall, since their affinity is zero everywhere.
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
    catalogue_columns,
    finish,
    load_state,
    max_by_row,
    not_fitted,
    save_state,
    watches_before,
)
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.request import Request


@dataclass(frozen=True)
class FreshConfig:
    """What counts as fresh and how affinity, quality and recency combine."""

    window_days: float = 7.0  # uploads this recent (before now) are fresh
    half_life_days: float = 2.0  # recency factor halves with each half-life of age
    prior_weight: float = 5.0  # pseudo-watches at the catalogue's completion rate (smoothing)
    completed_weight: float = 1.0  # extra affinity weight of a completed video over a watched one
    explore: float = 0.05  # added to every category's affinity: globally great fresh videos still enter

    def __post_init__(self) -> None:
        if self.window_days <= 0 or self.half_life_days <= 0:
            raise ValueError("fresh.window_days and fresh.half_life_days must be positive")
        if self.prior_weight < 0 or self.completed_weight < 0 or self.explore < 0:
            raise ValueError("fresh.prior_weight, fresh.completed_weight and fresh.explore must be non-negative")


def category_affinity(request: Request, catalogue: Catalogue, completed_weight: float) -> np.ndarray:
    """(n_categories,) the user's share of recent watching per category code (completions count extra)."""
    rows = np.concatenate([request.recent_watched, request.recent_completed])
    weights = np.concatenate(
        [np.ones(len(request.recent_watched)), np.full(len(request.recent_completed), completed_weight)]
    )
    share = np.bincount(catalogue.category[rows], weights=weights, minlength=len(catalogue.categories))
    total = share.sum()
    return share / total if total > 0 else share


class FreshGenerator(CandidateGenerator):
    """Recent uploads, ranked by category affinity x smoothed completion rate x recency."""

    name = "fresh"

    def __init__(self, config: FreshConfig | None = None) -> None:
        self.config = config or FreshConfig()
        self._videos: pl.DataFrame | None = None  # catalogue + quality (smoothed completion rate)
        self._prior = 0.0  # the catalogue's completion rate: the quality of a video nobody watched yet
        self._fitted_at: datetime | None = None

    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
        ev = watches_before(train.events, train.videos, now)
        prior = float(ev["completed"].mean() or 0.0) if ev.height else 0.0
        m = self.config.prior_weight
        stats = ev.group_by("video_id").agg(n=pl.len(), c=pl.col("completed").sum())
        self._videos = (
            catalogue_columns(train.videos)
            .join(stats, on="video_id", how="left")
            .with_columns(
                quality=(pl.col("c").fill_null(0) + m * prior) / (pl.col("n").fill_null(0) + m),
            )
            .with_columns(quality=pl.col("quality").fill_nan(prior).fill_null(prior))
            .drop("n", "c")
        )
        self._prior = prior
        self._fitted_at = now
        return self.bind(catalogue or Catalogue(train.videos))

    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: each row's early quality (the prior for videos unknown at fit)."""
        if self._videos is None:
            raise not_fitted("FreshGenerator")
        self._quality = np.full(len(catalogue), self._prior)
        rows = catalogue.rows_of(self._videos["video_id"])
        keep = rows >= 0
        self._quality[rows[keep]] = self._videos["quality"].to_numpy()[keep]
        self.catalogue = catalogue
        catalogue.subscribe(self._on_upload)
        return self

    def _on_upload(self, rows: np.ndarray, videos: pl.DataFrame) -> None:
        """New uploads enter the pool at once, at the prior quality (nobody watched them yet)."""
        self._quality = np.concatenate([self._quality, np.full(len(rows), self._prior)])
        new = catalogue_columns(videos).with_columns(quality=pl.lit(self._prior))
        self._videos = pl.concat([self._videos, new], how="vertical_relaxed")  # saved with the generator

    def nominate(self, request: Request, k: int) -> Nominations:
        check_k(k)
        catalogue, cfg = self.require_catalogue(), self.config
        now = request.now_us
        pool = catalogue.uploaded_between(now - int(cfg.window_days * 86_400e6), now)
        pool = pool[catalogue.available[pool]]
        age = np.clip((now - catalogue.uploaded_us[pool]) / 86_400e6, 0.0, None)
        base = self._quality[pool] * np.exp(-math.log(2.0) * age / cfg.half_life_days)
        pool, base = pool[base > 0], base[base > 0]
        if len(pool) == 0:
            return Nominations.empty()
        share = category_affinity(request, catalogue, cfg.completed_weight)
        mine = share[catalogue.category[pool]]
        liked = mine > 0
        # Everyone also sees the globally best fresh videos (all a cold user gets).
        best = np.lexsort((catalogue.id_keys[pool], -base))[: k + len(request.excluded)]
        rows = np.concatenate([pool[liked], pool[best]])
        scores = np.concatenate([(mine[liked] + cfg.explore) * base[liked], cfg.explore * base[best]])
        if cfg.explore == 0 and share.sum() == 0:  # cold users still get the global best order
            rows, scores = np.concatenate([rows, pool[best]]), np.concatenate([scores, base[best]])
        cand, score = max_by_row(rows, scores)
        return finish(cand, score, request, catalogue, k)

    def save(self, directory: str | Path) -> Path:
        if self._videos is None or self._fitted_at is None:
            raise not_fitted("FreshGenerator")
        prior = pl.DataFrame({"prior": [self._prior]})
        return save_state(Path(directory), self.config, self._fitted_at, {"videos": self._videos, "prior": prior})

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        config, fitted_at, frames = load_state(Path(directory))
        gen = cls(FreshConfig(**config))
        gen._videos, gen._fitted_at = frames["videos"], fitted_at
        if "prior" in frames:
            gen._prior = float(frames["prior"]["prior"][0])
        elif gen._videos.height:  # saved before the prior was: the mean quality is a safe stand-in
            gen._prior = float(gen._videos["quality"].mean())
        return gen
