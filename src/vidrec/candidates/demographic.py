"""Popular with people like a new user: popularity within (country, age bucket) groups of the
users table, the one signal a user with no history already has.

A video's group score is the share of the group's active users who watched it, smoothed
toward its global share with ``smoothing`` pseudo-users, so small groups borrow from the
whole platform; a user outside every group (unknown, or without the attributes) gets the
global ranking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import polars as pl

from vidrec.candidates.base import CandidateGenerator, check_k, empty_candidates
from vidrec.candidates.common import (
    age_days, catalogue, decay, load_state, longest_exclusion, not_fitted, recommendable, save_state, top_k,
    watches_before,
)
from vidrec.data.dataset import Dataset

GLOBAL = "*"  # the group of users without (known) attributes


@dataclass(frozen=True)
class DemographicConfig:
    """Which user columns define a group, which users are served, and the smoothing."""

    group_by: tuple[str, ...] = ("country", "age_bucket")  # users-table columns; missing ones are ignored
    max_history: int | None = 5  # serve users with at most this many watched videos (None: everyone)
    smoothing: float = 20.0  # pseudo-users at the global rate added to each group
    half_life_days: float | None = 14.0  # a watch counts half after this many days (None: no decay)
    per_group: int = 1000  # videos kept per group, best first

    def __post_init__(self) -> None:
        if not self.group_by:
            raise ValueError("demographic.group_by needs at least one users-table column")
        if self.max_history is not None and self.max_history < 0:
            raise ValueError(f"demographic.max_history must be non-negative or None, got {self.max_history}")
        if self.smoothing < 0:
            raise ValueError(f"demographic.smoothing must be non-negative, got {self.smoothing}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"demographic.half_life_days must be positive or None, got {self.half_life_days}")
        if self.per_group < 1:
            raise ValueError("demographic.per_group must be at least 1")


def group_keys(users: pl.DataFrame, group_by: tuple[str, ...]) -> pl.DataFrame:
    """``user_id, group``: the group key of each user; users missing any attribute are GLOBAL."""
    present = [c for c in group_by if c in users.columns]
    if not present:
        return users.select("user_id", group=pl.lit(GLOBAL))
    key = pl.concat_str([pl.col(c).cast(pl.String) for c in present], separator="|")
    return users.select("user_id", group=key.fill_null(GLOBAL))


class DemographicGenerator(CandidateGenerator):
    """Most watched within the user's demographic group; global popularity otherwise."""

    name = "demographic"

    def __init__(self, config: DemographicConfig | None = None) -> None:
        self.config = config or DemographicConfig()
        self._groups: pl.DataFrame | None = None  # user_id, group
        self._lists: pl.DataFrame | None = None  # group, video_id, score; best first per group
        self._catalogue: pl.DataFrame | None = None
        self._fitted_at: datetime | None = None

    def fit(self, train: Dataset, now: datetime) -> Self:
        cfg = self.config
        groups = group_keys(train.users, cfg.group_by)
        ev = watches_before(train.events, train.videos, now)
        w = pl.lit(1.0) if cfg.half_life_days is None else decay(age_days("ts", now), cfg.half_life_days)
        pairs = ev.group_by("user_id", "video_id").agg(w=w.max()).join(groups, on="user_id", how="left")
        pairs = pairs.with_columns(pl.col("group").fill_null(GLOBAL))
        active = pairs.group_by("group").agg(n=pl.col("user_id").n_unique())
        n_all = max(pairs["user_id"].n_unique(), 1)
        glob = pairs.group_by("video_id").agg(p=pl.col("w").sum() / n_all)
        within = (
            pairs.filter(pl.col("group") != GLOBAL)
            .group_by("group", "video_id")
            .agg(c=pl.col("w").sum())
            .join(active, on="group")
            .join(glob, on="video_id")
            .select("group", "video_id", score=(pl.col("c") + cfg.smoothing * pl.col("p")) / (pl.col("n") + cfg.smoothing))
        )
        # A group's list continues with the global ranking (scaled the same way) after its own videos.
        everyone = glob.select("video_id", score=pl.col("p"))
        lists = pl.concat([within, everyone.with_columns(group=pl.lit(GLOBAL)).select("group", "video_id", "score")])
        self._lists = lists.sort(["group", "score", "video_id"], descending=[False, True, False]).filter(
            pl.int_range(pl.len()).over("group") < cfg.per_group
        )
        self._groups = groups
        self._catalogue = catalogue(train.videos)
        self._fitted_at = now
        return self

    def generate(self, users: pl.DataFrame, k: int, now: datetime) -> pl.DataFrame:
        check_k(k)
        if self._lists is None or self._groups is None or self._catalogue is None:
            raise not_fitted("DemographicGenerator")
        cfg = self.config
        served = users if cfg.max_history is None else users.filter(pl.col("recent_watched").list.len() <= cfg.max_history)
        if served.height == 0:
            return empty_candidates()
        keyed = served.select("user_id").join(self._groups, on="user_id", how="left").with_columns(
            pl.col("group").fill_null(GLOBAL)
        )
        lists = self._lists.join(recommendable(self._catalogue, now).select("video_id"), on="video_id", how="semi")
        depth = k + longest_exclusion(served)
        own = keyed.join(lists.filter(pl.int_range(pl.len()).over("group") < depth), on="group", how="inner")
        # Users of groups with short lists fall back on the global ranking (at a lower score).
        glob = lists.filter(pl.col("group") == GLOBAL).head(depth).drop("group")
        fallback = keyed.select("user_id").join(glob, how="cross").with_columns(score=pl.col("score") * 1e-3)
        scored = pl.concat([own.select("user_id", "video_id", "score"), fallback]).group_by("user_id", "video_id").agg(
            pl.col("score").max()
        )
        return top_k(scored, served, k, self.name)

    def save(self, directory: str | Path) -> Path:
        if self._lists is None or self._groups is None or self._catalogue is None or self._fitted_at is None:
            raise not_fitted("DemographicGenerator")
        frames = {"groups": self._groups, "lists": self._lists, "catalogue": self._catalogue}
        return save_state(Path(directory), self.config, self._fitted_at, frames)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        config, fitted_at, frames = load_state(Path(directory))
        config["group_by"] = tuple(config["group_by"])
        gen = cls(DemographicConfig(**config))
        gen._groups, gen._lists, gen._catalogue = frames["groups"], frames["lists"], frames["catalogue"]
        gen._fitted_at = fitted_at
        return gen
