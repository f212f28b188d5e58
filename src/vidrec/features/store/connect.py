"""One way to open the SQLite files several processes share (the event log, the online store)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect_wal(path: str | Path, timeout_s: float, synchronous: str) -> sqlite3.Connection:
    """A connection in WAL mode (readers never wait for the writer), autocommit, usable from any thread.

    Switching a file to WAL takes an exclusive lock, and SQLite answers "database is locked"
    at once, without waiting, to a process that asks while another is doing the same (workers
    starting together on a new file): the switch is retried until ``timeout_s``.
    """
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.05)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn
