"""Adapters: real logs (MovieLens, KuaiRec, any CSV/Parquet table) -> canonical raw tables.

Each adapter is ``load(path, **options) -> RawTables``; it renames and converts but
never drops or repairs rows, which is validation's job (:mod:`vidrec.data.validation`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import polars as pl

from vidrec.data.adapters import kuairec, movielens, table
from vidrec.data.adapters.base import PARSE_ERROR, SOURCE_ROW, RawTables
from vidrec.errors import DataError, VidrecError

ADAPTERS: dict[str, Callable[..., RawTables]] = {
    "movielens": movielens.load,
    "kuairec": kuairec.load,
    "table": table.load,
}
"""Source name (as typed after ``vidrec ingest``) -> loader."""

WHAT_TO_PASS: dict[str, str] = {
    "movielens": "the folder of an unpacked MovieLens archive (ml-100k, ml-1m, ml-latest, ml-20m, ml-25m)",
    "kuairec": "the data/ folder of the KuaiRec 2.0 archive",
    "table": "a mapping TOML file, a folder holding mapping.toml, or a CSV/Parquet events file",
}


def load_source(source: str, path: str | Path, **options: object) -> RawTables:
    """Run the adapter named ``source`` on ``path``; every data problem is a DataError."""
    if source not in ADAPTERS:
        raise DataError(f"unknown source {source!r}", f"use one of: {', '.join(ADAPTERS)}")
    where = Path(path).expanduser()
    if not where.exists():
        raise DataError(f"{where}: no such file or folder", f"pass {WHAT_TO_PASS[source]}")
    loader = ADAPTERS[source]
    _check_options(source, loader, options)
    try:
        return loader(where, **options)
    except VidrecError:
        raise
    except (OSError, UnicodeError, pl.exceptions.PolarsError) as exc:
        raise DataError(
            f"{where}: could not be read as {source} data ({type(exc).__name__}: {exc})",
            f"check that it is {WHAT_TO_PASS[source]}",
        ) from None


def _check_options(source: str, loader: Callable[..., RawTables], options: dict[str, object]) -> None:
    """Refuse options the adapter does not take, listing those it does."""
    params = list(inspect.signature(loader).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = [p.name for p in params]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DataError(
            f"the {source} source does not take the option(s) {', '.join(unknown)}",
            f"its options are: {', '.join(known) or 'none'}",
        )


__all__ = ["ADAPTERS", "PARSE_ERROR", "SOURCE_ROW", "RawTables", "load_source"]
