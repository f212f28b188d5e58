"""Durable storage of the events and catalogue changes the service receives, kept first.

The HTTP service writes every accepted event here first, so a restart loses nothing:
the next retraining reads :meth:`EventStore.all_events`, and a fresh process can
rebuild user state from it. Uploaded and removed videos are kept the same way (tables
``uploads`` and ``removals``) and replayed on start, before the events. SQLite in WAL mode
gives crash-safe commits without a server process, and lets readers proceed while a
writer commits.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import polars as pl

from vidrec.data.schema import EVENT_KINDS, EVENTS_REQUIRED, TIMESTAMP

_KINDS_SQL = ", ".join(f"'{k}'" for k in EVENT_KINDS)
_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    user_id       TEXT    NOT NULL CHECK (length(user_id) > 0),
    video_id      TEXT    NOT NULL CHECK (length(video_id) > 0),
    ts_us         INTEGER NOT NULL,                   -- microseconds since 1970-01-01 UTC
    event         TEXT    NOT NULL CHECK (event IN ({_KINDS_SQL})),
    watch_seconds REAL,
    CHECK ((event = 'watch') = (watch_seconds IS NOT NULL)),
    CHECK (watch_seconds IS NULL OR watch_seconds >= 0)
);
CREATE INDEX IF NOT EXISTS events_user_ts ON events (user_id, ts_us);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_us);
"""
_CATALOGUE_SQL = """
CREATE TABLE IF NOT EXISTS uploads (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id         TEXT    NOT NULL UNIQUE CHECK (length(video_id) > 0),
    creator_id       TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    tags_json        TEXT    NOT NULL,                -- {"tags": [...]}
    duration_seconds REAL    NOT NULL CHECK (duration_seconds > 0),
    uploaded_us      INTEGER NOT NULL,
    available        INTEGER NOT NULL,
    title            TEXT,
    language         TEXT
);
CREATE TABLE IF NOT EXISTS removals (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id TEXT    NOT NULL,
    at_us    INTEGER NOT NULL
);
"""
_TAGS_JSON = pl.Struct({"tags": pl.List(pl.String)})
_UPLOAD_COLUMNS = "video_id, creator_id, category, tags_json, duration_seconds, uploaded_us, available, title, language"
_COLUMNS = "user_id, video_id, ts_us, event, watch_seconds"
_INSERT_SQL = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)"


class EventStore(ABC):
    """Append-only store of events in the canonical events schema."""

    @abstractmethod
    def append(self, events: pl.DataFrame) -> int:
        """Store ``events`` durably, all or none; return how many were stored."""

    @abstractmethod
    def events_for_user(self, user_id: str) -> pl.DataFrame:
        """One user's events, oldest first, in the canonical events schema."""

    @abstractmethod
    def all_events(self, since: datetime | None = None) -> pl.DataFrame:
        """Every event (with ``ts >= since`` when given), oldest first."""

    @abstractmethod
    def append_videos(self, videos: pl.DataFrame) -> int:
        """Store uploaded videos (canonical videos rows) durably, all or none; return how many."""

    @abstractmethod
    def uploaded_videos(self) -> pl.DataFrame:
        """Every stored upload, in arrival order (canonical videos columns)."""

    @abstractmethod
    def append_removals(self, video_ids: list[str], at: datetime) -> int:
        """Store that these videos were taken off at ``at``."""

    @abstractmethod
    def removed_videos(self) -> list[str]:
        """Every video id ever taken off, in arrival order (distinct)."""

    def close(self) -> None:
        """Release the store's resources (no-op by default)."""


def empty_events() -> pl.DataFrame:
    """An events frame with no rows and the canonical columns."""
    return pl.DataFrame(schema=EVENTS_REQUIRED)


