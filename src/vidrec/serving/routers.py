"""The HTTP routes: health, a user's recommendations, incoming events, uploads and removals, the
read-only listings the browser UI shows (users, a user's history, the catalogue) and the UI itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, cast

import polars as pl
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from vidrec import __version__
from vidrec.data.schema import EVENTS_REQUIRED, VIDEOS_OPTIONAL, VIDEOS_REQUIRED
from vidrec.errors import DataError, VidrecError
from vidrec.serving.auth import requires
from vidrec.serving.deps import Batcher, Recommender
from vidrec.serving.errors import RequestProblem
from vidrec.serving.schemas import (
    ID,
    MAX_K,
    MAX_PAGE,
    ErrorResponse,
    EventIn,
    EventsAccepted,
    EventsBody,
    Health,
    History,
    Problem,
    Readiness,
    RecommendationsResponse,
    ReloadAnswer,
    ReloadRequest,
    UsersPage,
    VideoIn,
    VideosAccepted,
    VideosBody,
    VideosPage,
    VideosRemoved,
)
from vidrec.uploads import upload_error, validate_uploads

_Responses = dict[int | str, dict[str, Any]]
_RETRY = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}
_REFUSED: _Responses = {422: {"model": ErrorResponse, "description": "the request is invalid; see errors"}}
_NOT_READY: _Responses = {503: {"model": Readiness, "description": "a dependency is down"}}
_AUTH: _Responses = {
    401: {"model": ErrorResponse, "description": "no API key, or not a valid one"},
    403: {"model": ErrorResponse, "description": "the key lacks the scope this call needs"},
    413: {"model": ErrorResponse, "description": "the body is over the service's size limit"},
    429: {"model": ErrorResponse, "description": "the key is over its rate limit; see Retry-After", "headers": _RETRY},
}
_UNAVAILABLE: _Responses = {503: {"model": ErrorResponse, "headers": _RETRY, "description": "the online store or a "
                                  "model worker does not answer; retry after Retry-After (GET /ready says what is "
                                  "down)"}}  # fmt: skip
_READ = [Depends(requires("recommendations:read", read=True))]
_EVENTS = [Depends(requires("events:write"))]
_CATALOGUE = [Depends(requires("catalogue:write"))]
_RELOAD = [Depends(requires("service:reload"))]

health = APIRouter(tags=["health"])
recommendations = APIRouter(tags=["recommendations"])
events = APIRouter(tags=["events"])
videos = APIRouter(tags=["videos"])
admin = APIRouter(tags=["admin"])
browse = APIRouter(tags=["browse"])
ui = APIRouter(include_in_schema=False)
UI_DIR = FilePath(__file__).parent / "ui"
"""The browser UI's files (HTML, JavaScript, CSS), shipped with the package."""
_UNREADABLE: _Responses = {400: {"model": ErrorResponse, "description": "the body could not be read (not UTF-8 "
                                  "JSON)"}}  # fmt: skip
_NOT_FOUND: _Responses = {404: {"model": ErrorResponse, "description": "no such video in the catalogue"}}
_READS = _REFUSED | _AUTH | _UNAVAILABLE  # what a read of the model or the store may answer besides 200


@health.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})  # fmt: skip
def get_metrics(request: Request) -> Response:
    """Requests by route and status, latency histograms by route, slate batch sizes, seconds per
    stage of each slate request (candidates, scoring, reranking), online store reads and writes,
    and error answers by kind: all of the service's processes (worker processes' timings come back
    to this one), none labelled by user."""
    body, content_type = request.app.state.metrics.exposition()
    return Response(content=body, media_type=content_type)


@health.get("/health", response_model=Health, summary="Liveness: the process answers")
def get_health() -> Health:
    """Always 200 while the process answers HTTP: for liveness probes (GET /ready says whether it can serve)."""
    return Health(version=__version__)


@health.get("/ready", response_model=Readiness, responses=_NOT_READY,
            summary="Readiness: the online store, the event log and the workers answer")  # fmt: skip
