"""Any CSV or Parquet log, mapped onto the canonical tables by a small TOML file.

For logs in other shapes: name which column holds what, and how to read times and
event kinds. ``PATH`` is the mapping file, a folder holding ``mapping.toml``, or the
events file itself (with the mapping passed as options). The mapping format::

    [events]                       # required
    file = "log.csv"               # CSV or Parquet; relative to the mapping file's folder
    format = "csv"                 # optional: csv | parquet (default: from the extension)
    separator = ","                # CSV only (default "," and "\\t" for .tsv)
    user_id = "uid"                # required column names ...
    video_id = "item"
    ts = "time"
    ts_format = "%Y-%m-%d %H:%M:%S" # or "epoch_s" | "epoch_ms" | "epoch_us" | "iso" (default)
    timezone = "UTC"               # for times written without an offset (default UTC)
    event = "action"               # optional: without it every row is default_event
    default_event = "watch"
    watch_seconds = "secs"         # required when there are watch events
    watch_unit = "s"               # or "ms"

    [events.event_values]          # source value -> impression | watch | like | dislike;
    view = "watch"                 # values not listed pass through unchanged
    thumbs_up = "like"             # (validation rejects those that are not kinds)

    [videos]                       # optional; without "file" videos are built from events
    file = "items.parquet"
    video_id = "id"
    creator_id = "author"          # default "unknown-creator-<video_id>"
    category = "genre"             # default "unknown"
    tags = "labels"                # a list column, or text split on tags_separator;
    tags_separator = "|"           # default: no tags
    duration_seconds = "length"    # this column, or default_duration_seconds, is needed
    duration_unit = "s"            # or "ms"
    default_duration_seconds = 600.0  # used where the column is absent or empty
    uploaded_at = "published"      # default: the video's first event
    uploaded_at_format = "iso"     # same choices as ts_format
    available = "visible"          # true/false, 1/0, yes/no, public/private; default true
    title = "name"                 # optional
    language = "lang"              # optional

    [users]                        # optional; without "file" users are built from events
    file = "users.csv"
    user_id = "uid"
    country = "cc"                 # optional columns ...
    age_bucket = "age_group"
    signed_up_at = "joined"        # default: the user's first event
    signed_up_at_format = "iso"

Other columns of each file are kept as extra columns (renamed ``source_<name>`` if the
name is a canonical one). Videos or users seen in the events but missing from their
file are added with the defaults above, and counted in the notes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from vidrec.data.adapters.base import (
    PARSE_ERROR,
    SOURCE_ROW,
    RawTables,
    canonical_order,
    check_timezone,
    csv_columns,
    first_seen,
    infer_numeric,
    parse_bool,
    parse_time,
    plural,
    read_csv_checked,
    with_parsed,
)
from vidrec.data.schema import TABLES, TIMESTAMP
from vidrec.errors import DataError

MAPPING_NAME = "mapping.toml"
COMMON_KEYS = ("file", "format", "separator")
KEYS: dict[str, tuple[str, ...]] = {
    "events": (*COMMON_KEYS, "user_id", "video_id", "ts", "ts_format", "timezone", "event", "default_event",
               "watch_seconds", "watch_unit", "event_values"),
    "videos": (*COMMON_KEYS, "video_id", "creator_id", "category", "tags", "tags_separator", "duration_seconds",
               "duration_unit", "default_duration_seconds", "uploaded_at", "uploaded_at_format", "timezone",
               "available", "title", "language"),
    "users": (*COMMON_KEYS, "user_id", "country", "age_bucket", "signed_up_at", "signed_up_at_format", "timezone"),
}  # fmt: skip
COLUMN_KEYS: dict[str, tuple[str, ...]] = {
    "events": ("user_id", "video_id", "ts", "event", "watch_seconds"),
    "videos": ("video_id", "creator_id", "category", "tags", "duration_seconds", "uploaded_at", "available",
               "title", "language"),
    "users": ("user_id", "country", "age_bucket", "signed_up_at"),
}  # fmt: skip
UNITS = {"s": 1.0, "ms": 0.001}
NO_CREATOR_PREFIX = "unknown-creator-"


def load(
    path: Path,
    mapping_file: str | Path | None = None,
    events: Mapping[str, Any] | None = None,
    videos: Mapping[str, Any] | None = None,
    users: Mapping[str, Any] | None = None,
) -> RawTables:
    """Read CSV/Parquet files as described by a mapping (TOML file, options, or both).

    Options override the mapping file key by key, e.g.
    ``load(Path("log.csv"), events={"user_id": "uid", "video_id": "item", "ts": "t"})``.
    """
    path = Path(path)
    mapping, where, base, default_file = _resolve(path, mapping_file)
    for section, given in (("events", events), ("videos", videos), ("users", users)):
        if given:
            mapping[section] = {**mapping.get(section, {}), **given}
    _check_keys(mapping, where)
    if "events" not in mapping:
        raise DataError(f"{where}: no [events] section", "map at least user_id, video_id and ts of the events file")
    if default_file is not None:
        mapping["events"].setdefault("file", str(default_file))
    notes: list[str] = []
    ev, ev_file = _events(mapping["events"], base, where, notes)
    vids, vid_file = _videos(mapping.get("videos", {}), ev, base, where, notes)
    usrs, usr_file = _users(mapping.get("users", {}), ev, base, where, notes)
    return RawTables(ev, vids, usrs, {"events": ev_file, "videos": vid_file, "users": usr_file}, notes)


def _resolve(path: Path, mapping_file: str | Path | None) -> tuple[dict[str, Any], str, Path, Path | None]:
    """The mapping, how to name it in messages, the folder files are relative to, a default events file."""
    if mapping_file is None and path.suffix == ".toml":
        mapping_file, path = path, path.parent
    if mapping_file is None and path.is_dir() and (path / MAPPING_NAME).is_file():
        mapping_file = path / MAPPING_NAME
    default_file = path if path.is_file() else None
    if mapping_file is None:
        base = path if path.is_dir() else path.parent
        return {}, "the table mapping (options)", base, default_file
    mapping_path = Path(mapping_file)
    if not mapping_path.is_file():
        raise DataError(f"{mapping_path}: mapping file not found", f"write one as described in {__name__}")
    try:
        mapping = tomllib.loads(mapping_path.read_text(encoding="utf8"))
    except (tomllib.TOMLDecodeError, UnicodeError) as exc:
        raise DataError(f"{mapping_path}: not valid TOML ({exc})", "fix the syntax of the mapping file") from None
    return mapping, str(mapping_path), mapping_path.parent, default_file


def _check_keys(mapping: Mapping[str, Any], where: str) -> None:
    for section, body in mapping.items():
        if section not in KEYS:
            raise DataError(f"{where}: unknown section [{section}]", "sections are [events], [videos] and [users]")
        if not isinstance(body, Mapping):
            raise DataError(f"{where}: [{section}] must be a table of keys", f"write [{section}] on its own line")
        unknown = sorted(set(body) - set(KEYS[section]))
        if unknown:
            raise DataError(
                f"{where}: unknown key(s) {', '.join(unknown)} in [{section}]",
                f"the keys of [{section}] are: {', '.join(KEYS[section])}",
            )
        for key in COLUMN_KEYS[section]:
            if key in body and not isinstance(body[key], str):
                raise DataError(f"{where}: [{section}] {key} must be a column name (text)", f'write {key} = "column"')
        for key in set(body) - set(COLUMN_KEYS[section]) - {"event_values", "default_duration_seconds"}:
            if not isinstance(body[key], str):
                raise DataError(f"{where}: [{section}] {key} must be text, got {body[key]!r}", f'write {key} = "..."')
        values = body.get("event_values", {})
        if not isinstance(values, Mapping) or not all(isinstance(v, str) for v in values.values()):
            raise DataError(
                f"{where}: [events.event_values] must map source values to event kinds",
                'write e.g. [events.event_values] then view = "watch" on its own line',
            )
        if "timezone" in body:
            check_timezone(body["timezone"], f"{where}: [{section}] timezone")


def _read(spec: Mapping[str, Any], section: str, base: Path, where: str) -> tuple[pl.DataFrame, Path]:
    """Read the section's file, check that every named column exists, rename to canonical."""
    if "file" not in spec:
        raise DataError(f"{where}: [{section}] has no file", f'add file = "{section}.csv" (CSV or Parquet)')
    path = Path(spec["file"]) if Path(spec["file"]).is_absolute() else base / spec["file"]
    if not path.is_file():
        raise DataError(f"{path}: file not found ([{section}] file in {where})", "fix the path in the mapping")
    kind = spec.get("format") or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    named = {key: spec[key] for key in COLUMN_KEYS[section] if key in spec}
    if kind not in ("csv", "parquet"):
        raise DataError(f"{where}: [{section}] format {kind!r} is not known", 'use format = "csv" or "parquet"')
    sep = spec.get("separator") or ("\t" if path.suffix.lower() == ".tsv" else ",")
    columns = _columns(path, kind, sep)
    missing = [f"{c!r} (for {k})" for k, c in named.items() if c not in columns]
    if missing:
        found = ", ".join(columns) or "none"
        guess = next((s for s in (",", ";", "\t", "|") if len(columns) == 1 and s != sep and s in columns[0]), None)
        raise DataError(
            f"{path}: column {', '.join(missing)} not found; the file has: {found}"
            + (f" (it seems to be separated by {guess!r}; set separator)" if guess else ""),
            f"fix the column name in [{section}] of {where}, or rename the column in the file",
        )
    if kind == "csv":
        df = read_csv_checked(path, {}, keep_extra=True, separator=sep)
    else:
        df = pl.read_parquet(path).with_row_index(SOURCE_ROW, offset=1)
        df = df.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64), pl.lit(None, pl.String).alias(PARSE_ERROR))
    return _rename(df, named, section), path


