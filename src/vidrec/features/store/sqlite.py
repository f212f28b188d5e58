"""The embedded backend: one SQLite file in WAL mode (readers never block the writer).

The default store on one machine: no server to run, and any number of processes may read
and write the same file (each write is one ``BEGIN IMMEDIATE`` transaction, so batches are
applied in order, exactly once). ``":memory:"`` keeps a private store in the process, for
a model loaded to evaluate or to recommend offline.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import polars as pl

from vidrec.features.derive import COUNTS
from vidrec.features.store.base import (
    KIND_CODE,
    PAIR_CODE,
    Applied,
    FeedEntry,
    OnlineStore,
    Snapshot,
    StoreOutdated,
    UserRecord,
)  # fmt: skip
from vidrec.features.store.connect import connect_wal
from vidrec.features.store.deltas import KINDS, LAST_KINDS, PAIR_TABLES, USER_COUNTS, Deltas, StoreConfig

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursor (log_id TEXT PRIMARY KEY, batch INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_video (
    user_id TEXT NOT NULL, kind INTEGER NOT NULL, video_id TEXT NOT NULL, ts_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind, video_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_counts (
    user_id TEXT PRIMARY KEY, {", ".join(f"{c} INTEGER NOT NULL" for c in COUNTS)}, completion_sum REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_pair (
    user_id TEXT NOT NULL, tbl INTEGER NOT NULL, key TEXT NOT NULL,
    a INTEGER NOT NULL, b INTEGER NOT NULL, c INTEGER NOT NULL, last_us INTEGER,
    PRIMARY KEY (user_id, tbl, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_profile (user_id TEXT PRIMARY KEY, profile TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS video (
    video_id TEXT PRIMARY KEY, {", ".join(f"{c} INTEGER NOT NULL" for c in COUNTS)}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attribute (
    kind TEXT NOT NULL, name TEXT NOT NULL, events INTEGER NOT NULL, views INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed (pos INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body BLOB NOT NULL);
"""
_TABLES = ("cursor", "user_video", "user_counts", "user_pair", "user_profile", "video", "attribute", "totals", "feed")
_LAST = {KIND_CODE[k] for k in LAST_KINDS}
_ADD = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)