def get_ready(recommender: Recommender, request: Request) -> JSONResponse:
    """200 when every dependency answers, 503 with what is down otherwise (with ``--workers N``,
    each worker process is a check too); names the model version being served."""
    checks = recommender.ready()
    ok = all(v == "ok" for v in checks.values())
    reloader = request.app.state.reloader
    body = Readiness(status="ready" if ok else "not ready", checks=checks,
                     model_version=reloader.serving.name if reloader else None)  # fmt: skip
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())


@recommendations.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationsResponse,
    responses=_READS,
    dependencies=_READ,
    summary="A user's slate, with every stage's scores and reasons",
)
async def get_recommendations(
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    batcher: Batcher,
    k: Annotated[int, Query(ge=1, le=MAX_K, description=f"slate size, 1..{MAX_K}")] = 10,
    debug: Annotated[bool, Query(description="add the candidates re-ranking left out, with the reason")] = False,
) -> Response:
    """The user's top ``k`` videos; users the service has never seen get cold-start picks.

    Served with the other requests waiting at the same moment (one batch, on the event loop:
    a request is a few milliseconds of CPU). The body is the ``RecommendationsResponse`` schema.
    """
    answer: dict[str, Any] = {"user_id": user_id, "k": k}
    if debug:  # one pass of its own: the removed candidates are read off the same result as the slate
        answer |= await batcher.explain(user_id, k)
    else:
        answer["items"] = await batcher.slate(user_id, k)
    body = json.dumps(answer, separators=(",", ":"), allow_nan=False)
    return Response(content=body, media_type="application/json")


def events_frame(items: list[EventIn], now: datetime) -> pl.DataFrame:
    """Validated events as a canonical events frame; a missing ``ts`` becomes ``now``."""
    return pl.DataFrame(
        {
            "user_id": [e.user_id for e in items],
            "video_id": [e.video_id for e in items],
            "ts": [e.ts or now for e in items],
            "event": [e.event for e in items],
            "watch_seconds": [e.watch_seconds for e in items],
            "event_id": [e.event_id for e in items],
        },
        schema={**EVENTS_REQUIRED, "event_id": pl.String},
    )


def _unknown_videos(items: list[EventIn], recommender: Recommender, batch: bool) -> list[Problem]:
    """One problem per event whose video the catalogue does not hold."""
    known = {v: recommender.known_video(v) for v in {e.video_id for e in items}}
    return [
        Problem(
            field=f"body[{i}].video_id" if batch else "body.video_id",
            message=f"video {e.video_id!r} is not in the catalogue; check the id, or upload the video "
            "first (POST /videos)",
        )
        for i, e in enumerate(items)
        if not known[e.video_id]
    ]


@events.post(
    "/events",
    response_model=EventsAccepted,
    responses=_READS | _UNREADABLE | {202: {"model": EventsAccepted, "description": "stored durably, applied to "
                                            "the online store when it answers again (applied: false)"}},
    dependencies=_EVENTS,
    summary="Record one event or a batch (watch, like, dislike, impression)",
)
def post_events(body: Annotated[EventsBody, Body()], recommender: Recommender, response: Response) -> EventsAccepted:
    """Record one event or a batch: stored durably first, then applied to the online store.

    A batch is all or nothing: one invalid event refuses the whole batch. Users need
    not be known in advance (a new user's first events create their history). Events that
    carry an ``event_id`` stored before are skipped (``duplicates``): retrying a POST whose
    answer was lost stores nothing twice. When the online store does not answer, the events
    are still stored durably and the answer is 202 with ``applied: false``.
    """
    batch = isinstance(body, list)
    items = cast(list[EventIn], body if batch else [body])
    problems = _unknown_videos(items, recommender, batch) + _repeated_ids(items, batch)
    if problems:
        raise RequestProblem(problems)
    frame = events_frame(items, datetime.now(UTC))
    done = recommender.observe(frame)
    if not done.applied:
        response.status_code = 202
    return EventsAccepted(accepted=done.stored, duplicates=done.duplicates, applied=done.applied)


