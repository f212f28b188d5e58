"""The embedded backend: one SQLite file in WAL mode (readers never block the writer).

The default store for a single machine: no server to run, and several processes may
read the same file while one writes. Batch reads pass the ids as one JSON array
(``IN (SELECT value FROM json_each(?))``), so any number of ids is one query; writes
are ``executemany`` upserts inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.features.store.base import (
    CATEGORY_SCHEMA,
    CREATOR_SCHEMA,
    FIRSTS_SCHEMA,
    OnlineStore,
    StoreConfig,
    VideoRows,
)
from vidrec.features.store.deltas import COUNTS, KINDS, Deltas, as_matrix, place

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS video (
    video_id TEXT PRIMARY KEY, uploaded_us INTEGER,
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNTS)}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_video (
    user_id TEXT NOT NULL, kind INTEGER NOT NULL, video_id TEXT NOT NULL, ts_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind, video_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_category (
    user_id TEXT NOT NULL, category TEXT NOT NULL, views INTEGER NOT NULL, completions INTEGER NOT NULL,
    PRIMARY KEY (user_id, category)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_creator (
    user_id TEXT NOT NULL, creator_id TEXT NOT NULL, views INTEGER NOT NULL, dislikes INTEGER NOT NULL,
    PRIMARY KEY (user_id, creator_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS embedding (video_id TEXT PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID;
"""

_IDS = "(SELECT value FROM json_each(?))"
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_ADD_COUNTS = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)
_MAX_CLOCK = "INSERT INTO totals VALUES ('{}', ?) ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)"


class SQLiteStore(OnlineStore):
    """:class:`OnlineStore` in one SQLite file (created if missing); safe to share between threads."""

    def __init__(self, path: str | Path, config: StoreConfig | None = None, timeout_s: float = 30.0) -> None:
        super().__init__(config)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        saved = self._check_config(None if row is None else row[0])
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (saved,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- writes -------------------------------------------------------------------------

    def _transaction(self, statements: list[tuple[str, list[tuple]]]) -> None:
        """Run ``executemany`` statements in one write transaction (all or nothing)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    if rows:
                        cur.executemany(sql, rows)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def _reset_features(self) -> None:
        tables = ("video", "totals", "user_video", "user_category", "user_creator")
        self._transaction([(f"DELETE FROM {t}", [()]) for t in tables])

    def _write_catalogue(self, uploads: pl.DataFrame) -> None:
        self._transaction(self._catalogue_statements(uploads))

    def _catalogue_statements(self, uploads: pl.DataFrame) -> list[tuple[str, list[tuple]]]:
        newest = uploads["uploaded_us"].max() if uploads.height else None
        return [
            (
                "INSERT INTO video (video_id, uploaded_us) VALUES (?, ?) "
                "ON CONFLICT (video_id) DO UPDATE SET uploaded_us = excluded.uploaded_us",
                uploads.select("video_id", "uploaded_us").rows(),
            ),
            (_MAX_CLOCK.format("last_upload_us"), [] if newest is None else [(newest,)]),
        ]

    def _write(self, deltas: Deltas) -> None:
        counts = deltas.video_counts.select("video_id", *COUNTS)
        totals = [(c, int(counts[c].sum())) for c in COUNTS]
        firsts = deltas.firsts.select(
            "user_id", pl.col("kind").replace_strict(_KIND_CODE, return_dtype=pl.Int64), "video_id", "ts_us"
        )
        last = [] if deltas.last_event_us is None else [(deltas.last_event_us,)]
        self._transaction(
            [
                *self._catalogue_statements(deltas.uploads),
                (
                    f"INSERT INTO video (video_id, {', '.join(COUNTS)}) VALUES (?{', ?' * len(COUNTS)}) "
                    f"ON CONFLICT (video_id) DO UPDATE SET {_ADD_COUNTS}",
                    counts.rows(),
                ),
                (
                    "INSERT INTO totals VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    totals,
                ),
                (_MAX_CLOCK.format("last_event_us"), last),
                (
                    "INSERT INTO user_video VALUES (?, ?, ?, ?) ON CONFLICT (user_id, kind, video_id) "
                    "DO UPDATE SET ts_us = min(ts_us, excluded.ts_us)",
                    firsts.rows(),
                ),
                (
                    "INSERT INTO user_category VALUES (?, ?, ?, ?) ON CONFLICT (user_id, category) DO UPDATE "
                    "SET views = views + excluded.views, completions = completions + excluded.completions",
                    deltas.category.select(list(CATEGORY_SCHEMA)).rows(),
                ),
                (
                    "INSERT INTO user_creator VALUES (?, ?, ?, ?) ON CONFLICT (user_id, creator_id) DO UPDATE "
                    "SET views = views + excluded.views, dislikes = dislikes + excluded.dislikes",
                    deltas.creator.select(list(CREATOR_SCHEMA)).rows(),
                ),
            ]
        )

    def put_video_embeddings(self, video_ids: list[str], vectors: np.ndarray) -> None:
        ids = [str(v) for v in video_ids]
        mat = as_matrix(ids, vectors)
        dim = str(mat.shape[1])
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        if row is not None and row[0] != dim:
            raise ValueError(f"this store holds {row[0]}-dimensional embeddings, got {dim}-dimensional ones")
        self._transaction(
            [
                ("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", [(dim,)]),
                ("INSERT OR REPLACE INTO embedding VALUES (?, ?)", list(zip(ids, (r.tobytes() for r in mat)))),
            ]
        )

    # ---- reads --------------------------------------------------------------------------

    def _query(self, sql: str, *params: object) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _read_users(self, user_ids: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        ids = json.dumps(user_ids)
        firsts = pl.DataFrame(
            self._query(f"SELECT user_id, kind, video_id, ts_us FROM user_video WHERE user_id IN {_IDS}", ids),
            schema={**FIRSTS_SCHEMA, "kind": pl.Int64},
            orient="row",
        ).with_columns(pl.col("kind").replace_strict(dict(enumerate(KINDS)), return_dtype=pl.String))
        category = pl.DataFrame(
            self._query(f"SELECT * FROM user_category WHERE user_id IN {_IDS}", ids), schema=CATEGORY_SCHEMA, orient="row"
        )
        creator = pl.DataFrame(
            self._query(f"SELECT * FROM user_creator WHERE user_id IN {_IDS}", ids), schema=CREATOR_SCHEMA, orient="row"
        )
        return firsts, category, creator

    def _read_videos(self, video_ids: list[str]) -> VideoRows:
        cols = ["video_id", *COUNTS, "uploaded_us"]
        rows = self._query(f"SELECT {', '.join(cols)} FROM video WHERE video_id IN {_IDS}", json.dumps(video_ids))
        schema = {"video_id": pl.String, **{c: pl.Int64 for c in COUNTS}, "uploaded_us": pl.Int64}
        totals = dict(self._query("SELECT name, value FROM totals"))
        return VideoRows(
            pl.DataFrame(rows, schema=schema, orient="row"),
            {c: int(totals.get(c, 0)) for c in COUNTS},
            totals.get("last_event_us"),
            totals.get("last_upload_us"),
        )

    def get_video_embeddings(self, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = [str(v) for v in video_ids]
        with self._lock:
            dim_row = self._conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
            rows = self._conn.execute(
                f"SELECT video_id, vec FROM embedding WHERE video_id IN {_IDS}", (json.dumps(ids),)
            ).fetchall()
        dim = 0 if dim_row is None else int(dim_row[0])
        found = [r[0] for r in rows]
        stored = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return place(ids, found, stored)
