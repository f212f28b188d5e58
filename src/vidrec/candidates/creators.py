"""More from the creators a user completes most: the subscription-like signal of a video
platform. Each creator's videos are ranked by recent popularity plus a bonus for new
uploads; a user's candidates are those lists, weighted by the creator's share of the
user's recent completions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import polars as pl

from vidrec.candidates.base import CandidateGenerator, check_k, empty_candidates
from vidrec.candidates.common import (
    age_days, catalogue, decay, exclusions, history, load_state, not_fitted, recommendable, save_state, top_k, watches_before,
)
from vidrec.data.dataset import Dataset


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

    def fit(self, train: Dataset, now: datetime) -> Self:
        cfg = self.config
        ev = watches_before(train.events, train.videos, now)
        weight = (1.0 + pl.col("completed").cast(pl.Float64)) * decay(age_days("ts", now), cfg.popularity_half_life_days)
        pop = ev.group_by("video_id").agg(pop=weight.sum())
        fresh = cfg.new_upload_bonus * decay(age_days("uploaded_at", now), cfg.new_upload_half_life_days)
        self._videos = (
            catalogue(train.videos)
            .filter(pl.col("available"))
            .join(pop, on="video_id", how="left")
            .with_columns(value=pl.col("pop").fill_null(0.0).log1p() + fresh)
            .drop("pop")
            .sort(["creator_id", "value", "video_id"], descending=[False, True, False])
        )
        self._fitted_at = now
        return self

    def add_videos(self, videos: pl.DataFrame) -> None:
        """New uploads join their creator's shelf at once, valued by the new-upload bonus alone.

        Their age is measured at the fit clock (as every shelf value is), so an upload
        after fit counts as brand new: no watches yet, the full bonus.
        """
        if self._videos is None or self._fitted_at is None:
            raise not_fitted("CreatorsGenerator")
        cfg = self.config
        fresh = cfg.new_upload_bonus * decay(age_days("uploaded_at", self._fitted_at), cfg.new_upload_half_life_days)
        new = (
            catalogue(videos)
            .filter(pl.col("available"))
            .join(self._videos, on="video_id", how="anti")
            .with_columns(value=fresh)
        )
        self._videos = pl.concat([self._videos, new], how="vertical_relaxed").sort(
            ["creator_id", "value", "video_id"], descending=[False, True, False]
        )

    def remove_videos(self, video_ids: pl.Series | list[str]) -> None:
        """Never nominate these videos again (removed from the platform)."""
        if self._videos is not None:
            gone = pl.Series(video_ids, dtype=pl.String).implode()
            self._videos = self._videos.filter(~pl.col("video_id").is_in(gone))

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        check_k(k)
        if self._videos is None:
            raise not_fitted("CreatorsGenerator")
        cfg = self.config
        votes = pl.concat(
            [
                history(users, "recent_completed"),
                history(users, "recent_watched").with_columns(w=pl.col("w") * cfg.watched_weight),
            ]
        ).join(self._videos.select("video_id", "creator_id"), on="video_id", how="inner")
        if votes.height == 0:
            return empty_candidates()
        creators = (
            votes.group_by("user_id", "creator_id")
            .agg(w=pl.col("w").sum())
            .with_columns(share=pl.col("w") / pl.col("w").sum().over("user_id"))
            .sort(["user_id", "share", "creator_id"], descending=[False, True, False])
            .filter(pl.int_range(pl.len()).over("user_id") < cfg.top_creators)
        )
        shelf = recommendable(self._videos, now).select("creator_id", "video_id", "value")
        scored = (
            creators.join(shelf, on="creator_id", how="inner")
            .join(exclusions(users), on=["user_id", "video_id"], how="anti")
            .sort(["user_id", "creator_id", "value", "video_id"], descending=[False, False, True, False])
            .filter(pl.int_range(pl.len()).over("user_id", "creator_id") < cfg.per_creator)
            .select("user_id", "video_id", score=pl.col("share") * (pl.col("value") + 1e-6))
        )
        return top_k(scored, users, k, self.name)

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
