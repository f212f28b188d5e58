"""Row-level validation of the canonical tables: keep every valid row, quarantine the rest.

Each invalid row gets exactly one reason (the first failed check, in the order of
:data:`REASONS`), the field and raw value at fault, its source file and row number,
and the whole original record as JSON, so nothing is lost and every problem can be
traced back and fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from vidrec.data import coerce
from vidrec.data.dataset import TABLE_NAMES, Dataset
from vidrec.data.schema import EARLIEST_TS, EARLIEST_UPLOAD, EVENT_KINDS, MAX_WATCH_SECONDS, TABLES
from vidrec.errors import DataError
from vidrec.progress import bar

ROW = "__source_row__"
"""Optional column an adapter sets to the 1-based row number in its source file."""
PARSE_ERROR = "__parse_error__"
"""Optional column an adapter sets to why a source line could not be parsed."""
_RAW = "__raw__"
_CHECK = "__check__"

REASONS: dict[str, str] = {
    "unparseable": "the source line could not be parsed; fix the line at the source",
    "wrong_type": "the value cannot be read as the documented type; fix it or the column mapping",
    "missing_field": "a required field is empty; fill it in",
    "unknown_event": f"event must be one of {', '.join(EVENT_KINDS)}; map other kinds when ingesting",
    "non_positive_duration": "duration_seconds must be a finite number above 0",
    "missing_watch_seconds": "a watch event needs watch_seconds (seconds watched)",
    "unexpected_watch_seconds": "only watch events carry watch_seconds; leave it empty for other kinds",
    "invalid_watch_seconds": "watch_seconds must be a number of seconds from 0 to 604,800 (a week); "
    "check the unit (seconds vs milliseconds)",
    "timestamp_out_of_range": "event times must lie after 1970-01-01 and upload or sign-up times "
    "after 1900-01-01, and none in the future; check the unit (seconds vs milliseconds) and the year",
    "unknown_video": "the event's video is not in the videos table (or its row was quarantined); "
    "add the video",
    "unknown_user": "the event's user is not in the users table (or its row was quarantined); "
    "add the user",
    "before_upload": "the event is dated before the video's uploaded_at; fix either time",
    "duplicate_key": "this id is defined again; an earlier row with the same id was kept",
    "duplicate_event": "an identical event (same user, video, time, kind, seconds) came earlier "
    "and was kept; remove the copy",
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "field": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
    "hint": pl.String(),
    "record": pl.String(),
}


@dataclass(frozen=True)
class ValidationConfig:
    """Bounds for the sanity checks. ``now`` defaults to the wall clock at validation."""

    now: datetime | None = None
    max_future: timedelta = timedelta(days=1)
    earliest: datetime = EARLIEST_TS
    earliest_upload: datetime = EARLIEST_UPLOAD

    def __post_init__(self) -> None:
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("ValidationConfig.now must be timezone-aware (UTC)")
        if self.max_future < timedelta(0):
            raise ValueError("ValidationConfig.max_future must not be negative")

    def latest(self) -> datetime:
        """The latest acceptable timestamp."""
        return (self.now or datetime.now(UTC)) + self.max_future


@dataclass
class ValidationResult:
    """The valid rows, the quarantined rows with reasons, and counts per table."""

    dataset: Dataset
    quarantine: pl.DataFrame
    rows_in: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing was quarantined."""
        return self.quarantine.height == 0

    def counts(self) -> pl.DataFrame:
        """Quarantined rows per table and reason."""
        return (
            self.quarantine.group_by("table", "reason")
            .agg(rows=pl.len())
            .sort("table", "rows", descending=[False, True])
        )

    def summary(self) -> str:
        """A readable report: rows in, kept and quarantined per table and reason."""
        lines = []
        for name in TABLE_NAMES:
            kept = self.dataset.table(name).height
            lines.append(
                f"{name:<7} {self.rows_in.get(name, kept):>12,} rows in   {kept:>12,} kept   "
                f"{self.rows_in.get(name, kept) - kept:>10,} quarantined"
            )
        for row in self.counts().iter_rows(named=True):
            lines.append(f"  {row['table']:<7} {row['reason']:<26} {row['rows']:>10,}")
        return "\n".join(lines)

    def errors(self, limit: int = 10) -> list[str]:
        """The first ``limit`` problems, each as 'file, row, field, value: reason; hint'."""
        return describe(self.quarantine, limit)


def describe(quarantine: pl.DataFrame, limit: int = 10) -> list[str]:
    """The first ``limit`` rows of a quarantine, each as 'file, row, field, value: reason (hint)'."""
    return [
        f"{r['source_file']}, row {r['source_row']}, field {r['field']!r}, value {r['value']!r}: "
        f"{r['reason']} ({r['hint']})"
        for r in quarantine.head(limit).iter_rows(named=True)
    ]