class SQLiteStore(OnlineStore):
    """:class:`OnlineStore` in one SQLite file (created if missing), or ``":memory:"``; thread-safe."""

    def __init__(self, path: str | Path, config: StoreConfig | None = None, timeout_s: float = 30.0) -> None:
        super().__init__(config)
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        if memory:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        else:  # synchronous=NORMAL: the durable copy is the event log
            self._conn = connect_wal(self.path, timeout_s, "NORMAL")
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        saved = self._check_config(None if row is None else row[0])
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (saved,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- state ----------------------------------------------------------------------------

    def generation(self) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return None if row is None else row[0]

    def cursor(self, log_id: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT batch FROM cursor WHERE log_id = ?", (log_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def load(self, deltas: Deltas, profiles: pl.DataFrame, generation: str, replace: bool = True) -> bool:
        rows = [(str(r[0]), json.dumps({k: v for k, v in zip(profiles.columns[1:], r[1:]) if v is not None}))
                for r in profiles.rows()]  # fmt: skip
        with self._transaction() as cur:
            if not replace and cur.execute("SELECT 1 FROM meta WHERE key = 'generation'").fetchone():
                return False
            for table in _TABLES:
                cur.execute(f"DELETE FROM {table}")
            self._write_deltas(cur, deltas)
            cur.executemany("INSERT OR REPLACE INTO user_profile VALUES (?, ?)", rows)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (generation,))
        return True

    def apply(self, log_id: str | None, expected: int, through: int, batches: list[Applied]) -> None:
        with self._transaction() as cur:
            if log_id is not None:
                row = cur.execute("SELECT batch FROM cursor WHERE log_id = ?", (log_id,)).fetchone()
                if (0 if row is None else int(row[0])) != expected:
                    raise StoreOutdated(log_id)
                cur.execute("INSERT OR REPLACE INTO cursor VALUES (?, ?)", (log_id, through))
            for batch in batches:
                if batch.deltas is not None:
                    self._write_deltas(cur, batch.deltas)
                cur.execute("INSERT INTO feed (kind, body) VALUES (?, ?)", (batch.kind, batch.feed))

    def _transaction(self) -> _Tx:
        return _Tx(self._conn, self._lock)

    def _write_deltas(self, cur: sqlite3.Cursor, d: Deltas) -> None:
        """Upsert ``d``, each table's rows in its primary-key order: SQLite then appends to its
        B-trees instead of searching them per row (measured: the 2M-event platform's 3.8M-row
        version state loads into memory in 9.5 s instead of 14.6)."""
        firsts = d.firsts.select("user_id", pl.col("kind").replace_strict(KIND_CODE, return_dtype=pl.Int64),
                                 "video_id", "ts_us").sort("user_id", "kind", "video_id")  # fmt: skip
        merge = "CASE WHEN excluded.kind IN ({}) THEN max(ts_us, excluded.ts_us) ELSE min(ts_us, excluded.ts_us) END"
        cur.executemany(
            "INSERT INTO user_video VALUES (?, ?, ?, ?) ON CONFLICT (user_id, kind, video_id) "
            f"DO UPDATE SET ts_us = {merge.format(', '.join(map(str, sorted(_LAST))))}",
            firsts.rows(),
        )
        cols = ", ".join(USER_COUNTS)
        cur.executemany(
            f"INSERT INTO user_counts (user_id, {cols}) VALUES (?{', ?' * len(USER_COUNTS)}) ON CONFLICT (user_id) "
            f"DO UPDATE SET {_ADD}, completion_sum = completion_sum + excluded.completion_sum",
            d.user_counts.select("user_id", *USER_COUNTS).sort("user_id").rows(),
        )
        cur.executemany(
            "INSERT INTO user_pair VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, tbl, key) DO UPDATE SET "
            "a = a + excluded.a, b = b + excluded.b, c = c + excluded.c, "
            "last_us = CASE WHEN last_us IS NULL THEN excluded.last_us "
            "WHEN excluded.last_us IS NULL THEN last_us ELSE max(last_us, excluded.last_us) END",
            _pair_rows(d.pairs).rows(),
        )
        cur.executemany(
            f"INSERT INTO video VALUES (?{', ?' * len(COUNTS)}) ON CONFLICT (video_id) DO UPDATE SET {_ADD}",
            d.video_counts.select("video_id", *COUNTS).sort("video_id").rows(),
        )
        cur.executemany(
            "INSERT INTO attribute VALUES (?, ?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
            "events = events + excluded.events, views = views + excluded.views",
            d.attributes.select("kind", "name", "events", "views").rows(),
        )
        cur.executemany(
            "INSERT INTO totals VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            list(d.totals.items()),
        )
        if d.last_event_us is not None:
            cur.execute(
                "INSERT INTO totals VALUES ('last_event_us', ?) ON CONFLICT (name) DO UPDATE "
                "SET value = max(value, excluded.value)", (d.last_event_us,),
            )  # fmt: skip

    # ---- reads --------------------------------------------------------------------------

    def read_many(self, user_ids: list[str], since: str) -> tuple[list[UserRecord], list[FeedEntry], str | None]:
        ids = json.dumps(list(dict.fromkeys(user_ids)))
        where = "WHERE user_id IN (SELECT value FROM json_each(?))"
        with self._lock:
            c = self._conn
            videos = c.execute(f"SELECT user_id, kind, video_id, ts_us FROM user_video {where} "
                               "ORDER BY user_id, kind, ts_us, video_id", (ids,)).fetchall()  # fmt: skip
            counts = c.execute(f"SELECT user_id, {', '.join(USER_COUNTS)} FROM user_counts {where}", (ids,)).fetchall()
            pairs = c.execute(f"SELECT user_id, tbl, key, a, b, c, last_us FROM user_pair {where}", (ids,)).fetchall()
            profiles = c.execute(f"SELECT user_id, profile FROM user_profile {where}", (ids,)).fetchall()
            feed = c.execute("SELECT pos, kind, body FROM feed WHERE pos > ? ORDER BY pos", (int(since),)).fetchall()
            gen = c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        tables = list(PAIR_TABLES)
        records = {u: UserRecord(u, {k: [] for k in KINDS}, dict.fromkeys(USER_COUNTS, 0),
                                 {t: [] for t in PAIR_TABLES}, {}) for u in user_ids}  # fmt: skip
        for user, kind, video, ts in videos:
            records[user].lists[KINDS[kind]].append((video, ts))
        for user, *values in counts:
            records[user].counts = dict(zip(USER_COUNTS, values))
        for user, tbl, key, a, b, cc, last in pairs:
            records[user].pairs[tables[tbl]].append((key, a, b, cc, last))
        for user, profile in profiles:
            records[user].profile = json.loads(profile)
        entries = [FeedEntry(str(p), k, bytes(b)) for p, k, b in feed]
        return [records[u] for u in user_ids], entries, None if gen is None else gen[0]

    def snapshot(self) -> Snapshot:
        with self._lock:
            c = self._conn
            c.execute("BEGIN")  # one read transaction: a consistent view
            try:
                gen = c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
                pos = c.execute("SELECT coalesce(max(pos), 0) FROM feed").fetchone()[0]
                videos = c.execute(f"SELECT video_id, {', '.join(COUNTS)} FROM video").fetchall()
                attrs = c.execute("SELECT kind, name, events, views FROM attribute").fetchall()
                totals = dict(c.execute("SELECT name, value FROM totals").fetchall())
                changes = c.execute(
                    "SELECT pos, kind, body FROM feed WHERE kind != 'counts' AND pos <= ? ORDER BY pos", (pos,)
                ).fetchall()
            finally:
                c.execute("COMMIT")
        return Snapshot(
            "" if gen is None else gen[0], str(pos),
            pl.DataFrame(videos, schema={"video_id": pl.String, **{k: pl.Int64 for k in COUNTS}}, orient="row"),
            pl.DataFrame(attrs, schema={"kind": pl.String, "name": pl.String, "events": pl.Int64, "views": pl.Int64},
                         orient="row"),
            totals, [FeedEntry(str(p), k, bytes(b)) for p, k, b in changes],
        )  # fmt: skip


class _Tx:
    """``with`` block running one ``BEGIN IMMEDIATE`` write transaction under the store's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self.conn, self.lock = conn, lock

    def __enter__(self) -> sqlite3.Cursor:
        self.lock.acquire()
        self.cur = self.conn.cursor()
        self.cur.execute("BEGIN IMMEDIATE")
        return self.cur

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            self.cur.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()


def _pair_rows(pairs: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Every pair table's rows as ``user_pair`` rows (user, table code, key, three counts, last
    dislike), in that table's primary-key order."""
    frames = []
    for table, (key, counts) in PAIR_TABLES.items():
        frame = pairs[table]
        values = [pl.col(c).cast(pl.Int64).alias(f"_{i}") for i, c in enumerate(counts)]
        values += [pl.lit(0, pl.Int64).alias(f"_{i}") for i in range(len(counts), 3)]
        last = pl.col("last_dislike_us") if "last_dislike_us" in frame.columns else pl.lit(None, pl.Int64)
        frames.append(frame.select(
            pl.col("user_id").cast(pl.String), pl.lit(PAIR_CODE[table], pl.Int64).alias("_tbl"),
            pl.col(key).cast(pl.String).alias("_key"), *values, last.cast(pl.Int64).alias("_last"),
        ))  # fmt: skip
    return pl.concat(frames).sort("user_id", "_tbl", "_key")
