"""The durable log of what a running system was told: events, uploads and removals, in order.

Everything that changes at serving time is written here first, as one numbered batch,
and only then applied to the online store, which is derived from the version's snapshot
plus this log (so an empty or lost store is rebuilt from it). Retraining reads it too.
SQLite in WAL mode with synchronous commits: a batch acknowledged survives a crash, and
several processes on one machine may append to and read one file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from vidrec.data.schema import EVENT_KINDS, EVENTS_REQUIRED, TIMESTAMP, VIDEOS_OPTIONAL, VIDEOS_REQUIRED, epoch_us
from vidrec.features.store.connect import connect_wal

BATCH_KINDS: tuple[str, ...] = ("events", "uploads", "removals")
_KINDS_SQL = ", ".join(f"'{k}'" for k in EVENT_KINDS)
_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,           -- the log's order
    kind TEXT    NOT NULL CHECK (kind IN ('events', 'uploads', 'removals')),
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    batch         INTEGER NOT NULL,
    user_id       TEXT    NOT NULL CHECK (length(user_id) > 0),
    video_id      TEXT    NOT NULL CHECK (length(video_id) > 0),
    ts_us         INTEGER NOT NULL,                   -- microseconds since 1970-01-01 UTC
    event         TEXT    NOT NULL CHECK (event IN ({_KINDS_SQL})),
    watch_seconds REAL,
    event_id      TEXT,                               -- the client's id: a retry stores nothing new
    CHECK ((event = 'watch') = (watch_seconds IS NOT NULL)),
    CHECK (watch_seconds IS NULL OR watch_seconds >= 0)
);
CREATE INDEX IF NOT EXISTS events_batch ON events (batch);
CREATE INDEX IF NOT EXISTS events_user_ts ON events (user_id, ts_us);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS uploads (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    batch            INTEGER NOT NULL,
    video_id         TEXT    NOT NULL UNIQUE CHECK (length(video_id) > 0),
    creator_id       TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    tags_json        TEXT    NOT NULL,                -- {{"tags": [...]}}
    duration_seconds REAL    NOT NULL CHECK (duration_seconds > 0),
    uploaded_us      INTEGER NOT NULL,
    available        INTEGER NOT NULL,
    title            TEXT,
    language         TEXT
);
CREATE TABLE IF NOT EXISTS removals (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    batch    INTEGER NOT NULL,
    video_id TEXT    NOT NULL,
    at_us    INTEGER NOT NULL
);
"""
_TAGS_JSON = pl.Struct({"tags": pl.List(pl.String)})
_EVENT_COLUMNS = "user_id, video_id, ts_us, event, watch_seconds"
_UPLOAD_COLUMNS = "video_id, creator_id, category, tags_json, duration_seconds, uploaded_us, available, title, language"
_EVENT_SCHEMA: dict[str, Any] = {"user_id": pl.String, "video_id": pl.String, "ts_us": pl.Int64, "event": pl.String,
                 "watch_seconds": pl.Float64}  # fmt: skip
_UPLOAD_SCHEMA: dict[str, Any] = {"video_id": pl.String, "creator_id": pl.String, "category": pl.String,
                                  "tags_json": pl.String, "duration_seconds": pl.Float64, "uploaded_us": pl.Int64,
                                  "available": pl.Int64, "title": pl.String, "language": pl.String}  # fmt: skip
REMOVALS_SCHEMA: dict[str, Any] = {"video_id": pl.String, "at": TIMESTAMP}
_VIDEO_TYPES: dict[Any, Any] = {**VIDEOS_REQUIRED, **VIDEOS_OPTIONAL}


@dataclass(frozen=True)
class Batch:
    """One numbered entry of the log: events, uploads (videos rows) or removals (``video_id, at``)."""

    seq: int
    kind: str
    rows: pl.DataFrame


def empty_events() -> pl.DataFrame:
    """An events frame with no rows and the canonical columns."""
    return pl.DataFrame(schema=EVENTS_REQUIRED)


def to_micros(when: datetime) -> int:
    """Microseconds since the epoch for a timezone-aware datetime."""
    if when.tzinfo is None:
        raise ValueError("times given to the event log must be timezone-aware (UTC)")
    return epoch_us(when)


