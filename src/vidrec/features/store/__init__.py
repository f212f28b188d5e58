"""The online feature store: user state, video statistics and embeddings kept current for serving.

``open_store`` picks the backend from the location: a ``redis://`` (or ``rediss://``,
``unix://``) URL opens the shared :class:`RedisStore` (imported only then), anything
else is a file path for the embedded :class:`SQLiteStore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidrec.features.store.base import OnlineStore, StoreConfig
from vidrec.features.store.deltas import USER_STATE_SCHEMA
from vidrec.features.store.sqlite import SQLiteStore
from vidrec.features.video_stats import VIDEO_STATS_SCHEMA

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(location: str | Path, config: StoreConfig | None = None, **options: Any) -> OnlineStore:
    """The store at ``location``: a Redis URL, or the path of a SQLite file (created if missing)."""
    loc = str(location)
    if loc.startswith(_REDIS_SCHEMES):
        from vidrec.features.store.redis import RedisStore

        return RedisStore(loc, config, **options)
    if "://" in loc:
        raise ValueError(f"unknown feature store location {loc!r}: give a redis:// URL or a SQLite file path")
    return SQLiteStore(loc, config, **options)


__all__ = ["USER_STATE_SCHEMA", "VIDEO_STATS_SCHEMA", "OnlineStore", "SQLiteStore", "StoreConfig", "open_store"]
