"""Request and response bodies of the HTTP API, validated by pydantic.

Events and uploaded videos follow the same rules as ingestion (:mod:`vidrec.data.validation`):
a watch carries ``watch_seconds`` >= 0 and nothing else does, event times lie between 1970
and a day from now, upload times between 1900 and a day from now, durations above 0; a
time without an offset is taken as UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict

from vidrec.data.schema import EARLIEST_TS, EARLIEST_UPLOAD, MAX_WATCH_SECONDS
from vidrec.data.validation import REASONS

MAX_K = 500
MAX_BATCH = 10_000
MAX_FUTURE = timedelta(days=1)
MAX_TITLE = 1_000
ID = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""Ids: 1 to 256 characters, no control characters (NUL, newlines)."""


class EventIn(BaseModel):
    """One thing a user did to a video."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"user_id": "42", "video_id": "v-1001", "event": "watch", "watch_seconds": 212.5,
         "ts": "2025-06-21T18:04:00Z", "event_id": "app-7f3c-0001"},
        {"user_id": "42", "video_id": "v-1002", "event": "dislike"},
    ]})  # fmt: skip

    user_id: ID = Field(description="the user's id (any string; a new user's first events create their history)")
    video_id: ID = Field(description="a video of the catalogue (uploads: POST /videos first)")
    event: Literal["watch", "like", "dislike", "impression"] = Field(
        description="impression: shown; watch: played (needs watch_seconds); like; dislike (hidden at once)"
    )
    watch_seconds: float | None = Field(
        default=None, validate_default=True, description="seconds watched; watch events only"
    )
    ts: datetime | None = Field(default=None, description="when it happened (UTC); default: now")
    event_id: ID | None = Field(
        default=None, description="the client's id of this event: a retried POST stores an id only once"
    )

    @field_validator("watch_seconds")
    @classmethod
    def _seconds_only_on_watch(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("event")  # absent when the event kind itself was invalid
        if kind == "watch" and value is None:
            raise ValueError(REASONS["missing_watch_seconds"])
        if kind is not None and kind != "watch" and value is not None:
            raise ValueError(REASONS["unexpected_watch_seconds"])
        if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_WATCH_SECONDS):
            raise ValueError(REASONS["invalid_watch_seconds"])
        return value

    @field_validator("ts", mode="before")
    @classmethod
    def _iso_ts(cls, value: object) -> object:
        return iso_time(value)

    @field_validator("ts")
    @classmethod
    def _utc_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # no offset: UTC, as in ingestion
        value = value.astimezone(UTC)
        if not EARLIEST_TS <= value <= datetime.now(UTC) + MAX_FUTURE:
            raise ValueError(REASONS["timestamp_out_of_range"])
        return value


def iso_time(value: object) -> object:
    """Times are ISO 8601 text, as in ingestion: a bare number (``1700000000``, or as text) is
    refused, not guessed as seconds or milliseconds since 1970."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("times are ISO 8601 text such as 2025-06-01T12:00:00Z; convert numbers since 1970 "
                         "to that form (they are not guessed as seconds or milliseconds)")  # fmt: skip
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_or_many(value: object) -> str:
    return "many" if isinstance(value, list) else "one"


EventBatch = Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]
EventsBody = Annotated[
    Annotated[EventIn, Tag("one")] | Annotated[EventBatch, Tag("many")],
    Discriminator(_one_or_many),
]
"""``POST /events`` takes one event object or a list of them."""
BODY_TAGS = ("one", "many")
"""Union tags pydantic puts in error locations; dropped when errors are reported."""


