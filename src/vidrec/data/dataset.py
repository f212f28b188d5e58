"""A data directory in the canonical schema: reading, writing, readable errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from vidrec.data.schema import TABLES
from vidrec.errors import DataError

TABLE_NAMES: tuple[str, ...] = ("events", "videos", "users")


@dataclass
class Dataset:
    """The three canonical tables held in memory as Polars frames."""

    events: pl.DataFrame
    videos: pl.DataFrame
    users: pl.DataFrame

    def table(self, name: str) -> pl.DataFrame:
        """Return a table by its canonical name (``events``, ``videos`` or ``users``)."""
        if name not in TABLE_NAMES:
            raise KeyError(f"unknown table {name!r}; expected one of {TABLE_NAMES}")
        return getattr(self, name)

    def conform(self) -> Dataset:
        """Cast the documented columns to their canonical types (extra columns kept)."""
        return Dataset(*(conform_table(self.table(n), n) for n in TABLE_NAMES))


def conform_table(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Cast present documented columns of ``df`` to the types in :mod:`vidrec.data.schema`."""
    required, optional = TABLES[name]
    spec = {**required, **optional}
    casts = [pl.col(c).cast(t) for c, t in spec.items() if c in df.columns and df.schema[c] != t]
    return df.with_columns(casts) if casts else df


def table_files(root: Path, table: str) -> list[Path]:
    """The Parquet files of one table of a data directory: ``TABLE.parquet``, or every
    ``*.parquet`` under a ``TABLE/`` folder (partitions such as one file per day, Hive-style
    ``day=.../`` folders included), in path order."""
    single, folder = root / f"{table}.parquet", root / table
    if single.exists():
        return [single]
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
        if files:
            return files
        raise DataError(f"{folder}: holds no .parquet file (the {table} table)",
                        f"put the {table} table's Parquet files there, for example one per day")  # fmt: skip
    raise DataError(
        f"{single}: file not found (the {table} table)",
        f"a data directory needs {', '.join(n + '.parquet' for n in TABLE_NAMES)} (or a folder of "
        "Parquet files per table); create one with `vidrec ingest` or `vidrec simulate`",
    )


def read_table(path: Path, table: str) -> pl.DataFrame:
    """Read one Parquet table, turning a missing or unreadable file into a clear error."""
    if not path.exists():
        raise DataError(
            f"{path}: file not found (the {table} table)",
            f"a data directory needs {', '.join(n + '.parquet' for n in TABLE_NAMES)}; "
            "create one with `vidrec ingest` or `vidrec simulate`",
        )
    try:
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a corrupt file
        raise DataError(
            f"{path}: cannot be read as Parquet ({type(exc).__name__}: {exc})",
            "write the table as Parquet, or ingest CSV files with `vidrec ingest table`",
        ) from None


def read_tables(files: list[Path], table: str) -> pl.DataFrame:
    """The rows of every file of one table, in file order (columns a file lacks are null)."""
    frames = [read_table(path, table) for path in files]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def read_dataset(directory: str | Path) -> Dataset:
    """Read ``events``, ``videos`` and ``users`` Parquet tables (or folders of them) from ``directory``."""
    root = Path(directory)
    if not root.is_dir():
        raise DataError(
            f"{root}: not a directory",
            "pass a folder holding events.parquet, videos.parquet and users.parquet",
        )
    tables = {name: read_tables(table_files(root, name), name) for name in TABLE_NAMES}
    return Dataset(**tables)


def write_dataset(ds: Dataset, directory: str | Path) -> Path:
    """Write the three tables as Parquet into ``directory`` (created if needed)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for name in TABLE_NAMES:
        ds.table(name).write_parquet(root / f"{name}.parquet")
    return root