def _columns(path: Path, kind: str, separator: str) -> list[str]:
    if kind == "csv":
        return csv_columns(path, separator)
    try:
        return list(pl.read_parquet_schema(path))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: cannot be read as Parquet ({exc})", 'check the file, or set format = "csv"') from None


def _rename(df: pl.DataFrame, named: Mapping[str, str], section: str) -> pl.DataFrame:
    """Mapped columns take their canonical names; extras clashing with one get ``source_``."""
    required, optional = TABLES[section]
    canonical = {*required, *optional, "event", "ts"}
    picked = [pl.col(column).alias(key) for key, column in named.items()]
    extras = [c for c in df.columns if c not in named.values() and not c.startswith("__")]
    new_names = [f"source_{c}" if c in canonical else c for c in extras]
    renamed = [pl.col(c).alias(n) for c, n in zip(extras, new_names)]
    out = df.select(*picked, *renamed, SOURCE_ROW, PARSE_ERROR)
    return infer_numeric(out, new_names)


def _text_id(key: str) -> pl.Expr:
    return pl.col(key).cast(pl.String).str.strip_chars()


def _number(df: pl.DataFrame, key: str, scale: float) -> pl.Expr:
    value = pl.col(key) if df.schema[key].is_numeric() else pl.col(key).cast(pl.String).str.strip_chars()
    return value.cast(pl.Float64, strict=False) * scale