class EventsAccepted(BaseModel):
    """What became of the events: stored, skipped as retries, applied to the online store yet."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 2, "duplicates": 0, "applied": True}]})

    accepted: int = Field(description="events stored now")
    duplicates: int = Field(default=0, description="events skipped: their event_id was stored before")
    applied: bool = Field(
        default=True, description="false (and status 202): stored durably, applied when the store answers again"
    )


class VideoIn(BaseModel):
    """One uploaded video: a row of the canonical videos table (ingestion's rules apply)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"video_id": "v-new", "creator_id": "c7", "category": "music", "tags": ["live"], "duration_seconds": 240,
         "title": "Live at the harbour", "language": "en"},
    ]})  # fmt: skip

    video_id: ID = Field(description="a new id: ids of the catalogue (removed videos included) are never reused")
    creator_id: ID = Field(description="who uploaded it (the creators generator and creator caps use it)")
    category: ID = Field(description="one category, e.g. music")
    tags: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=256, description="free tags; may be empty"
    )
    duration_seconds: float = Field(description="length in seconds, above 0")
    uploaded_at: datetime | None = Field(default=None, description="upload time (UTC); default: now")
    available: bool = Field(default=True, description="false stores it as removed already")
    title: str | None = Field(default=None, max_length=MAX_TITLE, description="its title (its words count as tags)")
    language: ID | None = Field(default=None, description="e.g. en")

    @field_validator("duration_seconds")
    @classmethod
    def _positive_duration(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(REASONS["non_positive_duration"])
        return value

    @field_validator("uploaded_at", mode="before")
    @classmethod
    def _iso_uploaded_at(cls, value: object) -> object:
        return iso_time(value)

    @field_validator("uploaded_at")
    @classmethod
    def _upload_in_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if not EARLIEST_UPLOAD <= value <= datetime.now(UTC) + MAX_FUTURE:
            raise ValueError(REASONS["timestamp_out_of_range"])
        return value


VideoBatch = Annotated[list[VideoIn], Field(min_length=1, max_length=MAX_BATCH)]
VideosBody = Annotated[
    Annotated[VideoIn, Tag("one")] | Annotated[VideoBatch, Tag("many")],
    Discriminator(_one_or_many),
]
"""``POST /videos`` takes one video object or a list of them."""


class VideosAccepted(BaseModel):
    """How many uploads were stored and added to the catalogue."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 1}]})

    accepted: int = Field(description="videos added; searchable from the next request")


class VideosRemoved(BaseModel):
    """How many videos were taken off (were available until now)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"removed": 1}, {"removed": 0}]})

    removed: int = Field(description="1 when the video was available until now, 0 when it was removed already")


_ITEM: JsonDict = {"rank": 1, "video_id": "v-1001", "score": 0.61, "sources": ["two_tower", "cowatch"],
                   "retrieval_score": 0.83, "p_complete": 0.57, "probabilities": {"p_complete": 0.57},
                   "adjustments": ["fresh_boost:x1.07"]}  # fmt: skip


PROBABILITIES_DOC = ("calibrated probability of each action the ranker has a trained head for: p_complete "
                     "always; p_interact, p_like, p_dislike only when their heads are trained")


class RecommendationItem(BaseModel):
    """One recommended video with the scores and reasons that placed it."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ITEM]})

    rank: int = Field(description="1 for the first slot")
    video_id: str = Field(description="the video's id")
    score: float = Field(description="final score after re-ranking")
    sources: list[str] = Field(description="candidate generators that proposed the video")
    retrieval_score: float | None = Field(description="the two-tower's score (null: not nominated by it)")
    p_complete: float | None = Field(description="predicted probability of completing the video")
    probabilities: dict[str, float] = Field(default_factory=dict, description=PROBABILITIES_DOC)
    adjustments: list[str] = Field(description="re-ranking reasons, e.g. fresh_boost:x1.18")


class RemovedCandidate(BaseModel):
    """A candidate re-ranking left out of the slate, and why."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"video_id": "v-77", "reason": "creator_cap", "sources": ["creators"], "p_complete": 0.44,
         "probabilities": {"p_complete": 0.44}, "score": 0.41},
    ]})  # fmt: skip

    video_id: str = Field(description="the video's id")
    reason: str = Field(description="e.g. seen, disliked, unavailable, creator_cap, creator_fatigue, "
                        "slate_objective, below_cutoff")
    sources: list[str] = Field(description="candidate generators that proposed the video")
    p_complete: float | None = Field(description="predicted probability of completing the video")
    probabilities: dict[str, float] = Field(default_factory=dict, description=PROBABILITIES_DOC)
    score: float = Field(description="the ranker's score")


