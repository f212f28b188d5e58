"""Serving: the HTTP app, its request/response schemas and the durable event store.

FastAPI is needed by this package only; nothing outside ``vidrec.serving`` imports it.
"""

from vidrec.serving.app import create_app
from vidrec.serving.deps import RecommenderLike
from vidrec.serving.event_store import EventStore, SQLiteEventStore

__all__ = ["EventStore", "RecommenderLike", "SQLiteEventStore", "create_app"]