def _unit(spec: Mapping[str, Any], key: str, where: str, section: str) -> float:
    unit = spec.get(key, "s")
    if unit not in UNITS:
        raise DataError(f"{where}: [{section}] {key} = {unit!r} is not known", 'use "s" or "ms"')
    return UNITS[unit]


def _times(df: pl.DataFrame, key: str, spec: Mapping[str, Any], fmt_key: str, where: str, section: str) -> pl.Expr:
    zone = spec.get("timezone", "UTC")
    series = parse_time(df[key], spec.get(fmt_key), zone, f"{where} [{section}] {key}")
    return pl.lit(series.cast(TIMESTAMP))


def _events(spec: Mapping[str, Any], base: Path, where: str, notes: list[str]) -> tuple[pl.DataFrame, str]:
    for key in ("user_id", "video_id", "ts"):
        if key not in spec:
            raise DataError(f"{where}: [events] does not say which column holds {key}", f'add {key} = "<column>"')
    df, path = _read(spec, "events", base, where)
    values = spec.get("event_values", {})
    kind = pl.col("event").cast(pl.String).str.strip_chars().replace(dict(values)) if "event" in spec else None
    df = df.with_columns(event=kind if kind is not None else pl.lit(spec.get("default_event", "watch")))
    scale = _unit(spec, "watch_unit", where, "events")
    parsed = {"user_id": _text_id("user_id"), "video_id": _text_id("video_id"),
              "ts": _times(df, "ts", spec, "ts_format", where, "events")}  # fmt: skip
    if "watch_seconds" in spec:
        parsed["watch_seconds"] = _number(df, "watch_seconds", scale)
    elif df.filter(pl.col("event") == "watch").height:
        raise DataError(
            f"{path}: the log has watch events but [events] maps no watch_seconds column ({where})",
            'add watch_seconds = "<column>" (and watch_unit = "ms" for milliseconds)',
        )
    else:
        df = df.with_columns(watch_seconds=pl.lit(None, pl.Float64))
    df = with_parsed(df, parsed)
    counts = ", ".join(f"{n:,} {k}" for k, n in sorted(df.group_by("event").len().iter_rows(), key=str))
    notes.append(f"{path.name}: {plural(df.height, 'event')} ({counts})")
    return canonical_order(df, "events"), str(path)