class RecommendationsResponse(BaseModel):
    """A user's slate (with ``debug``, the candidates left out too)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "42", "k": 1, "items": [_ITEM]}]})

    user_id: str = Field(description="the user asked for")
    k: int = Field(description="the slate size asked for (fewer items when fewer videos qualify)")
    items: list[RecommendationItem] = Field(description="the slate, best first")
    removed: list[RemovedCandidate] | None = Field(default=None, description="with debug=true only")


MAX_PAGE = 500
"""Most rows one page of a listing (videos, users, history) returns."""


_VIDEO: JsonDict = {"video_id": "v-1001", "title": "Live at the harbour", "creator_id": "c7",
                    "category": "music", "tags": ["live"], "language": "en", "duration_seconds": 240.0,
                    "uploaded_at": "2025-06-20T09:00:00Z", "available": True}  # fmt: skip


class VideoOut(BaseModel):
    """One video of the catalogue as it is now."""

    model_config = ConfigDict(json_schema_extra={"examples": [_VIDEO]})

    video_id: str = Field(description="the video's id")
    title: str | None = Field(description="its title, if it has one")
    creator_id: str = Field(description="who uploaded it")
    category: str = Field(description="its category")
    tags: list[str] = Field(description="its tags")
    language: str | None = Field(description="its language, if known")
    duration_seconds: float = Field(description="length in seconds")
    uploaded_at: datetime = Field(description="upload time (UTC)")
    available: bool = Field(description="false once the video was removed (it stays listed, never recommended)")


class VideosPage(BaseModel):
    """A page of the catalogue, or the videos asked for by id."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 2000, "offset": 0, "limit": 1, "items": [_VIDEO], "missing": []},
    ]})  # fmt: skip

    total: int = Field(description="videos in the catalogue, removed ones included")
    offset: int = Field(description="rows skipped")
    limit: int = Field(description="most rows asked for")
    items: list[VideoOut] = Field(description="the videos of the page (or the ones asked for by id)")
    missing: list[str] = Field(default_factory=list, description="ids asked for that the catalogue does not hold")


class HistoryItem(BaseModel):
    """One video a user acted on, and when (null: never)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"video_id": "v-1001", "title": "Live at the harbour", "creator_id": "c7", "category": "music",
         "available": True, "first_at": "2025-06-21T18:04:00Z", "last_at": "2025-06-24T20:30:00Z",
         "watched_at": "2025-06-21T18:04:00Z", "last_watched_at": "2025-06-24T20:28:00Z",
         "completed_at": "2025-06-21T18:04:00Z", "liked_at": "2025-06-21T18:09:00Z",
         "disliked_at": "2025-06-24T20:30:00Z"},  # liked at first, disliked on a later watch (the served
        # schema drops nulls from examples, so every field here has a value)
    ]})  # fmt: skip

    video_id: str = Field(description="the video's id")
    title: str | None = Field(description="its title (null: none, or not in the catalogue)")
    creator_id: str | None = Field(description="who uploaded it (null: not in the catalogue)")
    category: str | None = Field(description="its category (null: not in the catalogue)")
    available: bool | None = Field(description="false once removed (null: not in the catalogue)")
    first_at: datetime | None = Field(description="the user's first watch, like or dislike of it")
    last_at: datetime | None = Field(description="the latest of the times below")
    watched_at: datetime | None = Field(description="first watch")
    last_watched_at: datetime | None = Field(description="latest watch")
    completed_at: datetime | None = Field(description="first watch past the completion threshold")
    liked_at: datetime | None = Field(description="first like")
    disliked_at: datetime | None = Field(description="first dislike")


class History(BaseModel):
    """A user's latest activity, from the online store (the record a slate reads)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "new-user", "known": False, "total": 0,
                                                               "items": []}]})  # fmt: skip

    user_id: str = Field(description="the user asked for")
    known: bool = Field(description="whether the store holds anything about the user")
    total: int = Field(description="videos the user acted on, all of them")
    items: list[HistoryItem] = Field(description="the most recent activity first")


