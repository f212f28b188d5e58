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

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: ID
    video_id: ID
    event: Literal["watch", "like", "dislike", "impression"]
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

    accepted: int = Field(description="events stored now")
    duplicates: int = Field(default=0, description="events skipped: their event_id was stored before")
    applied: bool = Field(
        default=True, description="false (and status 202): stored durably, applied when the store answers again"
    )


class VideoIn(BaseModel):
    """One uploaded video: a row of the canonical videos table (ingestion's rules apply)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    video_id: ID
    creator_id: ID
    category: ID
    tags: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list, max_length=256)
    duration_seconds: float = Field(description="length in seconds, above 0")
    uploaded_at: datetime | None = Field(default=None, description="upload time (UTC); default: now")
    available: bool = True
    title: str | None = Field(default=None, max_length=MAX_TITLE)
    language: ID | None = None

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

    accepted: int


class VideosRemoved(BaseModel):
    """How many videos were taken off (were available until now)."""

    removed: int


PROBABILITIES_DOC = ("calibrated probability of each action the ranker has a trained head for: p_complete "
                     "always; p_interact, p_like, p_dislike only when their heads are trained")


class RecommendationItem(BaseModel):
    """One recommended video with the scores and reasons that placed it."""

    rank: int
    video_id: str
    score: float = Field(description="final score after re-ranking")
    sources: list[str] = Field(description="candidate generators that proposed the video")
    retrieval_score: float | None
    p_complete: float | None = Field(description="predicted probability of completing the video")
    probabilities: dict[str, float] = Field(default_factory=dict, description=PROBABILITIES_DOC)
    adjustments: list[str] = Field(description="re-ranking reasons, e.g. fresh_boost:x1.18")


class RemovedCandidate(BaseModel):
    """A candidate re-ranking left out of the slate, and why."""

    video_id: str
    reason: str = Field(description="e.g. seen, disliked, unavailable, creator_cap, creator_fatigue, "
                        "slate_objective, below_cutoff")
    sources: list[str]
    p_complete: float | None
    probabilities: dict[str, float] = Field(default_factory=dict, description=PROBABILITIES_DOC)
    score: float = Field(description="the ranker's score")


class RecommendationsResponse(BaseModel):
    """A user's slate (with ``debug``, the candidates left out too)."""

    user_id: str
    k: int
    items: list[RecommendationItem]
    removed: list[RemovedCandidate] | None = Field(default=None, description="with debug=true only")


MAX_PAGE = 500
"""Most rows one page of a listing (videos, users, history) returns."""


class VideoOut(BaseModel):
    """One video of the catalogue as it is now."""

    video_id: str
    title: str | None
    creator_id: str
    category: str
    tags: list[str]
    language: str | None
    duration_seconds: float
    uploaded_at: datetime
    available: bool = Field(description="false once the video was removed (it stays listed, never recommended)")


class VideosPage(BaseModel):
    """A page of the catalogue, or the videos asked for by id."""

    total: int = Field(description="videos in the catalogue, removed ones included")
    offset: int
    limit: int
    items: list[VideoOut]
    missing: list[str] = Field(default_factory=list, description="ids asked for that the catalogue does not hold")


class HistoryItem(BaseModel):
    """One video a user acted on, and when (null: never)."""

    video_id: str
    title: str | None
    creator_id: str | None
    category: str | None
    available: bool | None
    first_at: datetime | None = Field(description="the user's first watch, like or dislike of it")
    last_at: datetime | None = Field(description="the latest of the times below")
    watched_at: datetime | None = Field(description="first watch")
    last_watched_at: datetime | None
    completed_at: datetime | None = Field(description="first watch past the completion threshold")
    liked_at: datetime | None
    disliked_at: datetime | None


class History(BaseModel):
    """A user's latest activity, from the online store (the record a slate reads)."""

    user_id: str
    known: bool = Field(description="whether the store holds anything about the user")
    total: int = Field(description="videos the user acted on, all of them")
    items: list[HistoryItem] = Field(description="the most recent activity first")


class UserOut(BaseModel):
    """One user of the model's users table."""

    user_id: str
    profile: dict[str, str] = Field(description="the table's other columns, as text")


class UsersPage(BaseModel):
    """A page of the users table the model was trained with (later users are found by id)."""

    total: int
    offset: int
    limit: int
    items: list[UserOut]


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    """Readiness answer: each dependency's state."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="dependency -> 'ok' or what is wrong")
    model_version: str | None = Field(default=None, description="the model version being served")


class ReloadRequest(BaseModel):
    """Which version to serve: by name (to roll back, say); default: what ``LATEST`` names."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, max_length=64, description="a version folder name, v<UTC time>")


class ReloadAnswer(BaseModel):
    """What a reload did."""

    version: str = Field(description="the version served from now on")
    previous: str = Field(description="the version served before")
    changed: bool = Field(description="false when the version asked for was already being served")
    keys: int | None = Field(description="API keys read again from the key file (null: no key file)")


class Problem(BaseModel):
    """One thing wrong with a request: where, and what to do."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Body of every 4xx answer: a readable summary and the problems one by one."""

    detail: str
    errors: list[Problem] = []
