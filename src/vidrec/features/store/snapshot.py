"""A model version's starting state: its training log aggregated, the state a fresh store is loaded with.

Written once when a version is saved (``state/`` in the version folder) and never changed:
any store -- in memory, a SQLite file, a Redis namespace -- starts from it and then applies
the event log, so a version gives the same recommendations however much it has served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from vidrec.catalogue import Catalogue
from vidrec.features.store.deltas import PAIR_TABLES, Deltas, StoreConfig, compute_deltas

STATE_DIR = "state"
_FRAMES = ("firsts", "user_counts", "video_counts", "attributes")


@dataclass(frozen=True)
class VersionState:
    """The aggregated training log (:class:`Deltas`) and the users' profiles (demographics)."""

    deltas: Deltas
    profiles: pl.DataFrame  # user_id + string columns of the users table

    @classmethod
    def build(
        cls, events: pl.DataFrame, catalogue: Catalogue, users: pl.DataFrame, config: StoreConfig
    ) -> VersionState:
        """Aggregate ``events`` (every video in ``catalogue``) and keep the users' string columns."""
        meta = catalogue.meta(catalogue.rows_of(events["video_id"].unique()), config.title_words)
        return cls(compute_deltas(events, meta, config), profiles(users))

    def save(self, directory: str | Path) -> Path:
        root = Path(directory) / STATE_DIR
        root.mkdir(parents=True, exist_ok=True)
        d = self.deltas
        for name in _FRAMES:
            getattr(d, name).write_parquet(root / f"{name}.parquet")
        for table, frame in d.pairs.items():
            frame.write_parquet(root / f"pair_{table}.parquet")
        self.profiles.write_parquet(root / "profiles.parquet")
        (root / "totals.json").write_text(json.dumps({"totals": d.totals, "last_event_us": d.last_event_us}))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> VersionState:
        root = Path(directory) / STATE_DIR
        frames = {name: pl.read_parquet(root / f"{name}.parquet") for name in _FRAMES}
        pairs = {table: pl.read_parquet(root / f"pair_{table}.parquet") for table in PAIR_TABLES}
        totals = json.loads((root / "totals.json").read_text())
        deltas = Deltas(frames["firsts"], frames["user_counts"], pairs, frames["video_counts"], frames["attributes"],
                        totals["totals"], totals["last_event_us"])  # fmt: skip
        return cls(deltas, pl.read_parquet(root / "profiles.parquet"))


def profiles(users: pl.DataFrame) -> pl.DataFrame:
    """``user_id`` and the string columns of a users table (the demographics requests carry)."""
    cols = [c for c, t in users.schema.items() if c != "user_id" and t == pl.String]
    return users.select(pl.col("user_id").cast(pl.String), *cols).unique("user_id", keep="first")