class UserOut(BaseModel):
    """One user of the model's users table."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "42", "profile": {"country": "NL",
                                                                                            "age_bucket": "25-34"}}]})

    user_id: str = Field(description="the user's id")
    profile: dict[str, str] = Field(description="the table's other columns, as text")


class UsersPage(BaseModel):
    """A page of the users table the model was trained with (later users are found by id)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"total": 943, "offset": 0, "limit": 1, "items": [{"user_id": "42", "profile": {"country": "NL"}}]},
    ]})  # fmt: skip

    total: int = Field(description="users in the table")
    offset: int = Field(description="rows skipped")
    limit: int = Field(description="most rows asked for")
    items: list[UserOut] = Field(description="the users of the page, in the table's order")


class Health(BaseModel):
    """Liveness answer."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "version": "0.1.0"}]})

    status: Literal["ok"] = Field(default="ok", description="always ok: the process answers")
    version: str = Field(description="the vidrec version serving")


class Readiness(BaseModel):
    """Readiness answer: each dependency's state."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "checks": {"store": "ok", "event_log": "ok"}, "model_version": "v20250622T000000000000"},
        {"status": "not ready", "checks": {"store": "unreachable: ConnectionError: ...", "event_log": "ok"},
         "model_version": "v20250622T000000000000"},
    ]})  # fmt: skip

    status: Literal["ready", "not ready"] = Field(description="ready (200) when every check is ok, else not ready "
                                                  "(503)")  # fmt: skip
    checks: dict[str, str] = Field(description="dependency -> 'ok' or what is wrong")
    model_version: str | None = Field(default=None, description="the model version being served")


class ReloadRequest(BaseModel):
    """Which version to serve: by name (to roll back, say); default: what ``LATEST`` names."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": "v20250622T000000000000"}]})

    version: str | None = Field(default=None, max_length=64, description="a version folder name, v<UTC time>")


class ReloadAnswer(BaseModel):
    """What a reload did."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"version": "v20250622T000000000000", "previous": "v20250615T000000000000", "changed": True, "keys": 2},
    ]})  # fmt: skip

    version: str = Field(description="the version served from now on")
    previous: str = Field(description="the version served before")
    changed: bool = Field(description="false when the version asked for was already being served")
    keys: int | None = Field(description="API keys read again from the key file (null: no key file)")


class Problem(BaseModel):
    """One thing wrong with a request: where, and what to do."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"field": "body[2].watch_seconds", "message": "a watch needs watch_seconds"},
    ]})  # fmt: skip

    field: str = Field(description="where: body.FIELD, body[i].FIELD for a batch, path.NAME, query.NAME")
    message: str = Field(description="what is wrong and what to do")


class ErrorResponse(BaseModel):
    """Body of every error answer (4xx and 5xx): a readable summary and the problems one by one."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"detail": "invalid request: path.video_id: video 'v-9' is not in the catalogue; check the id",
         "errors": [{"field": "path.video_id", "message": "video 'v-9' is not in the catalogue; check the id"}]},
        {"detail": "the API key is not valid; check it, or ask for a new one", "errors": []},
    ]})  # fmt: skip

    detail: str = Field(description="one readable line: what was wrong and what to do")
    errors: list[Problem] = Field(default=[], description="each problem with its field (empty for auth, limits "
                                  "and outages)")  # fmt: skip
