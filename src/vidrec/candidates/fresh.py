"""Fresh uploads in the categories a user likes: new videos have no co-watch history and few
embedding updates, so a generator of their own gives them a way into the candidates.

Score = (category affinity + explore) x early quality x recency, where the affinity is the
user's share of recent watches (completions count extra) in the video's category, the
early quality is the video's completion rate smoothed toward the catalogue's, and the
recency halves every ``half_life_days``. Cold users (no history) get the best fresh videos
overall, since their affinity is zero everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import polars as pl

from vidrec.candidates.base import CandidateGenerator, check_k, empty_candidates
from vidrec.candidates.common import (
    age_days, catalogue, decay, history, load_state, longest_exclusion, not_fitted, recommendable, save_state,
    top_k, ts, watches_before,
)
from vidrec.data.dataset import Dataset


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


def category_affinity(users: pl.DataFrame, cat: pl.DataFrame, completed_weight: float) -> pl.DataFrame:
    """``user_id, category, share``: each user's share of recent watching per category."""
    votes = pl.concat(
        [
            history(users, "recent_watched"),
            history(users, "recent_completed").with_columns(w=pl.col("w") * completed_weight),
        ]
    )
    per = (
        votes.join(cat.select("video_id", "category"), on="video_id", how="inner")
        .group_by("user_id", "category")
        .agg(w=pl.col("w").sum())
        .filter(pl.col("w") > 0)
    )
    return per.select("user_id", "category", share=pl.col("w") / pl.col("w").sum().over("user_id"))


class FreshGenerator(CandidateGenerator):
    """Recent uploads, ranked by category affinity x smoothed completion rate x recency."""

    name = "fresh"

    def __init__(self, config: FreshConfig | None = None) -> None:
        self.config = config or FreshConfig()
        self._videos: pl.DataFrame | None = None  # catalogue + quality (smoothed completion rate)
        self._prior = 0.0  # the catalogue's completion rate: the quality of a video nobody watched yet
        self._fitted_at: datetime | None = None

    def fit(self, train: Dataset, now: datetime) -> Self:
        ev = watches_before(train.events, train.videos, now)
        prior = float(ev["completed"].mean() or 0.0) if ev.height else 0.0
        m = self.config.prior_weight
        stats = ev.group_by("video_id").agg(n=pl.len(), c=pl.col("completed").sum())
        self._videos = (
            catalogue(train.videos)
            .join(stats, on="video_id", how="left")
            .with_columns(
                quality=(pl.col("c").fill_null(0) + m * prior) / (pl.col("n").fill_null(0) + m),
            )
            .with_columns(quality=pl.col("quality").fill_nan(prior).fill_null(prior))
            .drop("n", "c")
        )
        self._prior = prior
        self._fitted_at = now
        return self

    def add_videos(self, videos: pl.DataFrame) -> None:
        """New uploads enter the pool at once, at the prior quality (nobody watched them yet)."""
        if self._videos is None:
            raise not_fitted("FreshGenerator")
        new = catalogue(videos).join(self._videos, on="video_id", how="anti")
        self._videos = pl.concat([self._videos, new.with_columns(quality=pl.lit(self._prior))], how="vertical_relaxed")

    def remove_videos(self, video_ids: pl.Series | list[str]) -> None:
        """Never nominate these videos again (removed from the platform)."""
        if self._videos is not None:
            gone = pl.col("video_id").is_in(pl.Series(video_ids, dtype=pl.String).implode())
            self._videos = self._videos.with_columns(available=pl.col("available") & ~gone)

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        check_k(k)
        if self._videos is None:
            raise not_fitted("FreshGenerator")
        cfg = self.config
        pool = (
            recommendable(self._videos, now)
            .filter(pl.col("uploaded_at") >= ts(now) - pl.duration(seconds=cfg.window_days * 86400))
            .select("video_id", "category", base=pl.col("quality") * decay(age_days("uploaded_at", now), cfg.half_life_days))
            .filter(pl.col("base") > 0)
        )
        if pool.height == 0 or users.height == 0:
            return empty_candidates()
        affinity = category_affinity(users, self._videos, cfg.completed_weight)
        liked = affinity.join(pool, on="category", how="inner").select(
            "user_id", "video_id", score=(pl.col("share") + cfg.explore) * pl.col("base")
        )
        # Everyone also sees the globally best fresh videos (all a cold user gets).
        best = pool.sort("base", "video_id", descending=[True, False]).head(k + longest_exclusion(users))
        anyone = users.select("user_id").join(best, how="cross").select(
            "user_id", "video_id", score=cfg.explore * pl.col("base")
        )
        scored = pl.concat([liked, anyone]).group_by("user_id", "video_id").agg(pl.col("score").max())
        if cfg.explore == 0:  # cold users still get the global best order
            cold = users.join(affinity, on="user_id", how="anti").select("user_id").join(best, how="cross")
            scored = pl.concat([scored, cold.select("user_id", "video_id", score=pl.col("base"))])
        return top_k(scored, users, k, self.name)

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
