"""Assemble the service from a model directory: load the model, replay stored events."""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import polars as pl
from fastapi import FastAPI

from vidrec.recommender import Recommender
from vidrec.serving.app import create_app
from vidrec.serving.event_store import SQLiteEventStore

EVENTS_DB = "events.sqlite"


def load_service(
    model_dir: str | Path, events_db: str | Path | None = None, feature_store: str | None = None
) -> FastAPI:
    """The FastAPI app serving ``model_dir``, with events kept durably in SQLite.

    Uploads, removals and events stored by earlier runs of the service are replayed, so a dislike recorded
    before a restart is still honoured after it; a feature store that persisted across
    the restart already holds them and is not updated twice. ``feature_store`` is a
    ``redis://`` URL shared by replicas, or a SQLite path (default: the model's own).
    """
    recommender = Recommender.load(model_dir, store=feature_store)
    store = SQLiteEventStore(events_db or Path(model_dir) / EVENTS_DB)
    replay_catalogue(recommender, store)
    # Events up to the model's last one are already in its log (it was saved after observing
    # them): replaying them would count them twice.
    last = recommender.events["ts"].max()
    past = store.all_events(since=None if last is None else last + timedelta(microseconds=1))
    if past.height:
        recommender.observe(past, update_store=recommender.store_is_new)
    return create_app(recommender, store)


def replay_catalogue(recommender: Recommender, store: SQLiteEventStore) -> None:
    """Re-apply uploads and removals stored by earlier runs (before the events that refer to them).

    Uploads the loaded model already holds (it was saved or retrained with them) are skipped.
    """
    uploads = store.uploaded_videos()
    if uploads.height:
        new = uploads.filter(~pl.col("video_id").is_in(recommender.videos["video_id"].implode()))
        refused = recommender.add_videos(new)  # rows the service accepted once
        if refused.height:
            warnings.warn(f"{refused.height} stored upload(s) no longer pass validation and were skipped: "
                          f"{refused['value'].head(5).to_list()}", stacklevel=2)
    removed = [v for v in store.removed_videos() if recommender.known_video(v)]
    if removed:
        recommender.remove_videos(removed)
