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

import numpy as np
import polars as pl

from vidrec.candidates.base import CandidateGenerator, Nominations, check_k
from vidrec.candidates.common import (
    age_days,
    decay,
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
        self._present: list[str] = []  # the group_by columns the users table had
        self._lists: pl.DataFrame | None = None  # group, video_id, score; best first per group
        self._fitted_at: datetime | None = None

    def fit(self, train: Dataset, now: datetime, catalogue: Catalogue | None = None) -> Self:
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
            .select(
                "group", "video_id", score=(pl.col("c") + cfg.smoothing * pl.col("p")) / (pl.col("n") + cfg.smoothing)
            )
        )
        # A group's list continues with the global ranking (scaled the same way) after its own videos.
        everyone = glob.select("video_id", score=pl.col("p"))
        lists = pl.concat([within, everyone.with_columns(group=pl.lit(GLOBAL)).select("group", "video_id", "score")])
        self._lists = lists.sort(["group", "score", "video_id"], descending=[False, True, False]).filter(
            pl.int_range(pl.len()).over("group") < cfg.per_group
        )
        self._groups = groups
        self._present = [c for c in cfg.group_by if c in train.users.columns]
        self._fitted_at = now
        return self.bind(catalogue or Catalogue(train.videos))

    def bind(self, catalogue: Catalogue) -> Self:
        """Serve from ``catalogue``: each group's list as rows, best first."""
        if self._lists is None:
            raise not_fitted("DemographicGenerator")
        rows = catalogue.rows_of(self._lists["video_id"])
        keep = rows >= 0
        lists = self._lists.with_columns(row=pl.Series(rows)).filter(pl.Series(keep))
        self._group_rows = {
            str(g): (part["row"].to_numpy(), part["score"].to_numpy().astype(np.float64))
            for (g,), part in lists.group_by("group", maintain_order=True)
        }
        self.catalogue = catalogue
        return self

    def group_of(self, request: Request) -> str:
        """The request's group key from its profile; GLOBAL when any attribute is missing."""
        values = [request.profile.get(c) for c in self._present]
        if not values or any(v is None for v in values):
            return GLOBAL
        return "|".join(values)  # type: ignore[arg-type]

    def nominate(self, request: Request, k: int) -> Nominations:
        check_k(k)
        catalogue, cfg = self.require_catalogue(), self.config
        if cfg.max_history is not None and len(request.recent_watched) > cfg.max_history:
            return Nominations.empty()
        depth = k + len(request.excluded)
        parts = []
        for group, scale in ((self.group_of(request), 1.0), (GLOBAL, 1e-3)):
            # Users of groups with short lists fall back on the global ranking (at a lower score).
            rows, scores = self._group_rows.get(group, (np.zeros(0, np.int64), np.zeros(0)))
            ok = catalogue.recommendable(rows, request.now_us)
            parts.append((rows[ok][:depth], scores[ok][:depth] * scale))
        cand, score = max_by_row(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return finish(cand, score, request, catalogue, k)

    def save(self, directory: str | Path) -> Path:
        if self._lists is None or self._groups is None or self._fitted_at is None:
            raise not_fitted("DemographicGenerator")
        frames = {"groups": self._groups, "lists": self._lists,
                  "present": pl.DataFrame({"column": self._present}, schema={"column": pl.String})}  # fmt: skip
        return save_state(Path(directory), self.config, self._fitted_at, frames)

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        config, fitted_at, frames = load_state(Path(directory))
        config["group_by"] = tuple(config["group_by"])
        gen = cls(DemographicConfig(**config))
        gen._groups, gen._lists = frames["groups"], frames["lists"]
        gen._present = frames["present"]["column"].to_list()
        gen._fitted_at = fitted_at
        return gen
