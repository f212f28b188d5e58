"""Assemble the HTTP service: routers, error handlers and the shared resources."""

from __future__ import annotations

from fastapi import FastAPI

from vidrec import __version__
from vidrec.serving.deps import RecommenderLike
from vidrec.serving.errors import install_error_handlers
from vidrec.serving.event_store import EventStore
from vidrec.serving.routers import events, health, recommendations, videos


def create_app(recommender: RecommenderLike, store: EventStore) -> FastAPI:
    """The vidrec API serving ``recommender`` and recording events into ``store``.

    The caller owns both resources (and closes the store); routes reach them through
    the dependencies in :mod:`vidrec.serving.deps`.
    """
    app = FastAPI(
        title="vidrec",
        version=__version__,
        description="Video recommendations (candidates -> scoring -> re-ranking) and event intake.",
    )
    app.state.recommender = recommender
    app.state.event_store = store
    install_error_handlers(app)
    for router in (health, recommendations, events, videos):
        app.include_router(router)
    return app
