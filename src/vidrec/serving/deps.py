"""What the HTTP layer needs from the rest of vidrec, and how routes receive it.

Routes never build their own resources: the recommender is put on the app once by
:func:`vidrec.serving.app.create_app` and handed to each route through a FastAPI
dependency, so tests can run the app on stand-ins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol, runtime_checkable

import polars as pl
from fastapi import Depends, Request

if TYPE_CHECKING:
    from vidrec.browse import Order
    from vidrec.recommender import Observed, Timing


@runtime_checkable
class RecommenderLike(Protocol):
    """The orchestrator as the service's writes and lookups see it (slates go through a
    :class:`SlateSource`)."""

    def observe(self, events: pl.DataFrame) -> Observed:
        """Take in new events (canonical events schema, optional ``event_id``), durably; the next
        ``slate`` for those users reflects them (a dislike is honoured at once). Events whose
        ``event_id`` is stored already are skipped."""
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
        ``slate``; ``strict`` refuses the whole batch if a row is invalid."""
        ...

    def remove_videos(self, video_ids: list[str]) -> int:
        """Take videos off: no later ``slate`` returns them. Returns how many were available."""
        ...

    def ready(self) -> dict[str, str]:
        """Each dependency's state (``ok`` or what is wrong): the store, the event log."""
        ...

    def history(self, user_id: str, limit: int = 50) -> dict[str, Any]:
        """The user's latest videos watched, liked or disliked (:func:`vidrec.browse.history`)."""
        ...

    def videos_page(self, offset: int = 0, limit: int = 50, order: Order = "newest") -> dict[str, Any]:
        """A page of the catalogue (:func:`vidrec.browse.videos_page`)."""
        ...

    def videos_by_id(self, video_ids: list[str]) -> dict[str, Any]:
        """The named videos of the catalogue (:func:`vidrec.browse.videos_by_id`)."""
        ...

    def users_page(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """A page of the model's users table (:func:`vidrec.browse.users_page`)."""
        ...


@runtime_checkable
class SlateRecommender(RecommenderLike, Protocol):
    """A recommender in this process: slates computed here."""

    def slate(self, user_id: str, k: int = 10) -> list[dict[str, Any]]:
        """The user's slate: dicts of ``rank, video_id, score, sources, retrieval_score,
        p_complete, adjustments``. Unknown users get cold-start recommendations."""
        ...

    def slates(self, asks: list[tuple[str, int]]) -> list[list[dict[str, Any]]]:
        """``slate(user_id, k)`` of each ask, served together."""
        ...

    def explain(self, user_id: str, k: int = 10) -> dict[str, list[dict[str, Any]]]:
        """``items`` (the slate) and ``removed``: dicts of ``video_id, reason, sources,
        p_complete, score`` for the candidates re-ranking left out."""
        ...


@runtime_checkable
class Timed(Protocol):
    """A recommender that reports how long its steps take (stages, store) to ``on_timing``."""

    on_timing: Timing | None


class SlateSource(Protocol):
    """Where the routes get slates: batched with the requests waiting at the same moment."""

    async def slate(self, user_id: str, k: int) -> list[dict[str, Any]]:
        """The user's slate (see :meth:`SlateRecommender.slate`)."""
        ...

    async def explain(self, user_id: str, k: int) -> dict[str, list[dict[str, Any]]]:
        """The slate and the left-out candidates of one pass (see :meth:`SlateRecommender.explain`)."""
        ...


async def get_recommender(request: Request) -> AsyncIterator[RecommenderLike]:
    """The recommender the app serves now (``async``: read on the event loop, where a plain
    function would be sent to the thread pool and back on every request). Requests holding it
    are counted in ``app.state.in_flight``, so a reload closes the old one only once they end."""
    rec = request.app.state.recommender
    in_flight: dict[int, int] = request.app.state.in_flight
    in_flight[id(rec)] = in_flight.get(id(rec), 0) + 1
    try:
        yield rec
    finally:
        in_flight[id(rec)] -= 1
        if not in_flight[id(rec)]:
            del in_flight[id(rec)]


async def get_batcher(request: Request) -> SlateSource:
    """The batcher of the app's slate requests."""
    return request.app.state.batcher


Recommender = Annotated[RecommenderLike, Depends(get_recommender)]
Batcher = Annotated[SlateSource, Depends(get_batcher)]