def _videos(
    spec: Mapping[str, Any], events: pl.DataFrame, base: Path, where: str, notes: list[str]
) -> tuple[pl.DataFrame, str]:
    default = spec.get("default_duration_seconds")
    if default is not None and (not isinstance(default, (int, float)) or isinstance(default, bool) or default <= 0):
        raise DataError(f"{where}: [videos] default_duration_seconds must be a positive number, got {default!r}",
                        "write e.g. default_duration_seconds = 600")  # fmt: skip
    if "duration_seconds" not in spec and default is None:
        raise DataError(
            f"{where}: videos need a duration and none is given",
            'map [videos] duration_seconds = "<column>" or set [videos] default_duration_seconds = <seconds>',
        )
    first = first_seen(events.filter(pl.col("video_id").is_not_null()), "video_id").drop("first_row")
    if "file" in spec:
        df, path = _read(spec, "videos", base, where)
        source = str(path)
        if "video_id" not in spec:
            raise DataError(f"{where}: [videos] does not say which column holds video_id", 'add video_id = "<column>"')
        df = with_parsed(df, {"video_id": _text_id("video_id")})
    else:
        df = pl.DataFrame(schema={"video_id": pl.String, SOURCE_ROW: pl.Int64, PARSE_ERROR: pl.String})
        source = "the events (no videos file)"
        notes.append("no videos file: videos built from the event video ids with default fields")
    missing = first.join(df, on="video_id", how="anti").select("video_id")
    if missing.height and "file" in spec:
        notes.append(f"{plural(missing.height, 'video')} in the events but not in the videos file: added with defaults")
    df = pl.concat([df, missing], how="diagonal_relaxed").join(first, on="video_id", how="left")
    parsed = {}
    if "duration_seconds" in spec:
        parsed["duration_seconds"] = _number(df, "duration_seconds", _unit(spec, "duration_unit", where, "videos"))
    if "uploaded_at" in spec:
        parsed["uploaded_at"] = _times(df, "uploaded_at", spec, "uploaded_at_format", where, "videos")
    if "available" in spec:
        parsed["available"] = pl.lit(parse_bool(df["available"]))
    df = with_parsed(df, parsed)
    listed = pl.col(SOURCE_ROW).is_not_null()  # rows from the file; the others were added
    defaults = {
        "creator_id": pl.lit(NO_CREATOR_PREFIX) + pl.col("video_id"),
        "category": pl.lit("unknown"),
        "duration_seconds": pl.lit(default, pl.Float64),
        "uploaded_at": pl.col("first_ts"),
        "available": pl.lit(True),
    }
    filled = {k: pl.when(listed).then(pl.col(k)).otherwise(v) if k in spec else v for k, v in defaults.items()}
    if "duration_seconds" in spec and default is not None:
        filled["duration_seconds"] = pl.col("duration_seconds").fill_null(default)
    df = df.with_columns(**filled, tags=_tags(df, spec)).drop("first_ts")
    return canonical_order(df, "videos"), source


def _tags(df: pl.DataFrame, spec: Mapping[str, Any]) -> pl.Expr:
    """A list column as is, text split on ``tags_separator``, or no tags."""
    if "tags" not in spec:
        return pl.lit([], pl.List(pl.String))
    if isinstance(df.schema["tags"], pl.List):
        return pl.col("tags").cast(pl.List(pl.String)).fill_null([])
    parts = pl.col("tags").cast(pl.String).fill_null("").str.split(spec.get("tags_separator", "|"))
    return parts.list.eval(pl.element().str.strip_chars()).list.filter(pl.element() != "")


def _users(
    spec: Mapping[str, Any], events: pl.DataFrame, base: Path, where: str, notes: list[str]
) -> tuple[pl.DataFrame, str]:
    first = first_seen(events.filter(pl.col("user_id").is_not_null()), "user_id")
    if "file" not in spec:
        notes.append("no users file: users built from the event user ids (signed_up_at = first event)")
        built = first.rename({"first_ts": "signed_up_at", "first_row": SOURCE_ROW})
        return canonical_order(built.with_columns(pl.lit(None, pl.String).alias(PARSE_ERROR)), "users"), "the events"
    if "user_id" not in spec:
        raise DataError(f"{where}: [users] does not say which column holds user_id", 'add user_id = "<column>"')
    df, path = _read(spec, "users", base, where)
    parsed: dict[str, pl.Expr] = {"user_id": _text_id("user_id")}
    if "signed_up_at" in spec:
        parsed["signed_up_at"] = _times(df, "signed_up_at", spec, "signed_up_at_format", where, "users")
    df = with_parsed(df, parsed)
    missing = first.join(df, on="user_id", how="anti").select("user_id")
    if missing.height:
        notes.append(f"{plural(missing.height, 'user')} in the events but not in the users file: added")
    df = pl.concat([df, missing], how="diagonal_relaxed").join(first.drop("first_row"), on="user_id", how="left")
    signed = pl.col("signed_up_at") if "signed_up_at" in spec else pl.col("first_ts")
    return canonical_order(df.with_columns(signed_up_at=signed).drop("first_ts"), "users"), str(path)
