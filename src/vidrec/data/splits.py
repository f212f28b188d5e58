"""Train/test splits by time: a global cut, or each user's last fraction of watches.

A split directory holds ``train/`` (a complete data directory: events of the training
period plus the full videos and users tables), ``test/events.parquet`` and
``split.json``. No training event is later than the test events it is compared with.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl

from vidrec.data.dataset import Dataset, read_dataset, read_table, write_dataset

Mode = Literal["per-user", "global"]


@dataclass(frozen=True)
class SplitConfig:
    """How to split. ``fraction`` is the share of watches (per user or overall) held out."""

    mode: Mode = "per-user"
    fraction: float = 0.2
    cut: datetime | None = None  # global mode only: explicit cut time, overrides fraction

    def __post_init__(self) -> None:
        if self.mode not in ("per-user", "global"):
            raise ValueError(f"split mode must be 'per-user' or 'global', got {self.mode!r}")
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"split fraction must be between 0 and 1, got {self.fraction}")
        if self.cut is not None and self.mode != "global":
            raise ValueError("an explicit cut time needs mode='global'")
        if self.cut is not None and self.cut.tzinfo is None:
            raise ValueError("the cut time must be timezone-aware (UTC)")


def per_user_cut(events: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """Each user's cut time: the timestamp of the first of their last ``fraction`` watches.

    The cut is moved past the user's first watch time if ties would otherwise put every
    watch in the test set, so each user with watches at two distinct times keeps some
    training history. Users without such a second time get no cut. Where the log has
    impressions, the cut moves back to the impression that led to the watch at the cut, so
    an impression and its outcome stay on one side (a shown-then-watched video must not
    look ignored in training). Returns ``user_id, cut``.
    """
    watches = events.filter(pl.col("event") == "watch").select("user_id", "ts")
    ranked = watches.sort("user_id", "ts").with_columns(
        n=pl.len().over("user_id"),
        pos=pl.int_range(pl.len()).over("user_id"),
        first=pl.col("ts").min().over("user_id"),
    )
    second = ranked.filter(pl.col("ts") > pl.col("first")).group_by("user_id").agg(
        second=pl.col("ts").min()
    )
    n_test = (pl.col("n").cast(pl.Float64) * fraction).round().clip(lower_bound=1).cast(pl.Int64)
    cuts = ranked.filter((pl.col("n") >= 2) & (pl.col("pos") == pl.col("n") - n_test))
    cuts = cuts.join(second, on="user_id", how="inner").select(
        "user_id", "first",
        cut=pl.when(pl.col("ts") > pl.col("first")).then(pl.col("ts")).otherwise(pl.col("second")),
    )  # fmt: skip
    return _back_to_impressions(events, cuts)


def _back_to_impressions(events: pl.DataFrame, cuts: pl.DataFrame) -> pl.DataFrame:
    """Each cut moved back to the latest impression of a video watched at the cut (if later
    than the user's first watch, so training keeps a watch)."""
    keys = ["user_id", "video_id"]
    at_cut = (
        events.filter(pl.col("event") == "watch").select(*keys, "ts")
        .join(cuts, on="user_id").filter(pl.col("ts") == pl.col("cut")).select(*keys, "cut", "first")
    )  # fmt: skip
    shown = (
        at_cut.join(events.filter(pl.col("event") == "impression").select(*keys, imp=pl.col("ts")), on=keys)
        .filter((pl.col("imp") <= pl.col("cut")) & (pl.col("imp") > pl.col("first")))
        .group_by(keys).agg(pl.col("imp").max())
        .group_by("user_id").agg(pl.col("imp").min())
    )  # fmt: skip
    return cuts.join(shown, on="user_id", how="left").select("user_id", cut=pl.coalesce("imp", "cut"))


def split_events(events: pl.DataFrame, config: SplitConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split events into (train, test) by time according to ``config``.

    Per-user: everything a user did at or after their cut goes to test. Global: every
    event at or after the cut (given, or the ``1 - fraction`` quantile of watch times).
    """
    if config.mode == "global":
        cut = config.cut or global_cut(events, config.fraction)
        is_test = pl.col("ts") >= pl.lit(cut)
        return events.filter(~is_test), events.filter(is_test)
    return split_at_cuts(events, per_user_cut(events, config.fraction))


def split_at_cuts(events: pl.DataFrame, cuts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(before, at or after) each user's cut (:func:`per_user_cut`); users without one stay before.
    The cuts of one log split any table of its events (with derived columns, say) the same way."""
    tagged = events.join(cuts.select("user_id", "cut"), on="user_id", how="left", maintain_order="left")
    is_test = (pl.col("ts") >= pl.col("cut")).fill_null(False)
    return tagged.filter(~is_test).drop("cut"), tagged.filter(is_test).drop("cut")


def global_cut(events: pl.DataFrame, fraction: float) -> datetime:
    """The time before which ``1 - fraction`` of all watches happened."""
    watches = events.filter(pl.col("event") == "watch")["ts"]
    if watches.len() == 0:
        raise ValueError("cannot place a global cut: the events hold no watch")
    return watches.sort().gather(int((1.0 - fraction) * (watches.len() - 1))).item()


def split_dataset(ds: Dataset, config: SplitConfig) -> tuple[Dataset, pl.DataFrame]:
    """Split a dataset into a training Dataset (all videos and users) and test events."""
    train_events, test_events = split_events(ds.events, config)
    return Dataset(train_events, ds.videos, ds.users), test_events


def write_split(ds: Dataset, out_dir: str | Path, config: SplitConfig) -> dict:
    """Split ``ds`` and write ``train/``, ``test/events.parquet`` and ``split.json``."""
    out = Path(out_dir)
    train, test = split_dataset(ds, config)
    write_dataset(train, out / "train")
    (out / "test").mkdir(parents=True, exist_ok=True)
    test.write_parquet(out / "test" / "events.parquet")
    info = {
        **asdict(config),
        "train_events": train.events.height,
        "test_events": test.height,
        "test_users": test["user_id"].n_unique(),
    }
    (out / "split.json").write_text(json.dumps(info, indent=2, default=str))
    return info


def read_split(split_dir: str | Path) -> tuple[Dataset, pl.DataFrame]:
    """Read a split directory written by :func:`write_split`."""
    root = Path(split_dir)
    train = read_dataset(root / "train")
    test = read_table(root / "test" / "events.parquet", "test events")
    return train, test