def _to_micros(when: datetime) -> int:
    """Microseconds since the epoch for a timezone-aware datetime."""
    if when.tzinfo is None:
        raise ValueError("times given to the event store must be timezone-aware (UTC)")
    delta = when.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class SQLiteEventStore(EventStore):
    """Events in one SQLite file (WAL mode, synchronous commits), indexed by user.

    Safe to share between the threads of one process: a lock serialises the single
    connection. Timestamps are stored as integer microseconds since the epoch (UTC),
    so they come back exactly as they went in.
    """

    def __init__(self, path: str | Path, timeout_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=timeout_seconds, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a commit survives power loss too
        self._conn.executescript(_SCHEMA_SQL + _CATALOGUE_SQL)

    def append(self, events: pl.DataFrame) -> int:
        """Insert all rows in one transaction; a bad row rolls back the whole batch."""
        missing = [c for c in EVENTS_REQUIRED if c not in events.columns]
        if missing:
            raise ValueError(f"events to store have no column {', '.join(map(repr, missing))}")
        if events.height == 0:
            return 0
        cols = events.select(
            pl.col("user_id").cast(pl.String),
            pl.col("video_id").cast(pl.String),
            pl.col("ts").cast(TIMESTAMP).dt.epoch("us"),
            pl.col("event").cast(pl.String),
            pl.col("watch_seconds").cast(pl.Float64),
        )
        if cols.select(pl.col("ts").is_null().any()).item():
            raise ValueError("events to store must all have a timestamp (ts)")
        rows = zip(*(cols[c].to_list() for c in cols.columns))
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(_INSERT_SQL, rows)
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise ValueError(
                    f"events refused by the store ({exc}); each needs user_id, video_id, one of "
                    f"{', '.join(EVENT_KINDS)}, and watch_seconds >= 0 exactly when it is a watch"
                ) from None
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return events.height

    def events_for_user(self, user_id: str) -> pl.DataFrame:
        return self._query("WHERE user_id = ? ORDER BY ts_us, seq", (user_id,))

    def append_videos(self, videos: pl.DataFrame) -> int:
        """Insert all uploads in one transaction; an id stored before rolls the batch back."""
        if videos.height == 0:
            return 0
        cols = videos.select(
            pl.col("video_id").cast(pl.String),
            pl.col("creator_id").cast(pl.String),
            pl.col("category").cast(pl.String),
            pl.struct(pl.col("tags").cast(pl.List(pl.String)).fill_null([])).struct.json_encode().alias("tags_json"),
            pl.col("duration_seconds").cast(pl.Float64),
            pl.col("uploaded_at").cast(TIMESTAMP).dt.epoch("us"),
            pl.col("available").cast(pl.Int64),
            *(
                pl.col(c).cast(pl.String) if c in videos.columns else pl.lit(None, pl.String).alias(c)
                for c in ("title", "language")
            ),
        )
        rows = zip(*(cols[c].to_list() for c in cols.columns))
        sql = f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        self._transaction(sql, rows, "uploads")
        return videos.height

    def uploaded_videos(self) -> pl.DataFrame:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads ORDER BY seq").fetchall()
        raw = pl.DataFrame(
            rows,
            schema={"video_id": pl.String, "creator_id": pl.String, "category": pl.String, "tags_json": pl.String,
                    "duration_seconds": pl.Float64, "uploaded_us": pl.Int64, "available": pl.Int64,
                    "title": pl.String, "language": pl.String},
            orient="row",
        )  # fmt: skip
        return raw.select(
            "video_id",
            "creator_id",
            "category",
            pl.col("tags_json").str.json_decode(_TAGS_JSON).struct.field("tags"),
            "duration_seconds",
            pl.from_epoch("uploaded_us", time_unit="us").dt.replace_time_zone("UTC").alias("uploaded_at"),
            pl.col("available").cast(pl.Boolean),
            "title",
            "language",
        )

    def append_removals(self, video_ids: list[str], at: datetime) -> int:
        rows = [(str(v), _to_micros(at)) for v in video_ids]
        self._transaction("INSERT INTO removals (video_id, at_us) VALUES (?, ?)", iter(rows), "removals")
        return len(rows)

    def removed_videos(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT video_id FROM removals ORDER BY seq").fetchall()
        return list(dict.fromkeys(r[0] for r in rows))

    def _transaction(self, sql: str, rows: Iterator[tuple], what: str) -> None:
        """Run one ``executemany`` atomically; a constraint failure is a readable ValueError."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise ValueError(f"{what} refused by the store ({exc})") from None
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def all_events(self, since: datetime | None = None) -> pl.DataFrame:
        if since is None:
            return self._query("ORDER BY ts_us, seq", ())
        return self._query("WHERE ts_us >= ? ORDER BY ts_us, seq", (_to_micros(since),))

    def count(self) -> int:
        """How many events are stored."""
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _query(self, clause: str, params: tuple) -> pl.DataFrame:
        """Run ``SELECT ... {clause}`` and return the rows as a canonical events frame."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM events {clause}", params).fetchall()
        if not rows:
            return empty_events()
        raw = pl.DataFrame(
            rows,
            schema={"user_id": pl.String, "video_id": pl.String, "ts_us": pl.Int64,
                    "event": pl.String, "watch_seconds": pl.Float64},
            orient="row",
        )
        return raw.select(
            "user_id",
            "video_id",
            pl.from_epoch("ts_us", time_unit="us").dt.replace_time_zone("UTC").alias("ts"),
            "event",
            "watch_seconds",
        )