class EventLog:
    """The log in one SQLite file; safe to share between threads and between processes.

    Its ``id`` (a UUID kept in the file) tells stores which log a cursor belongs to.
    """

    def __init__(self, path: str | Path, timeout_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = connect_wal(self.path, timeout_seconds, "FULL")  # FULL: a commit survives power loss too
        self._conn.executescript(_SCHEMA_SQL)
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('id', ?)", (uuid.uuid4().hex,))
        self.id: str = self._conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0]

    # ---- writing --------------------------------------------------------------------------

    def append(self, events: pl.DataFrame) -> int:
        """Store ``events`` as one batch, all or none; return the batch number (0 if none was new).

        Events with an ``event_id`` (optional column) already stored are skipped, so a client's
        retry of a batch it sent stores only what did not reach the log the first time.
        """
        missing = [c for c in EVENTS_REQUIRED if c not in events.columns]
        if missing:
            raise ValueError(f"events to store have no column {', '.join(map(repr, missing))}")
        if events.height == 0:
            return 0
        cols = events.select(
            pl.col("user_id").cast(pl.String), pl.col("video_id").cast(pl.String),
            pl.col("ts").cast(TIMESTAMP).dt.epoch("us"), pl.col("event").cast(pl.String),
            pl.col("watch_seconds").cast(pl.Float64),
            pl.col("event_id").cast(pl.String) if "event_id" in events.columns else pl.lit(None, pl.String),
        )  # fmt: skip
        if cols.select(pl.col("ts").is_null().any()).item():
            raise ValueError("events to store must all have a timestamp (ts)")
        hint = (f"each needs user_id, video_id, one of {', '.join(EVENT_KINDS)}, and watch_seconds >= 0 "
                "exactly when it is a watch")  # fmt: skip
        sql = (f"INSERT INTO events (batch, {_EVENT_COLUMNS}, event_id) VALUES (?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING")  # fmt: skip
        return self._write("events", sql, cols.rows(), hint)

    def known_event_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored already (as ``event_id`` of an event)."""
        if not ids:
            return set()
        with self._lock:
            rows = self._conn.execute("SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
                                      (json.dumps(ids),)).fetchall()  # fmt: skip
        return {r[0] for r in rows}

    def append_videos(self, videos: pl.DataFrame) -> int:
        """Store uploads (canonical videos rows) as one batch; an id stored before refuses it (ValueError)."""
        if videos.height == 0:
            return 0
        cols = videos.select(
            pl.col("video_id").cast(pl.String), pl.col("creator_id").cast(pl.String),
            pl.col("category").cast(pl.String),
            pl.struct(pl.col("tags").cast(pl.List(pl.String)).fill_null([])).struct.json_encode().alias("tags_json"),
            pl.col("duration_seconds").cast(pl.Float64), pl.col("uploaded_at").cast(TIMESTAMP).dt.epoch("us"),
            pl.col("available").cast(pl.Int64),
            *(pl.col(c).cast(pl.String) if c in videos.columns else pl.lit(None, pl.String).alias(c)
              for c in ("title", "language")),
        )  # fmt: skip
        sql = f"INSERT INTO uploads (batch, {_UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        return self._write("uploads", sql, cols.rows(), "video ids are never reused")

    def append_removals(self, video_ids: list[str], at: datetime) -> int:
        """Store that these videos were taken off at ``at``, as one batch."""
        if not video_ids:
            return 0
        rows = [(str(v), to_micros(at)) for v in video_ids]
        return self._write("removals", "INSERT INTO removals (batch, video_id, at_us) VALUES (?, ?, ?)", rows, "")

    def _write(self, kind: str, sql: str, rows: list[tuple], hint: str) -> int:
        """Insert one batch atomically; a constraint failure is a readable ValueError."""
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                cur.execute("INSERT INTO batches (kind, size) VALUES (?, ?)", (kind, len(rows)))
                seq = int(cur.lastrowid)  # type: ignore[arg-type]
                cur.executemany(sql, [(seq, *r) for r in rows])
                if cur.rowcount == 0:  # every row was stored before (a retry): no new batch
                    cur.execute("ROLLBACK")
                    return 0
                cur.execute("UPDATE batches SET size = ? WHERE seq = ?", (cur.rowcount, seq))
                cur.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                cur.execute("ROLLBACK")
                raise ValueError(f"{kind} refused by the event log ({exc}); {hint}") from None
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return seq

    # ---- reading --------------------------------------------------------------------------

    def last(self) -> int:
        """The number of the latest batch (0 for an empty log)."""
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM batches").fetchone()[0])

    def batches(self, since: int = 0, until: int | None = None) -> list[Batch]:
        """Batches numbered in ``(since, until]``, oldest first, with their rows."""
        hi = until if until is not None else 2**62
        with self._lock:
            heads = self._conn.execute(
                "SELECT seq, kind FROM batches WHERE seq > ? AND seq <= ? ORDER BY seq", (since, hi)
            ).fetchall()
            if not heads:
                return []
            lo, top = heads[0][0], heads[-1][0]
            events = self._conn.execute(
                f"SELECT batch, {_EVENT_COLUMNS} FROM events WHERE batch BETWEEN ? AND ? ORDER BY seq", (lo, top)
            ).fetchall()
            uploads = self._conn.execute(
                f"SELECT batch, {_UPLOAD_COLUMNS} FROM uploads WHERE batch BETWEEN ? AND ? ORDER BY seq", (lo, top)
            ).fetchall()
            removals = self._conn.execute(
                "SELECT batch, video_id, at_us FROM removals WHERE batch BETWEEN ? AND ? ORDER BY seq", (lo, top)
            ).fetchall()
        by_kind = {
            "events": _split(events, lambda rows: _events_frame(rows)),
            "uploads": _split(uploads, lambda rows: _uploads_frame(rows)),
            "removals": _split(removals, lambda rows: _removals_frame(rows)),
        }
        return [Batch(seq, kind, by_kind[kind][seq] if seq in by_kind[kind] else _EMPTY[kind]()) for seq, kind in heads]

    def events_for_user(self, user_id: str) -> pl.DataFrame:
        """One user's events, oldest first, in the canonical events schema."""
        return self._events("WHERE user_id = ? ORDER BY ts_us, seq", (user_id,))

    def all_events(self, since: datetime | None = None) -> pl.DataFrame:
        """Every event (with ``ts >= since`` when given), oldest first: what retraining reads."""
        if since is None:
            return self._events("ORDER BY ts_us, seq", ())
        return self._events("WHERE ts_us >= ? ORDER BY ts_us, seq", (to_micros(since),))

    def uploaded_videos(self) -> pl.DataFrame:
        """Every stored upload, in arrival order (canonical videos columns)."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_UPLOAD_COLUMNS} FROM uploads ORDER BY seq").fetchall()
        return _uploads_frame(rows)

    def count(self) -> int:
        """How many events are stored."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _events(self, clause: str, params: tuple) -> pl.DataFrame:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events {clause}", params).fetchall()
        return _events_frame(rows)