def _repeated_ids(items: list[EventIn], batch: bool) -> list[Problem]:
    """One problem per event whose ``event_id`` an earlier event of the batch has."""
    seen: set[str] = set()
    problems = []
    for i, e in enumerate(items):
        if e.event_id is not None and e.event_id in seen:
            problems.append(Problem(field=f"body[{i}].event_id" if batch else "body.event_id",
                                    message=f"event_id {e.event_id!r} appears twice in this batch"))  # fmt: skip
        if e.event_id is not None:
            seen.add(e.event_id)
    return problems


def videos_frame(items: list[VideoIn], now: datetime) -> pl.DataFrame:
    """Validated uploads as canonical videos rows; a missing ``uploaded_at`` becomes ``now``."""
    return pl.DataFrame(
        {
            "video_id": [v.video_id for v in items],
            "creator_id": [v.creator_id for v in items],
            "category": [v.category for v in items],
            "tags": [v.tags for v in items],
            "duration_seconds": [v.duration_seconds for v in items],
            "uploaded_at": [v.uploaded_at or now for v in items],
            "available": [v.available for v in items],
            "title": [v.title for v in items],
            "language": [v.language for v in items],
        },
        schema={**VIDEOS_REQUIRED, **VIDEOS_OPTIONAL},
    )


def _taken_ids(items: list[VideoIn], recommender: Recommender, batch: bool) -> list[Problem]:
    """One problem per upload whose id the catalogue (or an earlier item of the batch) holds."""
    where = (lambda i: f"body[{i}].video_id") if batch else (lambda i: "body.video_id")
    seen: set[str] = set()
    problems = []
    for i, v in enumerate(items):
        if recommender.known_video(v.video_id):
            problems.append(Problem(field=where(i), message=f"video {v.video_id!r} is already in the catalogue; "
                                    "give the upload a new id"))
        elif v.video_id in seen:
            problems.append(Problem(field=where(i), message=f"video {v.video_id!r} appears twice in this batch"))
        seen.add(v.video_id)
    return problems


_RACED: _Responses = {409: {"model": ErrorResponse, "description": "a video of the batch was uploaded by another "
                             "request meanwhile; nothing of the batch was stored"}}  # fmt: skip


@videos.post("/videos", response_model=VideosAccepted, responses=_READS | _UNREADABLE | _RACED, dependencies=_CATALOGUE,
             summary="Add one uploaded video or a batch, searchable from the next request")  # fmt: skip
def post_videos(body: Annotated[VideosBody, Body()], recommender: Recommender) -> VideosAccepted:
    """Add one uploaded video or a batch: stored durably, then searchable from the next request.

    A batch is all or nothing, checked by the rules of ingestion; ids must be new.
    """
    batch = isinstance(body, list)
    items = cast(list[VideoIn], body if batch else [body])
    problems = _taken_ids(items, recommender, batch)
    if problems:
        raise RequestProblem(problems)
    # Uploads without a time are dated at the model's clock, so a model of a past period
    # (a replayed log) does not jump to today.
    frame = videos_frame(items, recommender.now)
    _, bad = validate_uploads(frame, frame.clear())  # checked before anything is stored (ids: above)
    if bad.height:
        raise RequestProblem([Problem(field="body", message=upload_error(bad, frame.height).message)])
    try:
        recommender.add_videos(frame, strict=True)
    except DataError:  # a concurrent request stored the same id first
        raise RequestProblem(
            [Problem(field="body", message="a video of this batch was uploaded meanwhile; ids are never reused")], 409
        ) from None
    return VideosAccepted(accepted=frame.height)


@videos.delete("/videos/{video_id}", response_model=VideosRemoved, responses=_NOT_FOUND | _READS,
                dependencies=_CATALOGUE, summary="Take a video off: never recommended again")  # fmt: skip
