"""What every adapter returns, and the careful readers they share.

Adapters turn a real log into the canonical tables (:mod:`vidrec.data.schema`) without
judging it: a row that cannot be parsed still comes through, with the unreadable value
set to null, so that validation can quarantine it with its row number and a reason.
Two bookkeeping columns ride along on every frame (both start with ``__`` and are
dropped before a data directory is written):

* ``__source_row__`` (Int64): the 1-based data-row number in the table's source file
  (the first row after any header is 1); null for rows an adapter had to build because
  the source file did not list them (each such case is counted in ``RawTables.notes``).
* ``__parse_error__`` (String): why a value in the row could not be read
  (e.g. ``"rating: cannot read 'x'"``); null for rows that parsed cleanly. The column
  is present only in tables where at least one row failed, so clean sources carry no
  trace of it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from vidrec.data.schema import TABLES, TIMESTAMP
from vidrec.errors import DataError

SOURCE_ROW = "__source_row__"
PARSE_ERROR = "__parse_error__"
EPOCH_UNITS: dict[str, int] = {"s": 1_000_000, "ms": 1_000, "us": 1}
"""Epoch unit -> microseconds per unit."""


@dataclass
class RawTables:
    """Canonical-named frames straight from a source, before validation.

    ``sources`` maps a table name to the file(s) its rows came from (for error
    messages); ``notes`` says, in words, which mapping choices touched how many rows.
    """

    events: pl.DataFrame
    videos: pl.DataFrame
    users: pl.DataFrame
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Drop ``__parse_error__`` from tables where every row parsed."""
        for name in ("events", "videos", "users"):
            df = getattr(self, name)
            if PARSE_ERROR in df.columns and df[PARSE_ERROR].null_count() == df.height:
                setattr(self, name, df.drop(PARSE_ERROR))