def _split(rows: list[tuple], build: Callable[[list[tuple]], pl.DataFrame]) -> dict[int, pl.DataFrame]:
    """Rows whose first field is the batch number -> one frame per batch."""
    out: dict[int, list[tuple]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1:])
    return {seq: build(part) for seq, part in out.items()}


def _events_frame(rows: list[tuple]) -> pl.DataFrame:
    if not rows:
        return empty_events()
    raw = pl.DataFrame(rows, schema=_EVENT_SCHEMA, orient="row")
    return raw.select(
        "user_id", "video_id", pl.from_epoch("ts_us", time_unit="us").dt.replace_time_zone("UTC").alias("ts"),
        "event", "watch_seconds",
    )  # fmt: skip


def _uploads_frame(rows: list[tuple]) -> pl.DataFrame:
    raw = pl.DataFrame(rows, schema=_UPLOAD_SCHEMA, orient="row")
    return raw.select(
        "video_id", "creator_id", "category", pl.col("tags_json").str.json_decode(_TAGS_JSON).struct.field("tags"),
        "duration_seconds",
        pl.from_epoch("uploaded_us", time_unit="us").dt.replace_time_zone("UTC").alias("uploaded_at"),
        pl.col("available").cast(pl.Boolean), "title", "language",
    ).cast(_VIDEO_TYPES)  # fmt: skip


def _removals_frame(rows: list[tuple]) -> pl.DataFrame:
    schema: dict[str, Any] = {"video_id": pl.String, "at_us": pl.Int64}
    raw = pl.DataFrame(rows, schema=schema, orient="row")
    return raw.select("video_id", pl.from_epoch("at_us", time_unit="us").dt.replace_time_zone("UTC").alias("at"))


_EMPTY = {
    "events": empty_events,
    "uploads": lambda: _uploads_frame([]),
    "removals": lambda: pl.DataFrame(schema=REMOVALS_SCHEMA),
}
