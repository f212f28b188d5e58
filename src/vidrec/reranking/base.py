"""Stage 3's interface: turn scored candidates into the slate each user sees.

Re-ranking applies rules a model cannot be trusted with (never show a disliked,
already-seen or unavailable video) and preferences that act on the slate as a whole
(freshness, variety of creators). Every item carries the reasons it moved.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime

import numpy as np
import polars as pl

SCORED_REQUIRED: tuple[str, ...] = ("user_id", "video_id", "score")
"""Columns a scored frame must have; sources, retrieval_score, p_complete etc. pass through."""
USERS_REQUIRED: tuple[str, ...] = ("user_id", "seen", "disliked")
VIDEOS_REQUIRED: tuple[str, ...] = ("video_id", "creator_id", "uploaded_at", "available")
RESERVED: tuple[str, ...] = ("rank", "final_score", "removed_reason")
"""Columns the re-ranker writes; an input carrying them is refused rather than overwritten."""

ADJUSTMENTS = "adjustments"
REMOVED_REASON = "removed_reason"
REMOVED_REASONS: tuple[str, ...] = (
    "disliked",
    "seen",
    "unavailable",
    "creator_fatigue",
    "creator_cap",
    "slate_objective",
    "below_cutoff",
)
"""Why a candidate is not in the slate (debug output), most important first."""


class ReRanker(ABC):
    """Turns scored candidates into ranked slates of at most ``k`` videos per user."""

    @abstractmethod
    def rerank(
        self,
        scored: pl.DataFrame,
        users: pl.DataFrame,
        videos: pl.DataFrame,
        now: datetime,
        k: int,
        debug: bool = False,
        events: pl.DataFrame | None = None,
        video_vectors: Callable[[pl.Series], np.ndarray] | None = None,
    ) -> pl.DataFrame:
        """Return the top ``k`` videos per user.

        Args:
            scored: one row per (user_id, video_id) with ``score`` and any other columns
                (``sources``, ``retrieval_score``, ``p_complete``...), all passed through.
            users: user state, one row per user (``user_id, seen, disliked``...); a user
                missing here is treated as having no history.
            videos: the catalogue (``video_id, creator_id, uploaded_at, available``...).
            now: the request time (timezone-aware, UTC).
            k: slate size per user.
            debug: also return the candidates left out, with ``rank`` null and a
                ``removed_reason`` (one of :data:`REMOVED_REASONS`).
            events: the platform's past events (``user_id, video_id, ts, event,
                watch_seconds``; rows at or after ``now`` are ignored). Gives dislike times
                (creator fatigue), completed watches (re-watch policy) and creator watch
                counts (small creators). Without it, dislike times come from a users
                column ``disliked_at`` if present, re-watch stays off and only new
                creators count as protected.
            video_vectors: video ids -> (n, d) embeddings for the diversity similarity;
                without it, similarity is category equality.

        Returns:
            ``user_id, rank (1-based), video_id, final_score``, the input columns, and
            ``adjustments`` (list of reason codes such as ``"fresh_boost:x1.18"``),
            sorted by user and rank. With ``debug`` also ``removed_reason`` (null for
            slate rows) and the removed rows after each user's slate.
        """


def check_inputs(
    scored: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame, now: datetime, k: int
) -> None:
    """Refuse inputs the re-ranker cannot handle, saying which column or value is wrong."""
    for name, frame, needed in (
        ("scored", scored, SCORED_REQUIRED),
        ("users", users, USERS_REQUIRED),
        ("videos", videos, VIDEOS_REQUIRED),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(
                f"the {name} frame has no column {', '.join(map(repr, missing))} "
                f"(it has {', '.join(frame.columns) or 'none'})"
            )
    clash = [c for c in RESERVED if c in scored.columns]
    if clash:
        raise ValueError(
            f"the scored frame already has {', '.join(map(repr, clash))}, which the re-ranker "
            "writes; drop or rename them first"
        )
    if ADJUSTMENTS in scored.columns and scored.schema[ADJUSTMENTS] != pl.List(pl.String):
        raise ValueError("the scored frame's 'adjustments' column must be a list of strings")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC), got a naive datetime")
    bad = scored.select((pl.col("score").is_null() | pl.col("score").is_nan()).sum()).item()
    if bad:
        raise ValueError(
            f"{bad} candidate(s) have a null or NaN score; the scoring stage must give every "
            "candidate a number"
        )
    if scored.select(pl.struct("user_id", "video_id").is_duplicated().any()).item():
        raise ValueError(
            "the scored frame has the same (user_id, video_id) more than once; "
            "merge duplicate candidates before re-ranking"
        )

