"""The HTTP routes: health, a user's recommendations, incoming events."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Body, Path, Query

from vidrec import __version__
from vidrec.data.schema import EVENTS_REQUIRED
from vidrec.serving.deps import Recommender, Store
from vidrec.serving.errors import RequestProblem
from vidrec.serving.schemas import (
    MAX_K,
    ErrorResponse,
    EventIn,
    EventsAccepted,
    EventsBody,
    Health,
    Problem,
    RecommendationItem,
    RecommendationsResponse,
)

_REFUSED = {422: {"model": ErrorResponse, "description": "the request is invalid; see errors"}}
_ITEM_DEFAULTS: dict[str, pl.Expr] = {
    "sources": pl.lit([], dtype=pl.List(pl.String)),
    "retrieval_score": pl.lit(None, dtype=pl.Float64),
    "p_complete": pl.lit(None, dtype=pl.Float64),
    "adjustments": pl.lit([], dtype=pl.List(pl.String)),
}

health = APIRouter(tags=["health"])
recommendations = APIRouter(tags=["recommendations"])
events = APIRouter(tags=["events"])


@health.get("/health", response_model=Health)
def get_health() -> Health:
    """Liveness: the process answers."""
    return Health(version=__version__)


def slate_items(frame: pl.DataFrame) -> list[RecommendationItem]:
    """A recommender's slate frame as response items.

    Optional columns a recommender leaves out come back empty (null, []); a NaN
    retrieval score or p_complete becomes null, since JSON has no NaN.
    """
    missing = [default.alias(c) for c, default in _ITEM_DEFAULTS.items() if c not in frame.columns]
    rows = frame.with_columns(missing).sort("rank").select(
        pl.col("rank").cast(pl.Int64),
        "video_id",
        pl.col("final_score").cast(pl.Float64).alias("score"),
        "sources",
        pl.col("retrieval_score").cast(pl.Float64).fill_nan(None),
        pl.col("p_complete").cast(pl.Float64).fill_nan(None),
        "adjustments",
    )
    return [RecommendationItem(**row) for row in rows.to_dicts()]


@recommendations.get(
    "/users/{user_id}/recommendations", response_model=RecommendationsResponse, responses=_REFUSED
)
def get_recommendations(
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    recommender: Recommender,
    k: Annotated[int, Query(ge=1, le=MAX_K, description=f"slate size, 1..{MAX_K}")] = 10,
) -> RecommendationsResponse:
    """The user's top ``k`` videos; users the service has never seen get cold-start picks."""
    frame = recommender.recommend(user_id, k=k)
    return RecommendationsResponse(user_id=user_id, k=k, items=slate_items(frame))


def events_frame(items: list[EventIn], now: datetime) -> pl.DataFrame:
    """Validated events as a canonical events frame; a missing ``ts`` becomes ``now``."""
    return pl.DataFrame(
        {
            "user_id": [e.user_id for e in items],
            "video_id": [e.video_id for e in items],
            "ts": [e.ts or now for e in items],
            "event": [e.event for e in items],
            "watch_seconds": [e.watch_seconds for e in items],
        },
        schema=EVENTS_REQUIRED,
    )


def _unknown_videos(items: list[EventIn], recommender: Recommender, batch: bool) -> list[Problem]:
    """One problem per event whose video the catalogue does not hold."""
    known = {v: recommender.known_video(v) for v in {e.video_id for e in items}}
    return [
        Problem(
            field=f"body[{i}].video_id" if batch else "body.video_id",
            message=f"video {e.video_id!r} is not in the catalogue; check the id, or add the video "
            "to the videos table and reload the service before sending events about it",
        )
        for i, e in enumerate(items)
        if not known[e.video_id]
    ]


@events.post("/events", response_model=EventsAccepted, responses=_REFUSED)
def post_events(
    body: Annotated[EventsBody, Body()], recommender: Recommender, store: Store
) -> EventsAccepted:
    """Record one event or a batch: stored durably first, then shown to the recommender.

    A batch is all or nothing: one invalid event refuses the whole batch. Users need
    not be known in advance (a new user's first events create their history).
    """
    batch = isinstance(body, list)
    items = body if batch else [body]
    problems = _unknown_videos(items, recommender, batch)
    if problems:
        raise RequestProblem(problems)
    frame = events_frame(items, datetime.now(timezone.utc))
    store.append(frame)
    recommender.observe(frame)
    return EventsAccepted(accepted=frame.height)
