"""Casting raw columns to the canonical types without losing the rows that fail.

Every function returns an expression that yields null where a value cannot be
converted; validation compares with the raw column to report those rows as
``wrong_type`` instead of dropping them.
"""

from __future__ import annotations

import polars as pl

from vidrec.data.schema import TIMESTAMP

_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)
_AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%#z", "%Y-%m-%d %H:%M:%S%#z")
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def timestamp(name: str, dtype: pl.DataType) -> pl.Expr:
    """A UTC microsecond timestamp from a datetime, date or ISO-8601 string column.

    Naive datetimes and strings without an offset are taken as UTC. Numbers are not
    accepted: an epoch is ambiguous (seconds or milliseconds), so adapters convert them.
    """
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        col = col.dt.cast_time_unit("us")
        if dtype.time_zone is None:
            return col.dt.replace_time_zone("UTC")
        return col.dt.convert_time_zone("UTC")
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype == pl.String:
        attempts = [
            col.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC")
            for f in _NAIVE_FORMATS
        ] + [
            col.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
            for f in _AWARE_FORMATS
        ]
        return pl.coalesce(attempts)
    if dtype == pl.Null:
        return col.cast(TIMESTAMP)
    return pl.lit(None, dtype=TIMESTAMP)


def boolean(name: str, dtype: pl.DataType) -> pl.Expr:
    """A boolean from a bool, 0/1 integer or a true/false-like string column."""
    col = pl.col(name)
    if dtype == pl.Boolean:
        return col
    if dtype.is_integer():
        return pl.when(col == 1).then(True).when(col == 0).then(False)
    if dtype == pl.String:
        low = col.str.strip_chars().str.to_lowercase()
        return pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False)
    if dtype == pl.Null:
        return col.cast(pl.Boolean)
    return pl.lit(None, dtype=pl.Boolean)


def string_list(name: str, dtype: pl.DataType) -> pl.Expr:
    """A list of strings; a plain string is split on ``|`` and null becomes an empty list."""
    col = pl.col(name)
    if isinstance(dtype, (pl.List, pl.Array)):
        out = col.cast(pl.List(pl.String), strict=False)
    elif dtype == pl.String:
        out = col.str.split("|").list.eval(pl.element().str.strip_chars()).list.eval(
            pl.element().filter(pl.element() != "")
        )
    elif dtype == pl.Null:
        out = col.cast(pl.List(pl.String))
    else:
        return pl.lit(None, dtype=pl.List(pl.String))
    return out.fill_null(pl.lit([], dtype=pl.List(pl.String)))


def string(name: str, dtype: pl.DataType) -> pl.Expr:
    """A trimmed string id or label; numbers are accepted and written as text."""
    col = pl.col(name)
    if dtype == pl.String:
        return col.str.strip_chars()
    if dtype.is_integer() or dtype == pl.Categorical or dtype == pl.Null:
        return col.cast(pl.String)
    if isinstance(dtype, pl.Enum):
        return col.cast(pl.String)
    return pl.lit(None, dtype=pl.String)


def number(name: str, dtype: pl.DataType) -> pl.Expr:
    """A float64 from a numeric or numeric-looking string column."""
    col = pl.col(name)
    if dtype.is_numeric() or dtype == pl.Null:
        return col.cast(pl.Float64)
    if dtype == pl.String:
        return col.str.strip_chars().cast(pl.Float64, strict=False)
    return pl.lit(None, dtype=pl.Float64)


def to_canonical(name: str, target: pl.DataType, dtype: pl.DataType) -> pl.Expr:
    """Pick the right coercion for a column of type ``dtype`` towards ``target``."""
    if isinstance(target, pl.Datetime):
        expr = timestamp(name, dtype)
    elif target == pl.Boolean:
        expr = boolean(name, dtype)
    elif isinstance(target, pl.List):
        expr = string_list(name, dtype)
    elif target == pl.Float64:
        expr = number(name, dtype)
    else:
        expr = string(name, dtype)
    return expr.alias(name)


def as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """The raw value as text, for reporting what was wrong."""
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        return pl.struct(pl.col(name)).struct.json_encode()
    return pl.col(name).cast(pl.String, strict=False)
