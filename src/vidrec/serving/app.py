"""Assemble the HTTP service: routers, error handlers and the shared resource."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import cast

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from vidrec import __version__
from vidrec.serving.auth import KeyRing
from vidrec.serving.batching import SlateBatcher
from vidrec.serving.deps import RecommenderLike, SlateRecommender, SlateSource, Timed
from vidrec.serving.errors import install_error_handlers
from vidrec.serving.limits import DEFAULT_MAX_BODY, BodyLimit
from vidrec.serving.metrics import Instrument, Metrics
from vidrec.serving.routers import UI_DIR, admin, browse, events, health, recommendations, ui, videos

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(recommender: RecommenderLike, slates: SlateSource | None = None, lifespan: Lifespan | None = None,
               keys: KeyRing | None = None, max_body_bytes: int = DEFAULT_MAX_BODY) -> FastAPI:  # fmt: skip
    """The vidrec API serving ``recommender`` (which logs what it is told durably, then applies it).

    ``slates``: where slate requests go (default: a :class:`SlateBatcher` over ``recommender``,
    which must then compute slates itself). The caller owns both (and closes them); routes
    reach them through the dependencies in :mod:`vidrec.serving.deps`; ``lifespan`` is the
    app's start-up and shutdown (e.g. stopping worker processes). ``keys``: the API keys the
    writes (and, if the ring says so, the reads) need; None serves without authentication.
    Bodies over ``max_body_bytes`` are refused with 413.
    """
    app = FastAPI(
        title="vidrec",
        version=__version__,
        description="Video recommendations (candidates -> scoring -> re-ranking) and event intake.",
        lifespan=lifespan,
    )
    app.state.recommender = recommender
    app.state.in_flight = {}  # id(recommender) -> requests using it (a reload waits for them)
    app.state.reloader = None  # set by vidrec.serving.runtime.load_service
    app.state.keys = keys
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.metrics = Metrics()
    app.add_middleware(Instrument, metrics=app.state.metrics)  # outermost: 413s are counted too
    app.state.batcher = slates or SlateBatcher(cast(SlateRecommender, recommender))
    app.state.batcher.on_batch = app.state.metrics.batch.observe
    if isinstance(recommender, Timed):  # stage and store seconds, from this process or the workers
        recommender.on_timing = app.state.metrics.timing
    install_error_handlers(app)
    for router in (health, recommendations, events, videos, admin, browse, ui):
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")  # the browser UI's script and style
    return app