def require_file(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it is a readable file, else raise a DataError naming it."""
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "file not found"
        raise DataError(f"{path}: {problem} ({what})", hint)
    return path


def read_lines(
    path: Path, names: Sequence[str], separator: str, encoding: str = "utf8"
) -> pl.DataFrame:
    """Read a header-less, quote-less delimited file (MovieLens ``u.data``, ``*.dat``).

    Every field comes back as a stripped String (empty -> null) in a column named by
    ``names``. A line with the wrong number of fields keeps its row with all fields null
    and a ``__parse_error__`` quoting it; blank lines are skipped (row numbers still
    count them, so they match the file's line numbers). Raises DataError if most lines
    have the wrong number of fields: then the file is not in the expected format.
    """
    lines = _read_raw_lines(path, encoding).with_row_index(SOURCE_ROW, offset=1)
    lines = lines.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.col("line").str.strip_chars())
    lines = lines.filter(pl.col("line").is_not_null() & (pl.col("line") != ""))
    parts = pl.col("line").str.split(separator)
    lines = lines.with_columns(__nfields__=parts.list.len())
    ok = pl.col("__nfields__") == len(names)
    _check_format(lines, path, names, separator)
    fields = [
        pl.when(ok).then(_blank_to_null(parts.list.get(i, null_on_oob=True).str.strip_chars())).alias(n)
        for i, n in enumerate(names)
    ]
    error = pl.when(~ok).then(
        pl.format(
            "expected {} fields separated by '{}', found {}: '{}'",
            pl.lit(len(names)), pl.lit(separator), pl.col("__nfields__"), pl.col("line").str.slice(0, 80),
        )
    )
    return lines.select(*fields, SOURCE_ROW, error.alias(PARSE_ERROR))


def _read_raw_lines(path: Path, encoding: str) -> pl.DataFrame:
    """One String column ``line`` per physical line of ``path`` (latin-1 is re-encoded)."""
    try:
        if encoding == "utf8":
            source: Path | io.BytesIO = path
        else:
            source = io.BytesIO(path.read_bytes().decode(encoding).encode("utf8"))
        return pl.read_csv(
            source, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
            infer_schema=False, encoding="utf8-lossy", raise_if_empty=False,
        )
    except (OSError, UnicodeError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})", "check that the file is a text file") from None


def _check_format(lines: pl.DataFrame, path: Path, names: Sequence[str], separator: str) -> None:
    bad = lines.filter(pl.col("__nfields__") != len(names))
    if lines.height == 0 or bad.height * 2 <= lines.height:
        return
    first = bad.row(0, named=True)
    raise DataError(
        f"{path}: not in the expected format: each line should hold {len(names)} fields "
        f"({', '.join(names)}) separated by {separator!r}, but {bad.height} of {lines.height} "
        f"lines do not; line {first[SOURCE_ROW]} reads {first['line'][:80]!r}",
        "check that this is the right file for the source you named, and that it was not "
        "re-saved with another separator",
    )


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr == "").then(None).otherwise(expr)


def csv_columns(path: Path, separator: str = ",") -> list[str]:
    """The header of a CSV file, as a DataError if the file cannot be read."""
    try:
        return pl.read_csv(path, n_rows=0, infer_schema=False, separator=separator).columns
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})", "check the file") from None


def require_columns(
    path: Path, columns: Sequence[str], required: Sequence[str], hint: str, separator: str = ","
) -> None:
    """Raise a DataError naming the file and the columns it lacks (and a likely separator)."""
    missing = [c for c in required if c not in columns]
    if not missing:
        return
    found = ", ".join(columns) if columns else "none"
    message = f"{path}: missing column(s) {', '.join(missing)}; the header has: {found}"
    if len(columns) == 1:
        other = next((s for s in (",", ";", "\t", "|", "::") if s != separator and s in columns[0]), None)
        if other is not None:
            message += f" (the file seems to be separated by {other!r}, not {separator!r})"
    raise DataError(message, hint)


def read_csv_checked(
    path: Path, dtypes: Mapping[str, pl.DataType], *, keep_extra: bool = False, separator: str = ","
) -> pl.DataFrame:
    """Read a CSV with a header, the columns in ``dtypes`` typed, bad values null.

    The fast path reads typed columns directly; if any value does not parse (or a line
    has too many fields) the file is re-read as text and each value is cast on its own,
    so the other rows keep their values and the bad ones get a ``__parse_error__``.
    Extra columns are kept as String when ``keep_extra`` is true.
    """
    columns = list(dtypes) if not keep_extra else None
    try:
        df = pl.read_csv(
            path, columns=columns, infer_schema=False, schema_overrides=dict(dtypes), separator=separator,
            raise_if_empty=False,
        )
        df = df.with_columns(pl.lit(None, pl.String).alias(PARSE_ERROR))
    except pl.exceptions.PolarsError:
        df = pl.read_csv(
            path, columns=columns, infer_schema=False, separator=separator, truncate_ragged_lines=True,
            raise_if_empty=False,
        )
        df = cast_checked(df.with_columns(pl.lit(None, pl.String).alias(PARSE_ERROR)), dtypes)
        df = _mark_ragged(df, path, separator, list(dtypes))
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})", "check the file") from None
    df = df.with_row_index(SOURCE_ROW, offset=1).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    return _drop_blank_rows(df)


def _mark_ragged(df: pl.DataFrame, path: Path, separator: str, fields: list[str]) -> pl.DataFrame:
    """Null the fields of lines with the wrong number of fields and say why."""
    lines = _read_raw_lines(path, "utf8").slice(1)
    if lines.height != df.height:  # quoted line breaks: the count cannot be aligned
        return df
    n_header = len(csv_columns(path, separator))
    unquoted = pl.col("line").str.replace_all(r'"[^"]*"', "")
    count = lines.select(unquoted.str.count_matches(separator, literal=True) + 1).to_series()
    ok = (count == n_header) | lines["line"].is_null()
    df = df.with_columns(__ok__=ok, __n__=count)
    message = pl.format("expected {} fields, found {}", pl.lit(n_header), pl.col("__n__"))
    return df.with_columns(
        *[pl.when(pl.col("__ok__")).then(pl.col(c)).alias(c) for c in fields],
        pl.when(pl.col("__ok__")).then(pl.col(PARSE_ERROR)).otherwise(message).alias(PARSE_ERROR),
    ).drop("__ok__", "__n__")


def _drop_blank_rows(df: pl.DataFrame) -> pl.DataFrame:
    data = [c for c in df.columns if c not in (SOURCE_ROW, PARSE_ERROR)]
    if not data:
        return df
    return df.filter(~pl.all_horizontal(pl.col(data).is_null()) | pl.col(PARSE_ERROR).is_not_null())


def cast_checked(df: pl.DataFrame, dtypes: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Cast String columns to ``dtypes``; values that do not parse become null + a reason."""
    todo = {c: t for c, t in dtypes.items() if c in df.columns and df.schema[c] != t}
    if not todo:
        return df
    parsed = {c: pl.col(c).str.strip_chars().cast(t, strict=False) for c, t in todo.items()}
    return with_parsed(df, parsed)


def with_parsed(df: pl.DataFrame, parsed: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """Replace columns by parsed expressions, recording in ``__parse_error__`` what failed.

    A text value fails when it is non-blank but its parsed value is null; the raw value
    is quoted in the reason so a user can find it in the file. Columns that are not text
    (typed CSV reads, Parquet) were readable by construction and are not checked.
    """
    if PARSE_ERROR not in df.columns:
        df = df.with_columns(pl.lit(None, pl.String).alias(PARSE_ERROR))
    reasons = []
    for name, expr in parsed.items():
        if name in df.columns and df.schema[name] != pl.String:
            continue  # a typed value was read already; only text can be unreadable
        raw = pl.col(name)
        failed = raw.is_not_null() & (raw.str.strip_chars() != "") & expr.is_null()
        reasons.append(pl.when(failed).then(pl.format("{}: cannot read '{}'", pl.lit(name), raw.str.slice(0, 40))))
    merged = pl.concat_str([pl.col(PARSE_ERROR), *reasons], separator="; ", ignore_nulls=True)
    return df.with_columns(
        **{name: expr for name, expr in parsed.items()},
        **{PARSE_ERROR: pl.when(merged == "").then(None).otherwise(merged)},
    )


def int_id(expr: pl.Expr, dtype: pl.DataType = pl.String()) -> pl.Expr:  # noqa: B008 - a type, immutable
    """An integer id as its canonical String (``"007"`` -> ``"7"``); non-integers -> null.

    ``dtype`` is the column's current type: integer columns are only cast (fast path).
    """
    if dtype.is_integer():
        return expr.cast(pl.String)
    return expr.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False).cast(pl.String)


def from_epoch(expr: pl.Expr, unit: str = "s") -> pl.Expr:
    """Epoch numbers (int or float, in ``unit``) as canonical UTC timestamps."""
    if unit not in EPOCH_UNITS:
        raise ValueError(f"unknown epoch unit {unit!r}; expected one of {sorted(EPOCH_UNITS)}")
    micros = (expr.cast(pl.Float64).fill_nan(None) * EPOCH_UNITS[unit]).round(0).cast(pl.Int64)
    return micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def check_timezone(name: str, where: str) -> str:
    """Return ``name`` if it is an IANA time zone (e.g. ``"Asia/Shanghai"``), else a DataError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = 'use an IANA name such as "UTC" or "Europe/Paris"'
        raise DataError(f"{where}: unknown time zone {name!r}", hint) from None
    return name


def to_utc(expr: pl.Expr, dtype: pl.DataType, timezone: str = "UTC") -> pl.Expr:
    """A Datetime expression of ``dtype`` as canonical UTC (naive values are in ``timezone``)."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return expr.dt.convert_time_zone("UTC").cast(TIMESTAMP)
    local = expr.cast(pl.Datetime("us")).dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC")


def infer_numeric(df: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Cast String columns to Int64 (or Float64) when every non-blank value is a number."""
    casts = []
    for name in columns:
        if df.schema[name] != pl.String:
            continue
        text = pl.col(name).str.strip_chars()
        present = df.select((text.is_not_null() & (text != "")).sum()).item()
        for dtype in (pl.Int64, pl.Float64):
            if df.select(text.cast(dtype, strict=False).is_not_null().sum()).item() == present:
                casts.append(text.cast(dtype, strict=False).alias(name))
                break
    return df.with_columns(casts) if casts else df


def first_seen(events: pl.DataFrame, key: str) -> pl.DataFrame:
    """Per ``key``: the earliest event time and the source row of its first event.

    Rows come in order of first appearance in the source, so outputs are deterministic.
    """
    return (
        events.group_by(key)
        .agg(first_ts=pl.col("ts").min(), first_row=pl.col(SOURCE_ROW).min())
        .sort("first_row", key, nulls_last=True)
    )


def plural(n: int, word: str) -> str:
    """``"1 movie"``, ``"2 movies"``: counts in notes read naturally."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def canonical_order(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Columns in schema order: required, optional, extras, then the ``__`` bookkeeping."""
    required, optional = TABLES[table]
    known = [c for c in (*required, *optional) if c in df.columns]
    extra = [c for c in df.columns if c not in known and not c.startswith("__")]
    book = [c for c in df.columns if c.startswith("__")]
    return df.select(*known, *extra, *book)


TRUE_WORDS = ("true", "t", "1", "yes", "y", "public", "available")
FALSE_WORDS = ("false", "f", "0", "no", "n", "private", "unavailable")


def parse_bool(series: pl.Series) -> pl.Series:
    """Booleans from booleans, numbers (non-zero is true) or words (true/false, yes/no, 1/0...)."""
    if series.dtype == pl.Boolean:
        return series
    if series.dtype.is_numeric():
        return series.fill_nan(None) != 0 if series.dtype.is_float() else series != 0
    words = {**{w: True for w in TRUE_WORDS}, **{w: False for w in FALSE_WORDS}}
    text = series.cast(pl.String).str.strip_chars().str.to_lowercase()
    return text.replace_strict(words, default=None, return_dtype=pl.Boolean)


def parse_time(series: pl.Series, fmt: str | None, timezone: str, where: str) -> pl.Series:
    """Canonical UTC timestamps from dates, datetimes, epoch numbers or text.

    ``fmt`` is ``"epoch_s"``, ``"epoch_ms"``, ``"epoch_us"``, a strftime pattern, or
    ``None`` / ``"iso"`` to recognise ISO 8601 text. Naive values are read in ``timezone``.
    Unreadable values become null; a column that cannot be read at all is a DataError.
    """
    name, dtype = series.name, series.dtype
    frame = series.to_frame()
    if fmt is not None and fmt.startswith("epoch_"):
        unit = fmt.removeprefix("epoch_")
        if unit not in EPOCH_UNITS:
            hint = "use epoch_s, epoch_ms, epoch_us, iso or a strftime pattern"
            raise DataError(f"{where}: unknown time format {fmt!r}", hint)
        number = pl.col(name)
        if not dtype.is_numeric():
            number = number.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
        return frame.select(from_epoch(number, unit)).to_series()
    if isinstance(dtype, pl.Datetime):
        return frame.select(to_utc(pl.col(name), dtype, timezone)).to_series()
    if isinstance(dtype, pl.Date):
        return frame.select(to_utc(pl.col(name), pl.Datetime("us"), timezone)).to_series()
    if dtype.is_numeric():
        raise DataError(
            f"{where}: column {name!r} holds numbers, not dates",
            'set its format to "epoch_s", "epoch_ms" or "epoch_us" (seconds, milliseconds or microseconds since 1970)',
        )
    text = series.cast(pl.String).str.strip_chars()
    try:
        parsed = text.str.to_datetime(None if fmt in (None, "iso") else fmt, time_unit="us", strict=False)
    except pl.exceptions.PolarsError:
        raise DataError(
            f"{where}: column {name!r} cannot be read as times (first value {text.drop_nulls().head(1).to_list()})",
            "give its format: a strftime pattern such as \"%Y-%m-%d %H:%M:%S\", or epoch_s / epoch_ms",
        ) from None
    return parsed.to_frame().select(to_utc(pl.col(name), parsed.dtype, timezone)).to_series()
