"""Builders of tiny scored / users / videos frames for the re-ranking tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)
LISTS = ("recent_completed", "recent_watched", "seen", "disliked")


def videos_frame(rows: list[tuple[str, str, float, bool]]) -> pl.DataFrame:
    """(video_id, creator_id, age_days, available) -> a canonical videos table."""
    return pl.DataFrame(
        {
            "video_id": [r[0] for r in rows],
            "creator_id": [r[1] for r in rows],
            "category": ["c"] * len(rows),
            "tags": [[] for _ in rows],
            "duration_seconds": [60.0] * len(rows),
            "uploaded_at": [NOW - timedelta(days=r[2]) for r in rows],
            "available": [r[3] for r in rows],
        },
        schema_overrides={"tags": pl.List(pl.String), "uploaded_at": pl.Datetime("us", "UTC")},
    )


def users_frame(state: dict[str, tuple[list[str], list[str]]]) -> pl.DataFrame:
    """user_id -> (seen, disliked) as a user-state frame."""
    ids = list(state)
    return pl.DataFrame(
        {
            "user_id": ids,
            "recent_completed": [[] for _ in ids],
            "recent_watched": [[] for _ in ids],
            "seen": [state[u][0] for u in ids],
            "disliked": [state[u][1] for u in ids],
        },
        schema={"user_id": pl.String, **{c: pl.List(pl.String) for c in LISTS}},
    )


def scored_frame(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    """(user_id, video_id, score) -> a scored candidate frame with the usual extras."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "video_id": [r[1] for r in rows],
            "sources": [["popular"] for _ in rows],
            "retrieval_score": [None for _ in rows],
            "p_complete": [0.5 for _ in rows],
            "score": [float(r[2]) for r in rows],
        },
        schema_overrides={
            "user_id": pl.String,
            "video_id": pl.String,
            "sources": pl.List(pl.String),
            "retrieval_score": pl.Float64,
            "p_complete": pl.Float64,
        },
    )


def old(n: int, creator: str = "c", prefix: str = "v") -> list[tuple[str, str, float, bool]]:
    """``n`` available videos so old that freshness does not touch them."""
    return [(f"{prefix}{i}", creator, 10_000.0, True) for i in range(n)]
