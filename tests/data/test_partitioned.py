"""A data directory whose events are a folder of Parquet files (one per day) is validated one
file at a time, with the same guarantees as one file: every valid row kept, every invalid
row quarantined naming its file and row, duplicates found across files; training on it
gives the model that training on the same rows in one file gives."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.candidates.two_tower.distributed import parameter_checksum
from vidrec.data.dataset import read_dataset, write_dataset
from vidrec.data.validation import read_valid
from vidrec.errors import DataError
from vidrec.recommender import Recommender


def _partition(root: Path, events: pl.DataFrame) -> list[pl.DataFrame]:
    """Write ``events`` as events/day=YYYY-MM-DD/part.parquet; returns the parts in path order."""
    parts = []
    for (day,), part in sorted(events.group_by(pl.col("ts").dt.date(), maintain_order=True), key=lambda g: g[0]):
        folder = root / "events" / f"day={day}"
        folder.mkdir(parents=True)
        part.write_parquet(folder / "part.parquet")
        parts.append(part)
    return parts


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    ds = two_audiences(seed=4)
    one, many = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("many")
    events = ds.events.sort("ts")
    bad = events.filter(pl.col("event") == "watch").head(1).with_columns(watch_seconds=pl.lit(-3.0),
                                                                         ts=events["ts"].max())  # fmt: skip
    parts = _partition(many, pl.concat([events, bad]))
    parts[-1] = pl.concat([parts[-1], events.head(1)])  # day 1's first event again, in the last day's file
    parts[-1].write_parquet(sorted((many / "events").rglob("*.parquet"))[-1])
    for folder in (one, many):
        ds.videos.write_parquet(folder / "videos.parquet")
        ds.users.write_parquet(folder / "users.parquet")
    pl.concat(parts).write_parquet(one / "events.parquet")
    return one, many


def test_partitions_validate_like_one_file(dirs) -> None:
    one, many = dirs
    a, b = read_valid(one), read_valid(many)
    assert a.dataset.events.equals(b.dataset.events)
    reasons = sorted(b.quarantine["reason"].to_list())
    assert reasons == sorted(a.quarantine["reason"].to_list()) == ["duplicate_event", "invalid_watch_seconds"]
    files = set(b.quarantine["source_file"].to_list())
    assert all(f.startswith("events/day=") and f.endswith("/part.parquet") for f in files)
    invalid = b.quarantine.filter(pl.col("reason") == "invalid_watch_seconds").row(0, named=True)
    part = pl.read_parquet(many / invalid["source_file"])
    assert part.row(invalid["source_row"] - 1, named=True)["watch_seconds"] == -3.0
    assert read_dataset(many).events.height == read_dataset(one).events.height


def test_training_on_partitions_gives_the_same_model(dirs) -> None:
    one, many = dirs
    models = [Recommender.train(d, small_config(), log=lambda m: None) for d in (one, many)]
    a, b = (m.pipeline for m in models)
    assert parameter_checksum(a.ranker.model) == parameter_checksum(b.ranker.model)
    assert parameter_checksum(a.generators[0].model) == parameter_checksum(b.generators[0].model)


def test_an_empty_events_folder_is_a_clear_error(tmp_path: Path) -> None:
    ds = two_audiences()
    write_dataset(ds, tmp_path)
    (tmp_path / "events.parquet").unlink()
    (tmp_path / "events").mkdir()
    with pytest.raises(DataError, match="holds no .parquet file"):
        read_valid(tmp_path)