def delete_video(
    video_id: Annotated[str, Path(min_length=1, max_length=256)], recommender: Recommender
) -> VideosRemoved:
    """No recommendation returns it from the next request on; it stays listed (GET /videos) with
    ``available: false``, and its id is never reused. A video removed already answers 200 with
    ``removed: 0``; an id not in the catalogue gets 404, an id that is not a valid id 422, both
    with the ErrorResponse body."""
    if not recommender.known_video(video_id):
        raise RequestProblem(
            [Problem(field="path.video_id", message=f"video {video_id!r} is not in the catalogue; check the id")], 404
        )
    return VideosRemoved(removed=recommender.remove_videos([video_id]))


_NOT_RELOADED: _Responses = {409: {"model": ErrorResponse, "description": "refused; the old version serves on"}}


@admin.post("/admin/reload", response_model=ReloadAnswer, responses=_REFUSED | _UNREADABLE | _AUTH | _NOT_RELOADED,
            dependencies=_RELOAD, summary="Serve another model version without a restart")  # fmt: skip
async def post_reload(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadAnswer:
    """Serve another model version without a restart: the one ``LATEST`` names, or ``version``.

    The version is verified against its manifest and loaded beside the one serving, then
    swapped in between requests; one that fails is refused (409, with the reason) and the
    old one serves on. The key file is read again too (revoked keys stop working).
    """
    reloader = request.app.state.reloader
    if reloader is None:
        raise RequestProblem([Problem(field="service", message="this service was started without a model "
                                      "directory to reload from")], 409)  # fmt: skip
    try:
        done = await reloader.reload(request.app, body.version if body else None)
    except VidrecError as err:  # not verified, not loadable, a bad key file, or a reload under way
        why = err.message if err.hint is None else f"{err.message}; {err.hint}"
        raise RequestProblem([Problem(field="body.version" if body and body.version else "version",
                                      message=why)], 409) from None  # fmt: skip
    return ReloadAnswer(version=done.version, previous=done.previous, changed=done.changed, keys=done.keys)


Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows to return, 1..{MAX_PAGE}")]


@browse.get("/users", response_model=UsersPage, responses=_READS, dependencies=_READ,
            summary="A page of the users the model was trained with")  # fmt: skip
def get_users(recommender: Recommender, offset: Offset = 0, limit: Limit = 50) -> UsersPage:
    """Users of the model's users table, in its order, with their profiles. Users first seen in
    events since training are not listed; their history and slates are found by id."""
    return UsersPage.model_validate(recommender.users_page(offset, limit))


@browse.get("/users/{user_id}/history", response_model=History, responses=_READS, dependencies=_READ,
            summary="The videos a user watched, liked or disliked, and when")  # fmt: skip
def get_history(
    user_id: Annotated[str, Path(min_length=1, max_length=256)],
    recommender: Recommender,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="videos to return, the latest first")] = 50,
) -> History:
    """The user's record in the online store (what their slate is computed from): per video the
    first and last watch, the first completion, like and dislike. Unknown users get ``known: false``
    and no items. Costs the user's own record, whatever the size of the log."""
    return History.model_validate(recommender.history(user_id, limit))


@browse.get("/videos", response_model=VideosPage, responses=_READS, dependencies=_READ,
            summary="A page of the catalogue, or videos by id")  # fmt: skip
def get_videos(
    recommender: Recommender,
    offset: Offset = 0,
    limit: Limit = 50,
    order: Annotated[Literal["newest", "oldest"], Query(description="newest: the latest added first")] = "newest",
    video_id: Annotated[list[ID] | None, Query(alias="id", max_length=MAX_PAGE,
                                              description="these videos instead of a page (repeat: id=a&id=b)")] = None,
) -> VideosPage:
    """Videos as the catalogue holds them now, uploads and removals of every worker and replica
    included (removed videos stay listed with ``available: false``). With ``id``, the videos
    named (``missing``: ids not in the catalogue) and paging does not apply."""
    if video_id:
        return VideosPage.model_validate(recommender.videos_by_id(video_id))
    return VideosPage.model_validate(recommender.videos_page(offset, limit, order))


@ui.get("/")
def get_ui() -> FileResponse:
    """The browser UI: one page, its script and style under ``/ui/`` (no other origin is loaded)."""
    policy = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    return FileResponse(UI_DIR / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"})  # fmt: skip
