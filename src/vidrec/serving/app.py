"""Assemble the HTTP service: routers, error handlers and the shared resource."""

from __future__ import annotations

from fastapi import FastAPI

from vidrec import __version__
from vidrec.serving.batching import SlateBatcher
from vidrec.serving.deps import RecommenderLike
from vidrec.serving.errors import install_error_handlers
from vidrec.serving.routers import events, health, recommendations, videos


def create_app(recommender: RecommenderLike) -> FastAPI:
    """The vidrec API serving ``recommender`` (which logs what it is told durably, then applies it).

    The caller owns the recommender (and closes it); routes reach it through the dependency
    in :mod:`vidrec.serving.deps`.
    """
    app = FastAPI(
        title="vidrec",
        version=__version__,
        description="Video recommendations (candidates -> scoring -> re-ranking) and event intake.",
    )
    app.state.recommender = recommender
    app.state.batcher = SlateBatcher(recommender)
    install_error_handlers(app)
    for router in (health, recommendations, events, videos):
        app.include_router(router)
    return app
