"""The online store and the durable event log it is derived from.

``open_store`` picks the backend from the location: a ``redis://`` (or ``rediss://``,
``unix://``) URL opens the shared :class:`RedisStore` (imported only then), ``":memory:"``
a private in-process store, anything else is a file path for the embedded :class:`SQLiteStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidrec.features.store.base import FeedEntry, OnlineStore, Snapshot, UserRecord
from vidrec.features.store.deltas import StoreConfig
from vidrec.features.store.log import EventLog
from vidrec.features.store.sqlite import SQLiteStore

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(location: str | Path) -> bool:
    return str(location).startswith(REDIS_SCHEMES)


def open_store(location: str | Path, config: StoreConfig | None = None, **options: Any) -> OnlineStore:
    """The store at ``location``: a Redis URL, ``":memory:"``, or the path of a SQLite file (created if missing)."""
    loc = str(location)
    if is_redis(loc):
        from vidrec.features.store.redis import RedisStore

        return RedisStore(loc, config, **options)
    if "://" in loc:
        raise ValueError(f"unknown feature store location {loc!r}: give a redis:// URL or a SQLite file path")
    return SQLiteStore(loc, config, **options)


__all__ = [
    "EventLog", "FeedEntry", "OnlineStore", "SQLiteStore", "Snapshot", "StoreConfig", "UserRecord", "is_redis",
    "open_store",
]  # fmt: skip
