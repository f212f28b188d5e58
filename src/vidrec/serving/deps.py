"""What the HTTP layer needs from the rest of vidrec, and how routes receive it.

Routes never build their own resources: the recommender and the event store are
put on the app once by :func:`vidrec.serving.app.create_app` and handed to each
route through FastAPI dependencies, so tests can run the app on stand-ins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Protocol, runtime_checkable

import polars as pl
from fastapi import Depends, Request

from vidrec.serving.event_store import EventStore


@runtime_checkable
class RecommenderLike(Protocol):
    """The orchestrator as the service sees it."""

    def recommend(self, user_id: str, k: int = 10, now: datetime | None = None) -> pl.DataFrame:
        """The user's slate: ``rank, video_id, final_score, sources, retrieval_score,
        p_complete, adjustments``. Unknown users get cold-start recommendations."""
        ...

    def observe(self, events: pl.DataFrame) -> None:
        """Take in new events (canonical events schema); the next ``recommend`` for those
        users reflects them (a dislike is honoured at once)."""
        ...

    def known_video(self, video_id: str) -> bool:
        """Whether ``video_id`` is in the catalogue the recommender serves from."""
        ...

    @property
    def now(self) -> datetime:
        """The model's clock (uploads sent without a time are dated at it)."""
        ...

    def add_videos(self, videos: pl.DataFrame, strict: bool = False) -> pl.DataFrame:
        """Add uploads (canonical videos rows) to the catalogue, retrievable from the next
        ``recommend``; ``strict`` refuses the whole batch if a row is invalid."""
        ...

    def remove_videos(self, video_ids: list[str]) -> int:
        """Take videos off: no later ``recommend`` returns them. Returns how many were available."""
        ...


def get_recommender(request: Request) -> RecommenderLike:
    """The recommender the app was created with."""
    return request.app.state.recommender


def get_event_store(request: Request) -> EventStore:
    """The durable event store the app was created with."""
    return request.app.state.event_store


Recommender = Annotated[RecommenderLike, Depends(get_recommender)]
Store = Annotated[EventStore, Depends(get_event_store)]
