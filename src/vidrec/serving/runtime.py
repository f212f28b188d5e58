"""Assemble the service from a model directory: load the model, replay stored events."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from vidrec.recommender import Recommender
from vidrec.serving.app import create_app
from vidrec.serving.event_store import SQLiteEventStore

EVENTS_DB = "events.sqlite"


def load_service(model_dir: str | Path, events_db: str | Path | None = None) -> FastAPI:
    """The FastAPI app serving ``model_dir``, with events kept durably in SQLite.

    Events stored by earlier runs of the service are replayed into the recommender, so a
    dislike recorded before a restart is still honoured after it.
    """
    recommender = Recommender.load(model_dir)
    store = SQLiteEventStore(events_db or Path(model_dir) / EVENTS_DB)
    past = store.all_events()
    if past.height:
        recommender.observe(past)
    return create_app(recommender, store)