@dataclass(frozen=True)
class _Check:
    reason: str
    field: str
    bad: pl.Expr


def _prepare(df: pl.DataFrame, table: str, source: str) -> pl.DataFrame:
    """Check the columns, number the rows and add canonical columns beside raw copies."""
    required, optional = TABLES[table]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: the {table} table has no column {', '.join(map(repr, missing))} "
            f"(it has {', '.join(df.columns) or 'no columns'})",
            f"the {table} table needs {', '.join(required)}; rename the columns or give a "
            "column mapping to `vidrec ingest table`",
        )
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1)
    df = df.with_columns(pl.col(ROW).cast(pl.Int64))
    spec = {c: t for c, t in {**required, **optional}.items() if c in df.columns}
    raws = [pl.col(c).alias(_RAW + c) for c in spec]
    canon = [coerce.to_canonical(c, t, df.schema[c]) for c, t in spec.items()]
    return df.with_columns(raws).with_columns(canon)


def _type_checks(df: pl.DataFrame, table: str) -> list[_Check]:
    """wrong_type and missing_field checks for the documented columns present."""
    required, optional = TABLES[table]
    checks = []
    if PARSE_ERROR in df.columns:
        checks.append(_Check("unparseable", PARSE_ERROR, pl.col(PARSE_ERROR).is_not_null()))
    for c in [c for c in {**required, **optional} if c in df.columns]:
        raw = pl.col(_RAW + c)
        checks.append(_Check("wrong_type", c, raw.is_not_null() & pl.col(c).is_null()))
    for c, t in required.items():
        empty = pl.col(c).is_null()
        if t == pl.String:
            empty = empty | (pl.col(c) == "")
        if c != "watch_seconds":
            checks.append(_Check("missing_field", c, empty))
    return checks


def _ts_range(c: str, cfg: ValidationConfig) -> _Check:
    col = pl.col(c)
    too_early = (col < pl.lit(cfg.earliest_upload)) if c != "ts" else (col <= pl.lit(cfg.earliest))
    bad = too_early | (col > pl.lit(cfg.latest()))
    return _Check("timestamp_out_of_range", c, bad.fill_null(False))


def _apply(df: pl.DataFrame, checks: list[_Check]) -> pl.DataFrame:
    """Tag each row with the index of its first failed check (null when valid)."""
    expr = pl.lit(None, dtype=pl.Int32)
    for i, chk in reversed(list(enumerate(checks))):
        expr = pl.when(chk.bad.fill_null(False)).then(pl.lit(i, dtype=pl.Int32)).otherwise(expr)
    return df.with_columns(expr.alias(_CHECK))


