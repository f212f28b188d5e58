"""Assemble the service from a model directory: load the model, replay stored events."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from vidrec.recommender import Recommender
from vidrec.serving.app import create_app
from vidrec.serving.event_store import SQLiteEventStore

EVENTS_DB = "events.sqlite"


def load_service(
    model_dir: str | Path, events_db: str | Path | None = None, feature_store: str | None = None
) -> FastAPI:
    """The FastAPI app serving ``model_dir``, with events kept durably in SQLite.

    Events stored by earlier runs of the service are replayed, so a dislike recorded
    before a restart is still honoured after it; a feature store that persisted across
    the restart already holds them and is not updated twice. ``feature_store`` is a
    ``redis://`` URL shared by replicas, or a SQLite path (default: the model's own).
    """
    recommender = Recommender.load(model_dir, store=feature_store)
    store = SQLiteEventStore(events_db or Path(model_dir) / EVENTS_DB)
    past = store.all_events()
    if past.height:
        recommender.observe(past, update_store=recommender.store_is_new)
    return create_app(recommender, store)