def _split(
    df: pl.DataFrame, checks: list[_Check], table: str, source: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Separate tagged rows into (clean canonical rows, quarantine rows)."""
    internal = lambda c: c.startswith(_RAW) or (c.startswith("__") and c.endswith("__"))  # noqa: E731
    raw_cols = [c for c in df.columns if not internal(c)]
    bad = df.filter(pl.col(_CHECK).is_not_null())
    clean = df.filter(pl.col(_CHECK).is_null()).select(raw_cols)
    if bad.height == 0:
        return clean, pl.DataFrame(schema=QUARANTINE_SCHEMA)
    codes = pl.DataFrame(
        {
            _CHECK: pl.Series(range(len(checks)), dtype=pl.Int32),
            "reason": [c.reason for c in checks],
            "field": [c.field for c in checks],
        }
    ).with_columns(hint=pl.col("reason").replace_strict(REASONS))
    # the original record: raw copies of documented columns, extra columns as they came
    record_cols = [
        (pl.col(_RAW + c) if _RAW + c in df.columns else pl.col(c)).alias(c) for c in raw_cols
    ]
    value = pl.lit(None, dtype=pl.String)
    for fname in dict.fromkeys(c.field for c in checks):
        src = _RAW + fname if _RAW + fname in df.columns else fname
        if src in df.columns:
            value = (
                pl.when(pl.col("field") == fname)
                .then(coerce.as_text(src, df.schema[src]))
                .otherwise(value)
            )
    quarantine = bad.join(codes, on=_CHECK, how="left").select(
        table=pl.lit(table),
        source_file=pl.lit(source),
        source_row=pl.col(ROW),
        field=pl.col("field"),
        value=value,
        reason=pl.col("reason"),
        hint=pl.col("hint"),
        record=pl.struct(record_cols).struct.json_encode(),
    )
    return clean, quarantine


def _validate_keyed(
    df: pl.DataFrame, table: str, source: str, cfg: ValidationConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate ``videos`` or ``users``: types, values, and one row per id."""
    key = "video_id" if table == "videos" else "user_id"
    df = _prepare(df, table, source)
    checks = _type_checks(df, table)
    if table == "videos":
        dur = pl.col("duration_seconds")
        checks.append(_Check("non_positive_duration", "duration_seconds", ~(dur > 0) | ~dur.is_finite()))
        checks.append(_ts_range("uploaded_at", cfg))
    elif "signed_up_at" in df.columns:
        checks.append(_ts_range("signed_up_at", cfg))
    df = _apply(df, checks)
    valid = pl.col(_CHECK).is_null()
    first_valid = pl.col(ROW).filter(valid).min().over(key)
    checks.append(_Check("duplicate_key", key, pl.lit(True)))
    df = df.with_columns(
        pl.when(valid & (pl.col(ROW) != first_valid))
        .then(pl.lit(len(checks) - 1, dtype=pl.Int32))
        .otherwise(pl.col(_CHECK))
        .alias(_CHECK)
    )
    return _split(df, checks, table, source)


def _validate_events(
    df: pl.DataFrame, videos: pl.DataFrame, users: pl.DataFrame, source: str, cfg: ValidationConfig,
    seen: EventKeys | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate events: types, kinds, seconds, time range, references, duplicates (also of the
    valid events of earlier files, when ``seen`` holds them; this file's are added to it)."""
    df = _prepare(df, "events", source)
    upload = videos.select("video_id", pl.col("uploaded_at").alias("__uploaded__"))
    df = df.join(upload, on="video_id", how="left", maintain_order="left")
    known_user = pl.col("user_id").is_in(users["user_id"].implode())
    checks = _event_row_checks(df, cfg) + [
        _Check("unknown_video", "video_id", pl.col("__uploaded__").is_null()),
        _Check("unknown_user", "user_id", ~known_user),
        _Check("before_upload", "ts", pl.col("ts") < pl.col("__uploaded__")),
    ]
    df = _apply(df, checks).drop("__uploaded__")
    valid = pl.col(_CHECK).is_null()
    first_valid = pl.col(ROW).filter(valid).min().over(EVENT_KEYS)
    checks.append(_Check("duplicate_event", "ts", pl.lit(True)))
    repeated = valid & (pl.col(ROW) != first_valid)
    if seen is not None:
        df = df.with_columns(seen.key().alias("__key__"))
        repeated = repeated | (valid & seen.contains(pl.col("__key__")))
    df = df.with_columns(
        pl.when(repeated).then(pl.lit(len(checks) - 1, dtype=pl.Int32)).otherwise(pl.col(_CHECK)).alias(_CHECK)
    )
    if seen is not None:
        seen.add(df.filter(pl.col(_CHECK).is_null())["__key__"])
    return _split(df, checks, "events", source)


EVENT_KEYS = ["user_id", "video_id", "ts", "event", "watch_seconds"]
"""An event's identity: a second event equal in all of these is a duplicate."""


class EventKeys:
    """The valid events of the files validated so far, as 128-bit digests of their keys, so a
    data directory validated one file at a time finds duplicates across files while holding
    16 bytes per event, not the events (a false match needs a 128-bit collision)."""

    def __init__(self) -> None:
        self._parts: list[pl.Series] = []
        self._all: pl.Series | None = None

    @staticmethod
    def key() -> pl.Expr:
        """The digest of a row's key columns, as one struct of two independent 64-bit hashes."""
        row = pl.struct(EVENT_KEYS)
        return pl.struct(a=row.hash(seed=1), b=row.hash(seed=2))

    def contains(self, key: pl.Expr) -> pl.Expr:
        """Whether a row's digest belongs to an event seen before."""
        if self._all is None:
            self._all = pl.concat(self._parts) if self._parts else pl.Series("k", [], pl.Struct({"a": pl.UInt64,
                                                                                                 "b": pl.UInt64}))
        return key.is_in(self._all.implode())

    def add(self, keys: pl.Series) -> None:
        """Remember ``keys`` (the digests of newly kept events)."""
        self._parts.append(keys)
        self._all = None


def _event_row_checks(df: pl.DataFrame, cfg: ValidationConfig) -> list[_Check]:
    """The checks one event row passes on its own (types, kind, seconds, time range)."""
    is_watch = pl.col("event") == "watch"
    secs = pl.col("watch_seconds")
    return _type_checks(df, "events") + [
        _Check("unknown_event", "event", ~pl.col("event").is_in(list(EVENT_KINDS))),
        _Check("missing_watch_seconds", "watch_seconds", is_watch & secs.is_null()),
        _Check("unexpected_watch_seconds", "watch_seconds", ~is_watch & secs.is_not_null()),
        _Check("invalid_watch_seconds", "watch_seconds",
               is_watch & (~secs.is_finite() | (secs < 0) | (secs > MAX_WATCH_SECONDS))),
        _ts_range("ts", cfg),
    ]  # fmt: skip


def check_new_events(events: pl.DataFrame, source: str = "events", config: ValidationConfig | None = None) -> None:
    """Refuse a batch of new events (what a running recommender is told) unless every row passes
    the row checks ingestion applies: a :class:`DataError` naming the first rows at fault.

    Users may be new and videos are checked against the live catalogue by the caller, so the
    reference checks of :func:`validate` do not apply here."""
    cfg = config or ValidationConfig()
    df = _prepare(events, "events", source)
    checks = _event_row_checks(df, cfg)
    _, bad = _split(_apply(df, checks), checks, "events", source)
    if bad.height:
        listing = "; ".join(describe(bad, 3))
        raise DataError(f"{bad.height:,} of {events.height:,} events are invalid, so none was taken: {listing}",
                        "fix those events and send the batch again")  # fmt: skip


def validate(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    users: pl.DataFrame,
    sources: dict[str, str] | None = None,
    config: ValidationConfig | None = None,
) -> ValidationResult:
    """Validate the three tables; invalid rows go to the quarantine, valid ones are kept.

    Videos and users are validated first, so an event pointing at a quarantined video
    or user is itself quarantined as ``unknown_video`` / ``unknown_user``.
    """
    src = {name: name + ".parquet" for name in TABLE_NAMES} | (sources or {})
    return validate_parts([(src["events"], lambda: events)], videos, users, src, config)


def validate_parts(
    events: Iterable[tuple[str, Callable[[], pl.DataFrame]]],
    videos: pl.DataFrame,
    users: pl.DataFrame,
    sources: dict[str, str] | None = None,
    config: ValidationConfig | None = None,
) -> ValidationResult:
    """:func:`validate` of an events table in parts (source name, reader), read and checked one
    at a time: only one part's raw rows and working columns are in memory at once. Duplicates
    are found across parts too (see :class:`EventKeys`); row numbers count within each part."""
    cfg = config or ValidationConfig()
    src = {name: name + ".parquet" for name in TABLE_NAMES} | (sources or {})
    v_clean, v_bad = _validate_keyed(videos, "videos", src["videos"], cfg)
    u_clean, u_bad = _validate_keyed(users, "users", src["users"], cfg)
    parts = list(events)
    seen = EventKeys() if len(parts) > 1 else None
    clean, bad, rows = [], [v_bad, u_bad], 0
    for source, read in bar(parts, len(parts), "validating events", unit="file"):
        frame = read()
        rows += frame.height
        e_clean, e_bad = _validate_events(frame, v_clean, u_clean, source, cfg, seen)
        del frame
        clean.append(e_clean)
        bad.append(e_bad)
    rows_in = {"events": rows, "videos": videos.height, "users": users.height}
    events_clean = clean[0] if len(clean) == 1 else pl.concat(clean, how="diagonal_relaxed")
    quarantine = pl.concat(bad, how="vertical")
    return ValidationResult(Dataset(events_clean, v_clean, u_clean), quarantine, rows_in)


def validate_dataset(ds: Dataset, config: ValidationConfig | None = None) -> ValidationResult:
    """Validate a :class:`Dataset` read from a data directory."""
    return validate(ds.events, ds.videos, ds.users, config=config)


def read_valid(data_dir: str | Path, strict: bool = False) -> ValidationResult:
    """Read a data directory and validate it as ``vidrec ingest`` does: the valid rows to train
    on and the quarantine. A :class:`DataError` when no valid event is left, or with ``strict``
    when any row is invalid."""
    from vidrec.data.dataset import read_table, read_tables, table_files

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory", "pass a folder holding events.parquet, videos.parquet and "
                        "users.parquet (or a folder of Parquet files per table)")  # fmt: skip
    files = {name: table_files(root, name) for name in TABLE_NAMES}
    parts = [(str(p.relative_to(root)), lambda p=p: read_table(p, "events")) for p in files["events"]]
    keyed = {name: read_tables(files[name], name) for name in ("videos", "users")}
    sources = {name: ", ".join(str(p.relative_to(root)) for p in files[name]) for name in ("videos", "users")}
    result = validate_parts(parts, keyed["videos"], keyed["users"], sources)
    if result.dataset.events.height == 0:
        listing = "\n".join("  " + e for e in result.errors(3))
        empty = " (its events table is empty)"
        found = f":\n{result.summary()}\nthe first ones:\n{listing}" if not result.ok else empty
        raise DataError(f"{data_dir} holds no valid events to train on{found}",
                        "fix the events (or the videos and users they refer to) and train again")  # fmt: skip
    if strict and not result.ok:
        listing = "\n".join("  " + e for e in result.errors(10))
        raise DataError(f"{data_dir} holds {result.quarantine.height:,} invalid rows; the first ones:\n{listing}",
                        "fix them, or train without --strict to use the valid rows only")  # fmt: skip
    return result
