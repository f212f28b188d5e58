"""A small, honest stand-in for the orchestrator, implementing RecommenderLike."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl


class CatalogueRecommender:
    """Ranks a fixed catalogue by fixed scores, hiding what each user watched, liked or
    disliked in the events it observed (so a dislike is honoured at once)."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.hidden: dict[str, set[str]] = {}
        self.observed: list[pl.DataFrame] = []

    def recommend(self, user_id: str, k: int = 10, now: datetime | None = None) -> pl.DataFrame:
        hidden = self.hidden.get(user_id, set())
        ranked = sorted((v for v in self.scores if v not in hidden), key=lambda v: (-self.scores[v], v))[:k]
        return pl.DataFrame(
            {
                "rank": list(range(1, len(ranked) + 1)),
                "video_id": ranked,
                "final_score": [self.scores[v] for v in ranked],
                "sources": [["popular"] for _ in ranked],
                "retrieval_score": [None for _ in ranked],
                "p_complete": [0.5 for _ in ranked],
                "adjustments": [[] for _ in ranked],
            },
            schema_overrides={
                "video_id": pl.String,
                "final_score": pl.Float64,
                "sources": pl.List(pl.String),
                "retrieval_score": pl.Float64,
                "p_complete": pl.Float64,
                "adjustments": pl.List(pl.String),
            },
        )

    def observe(self, events: pl.DataFrame) -> None:
        self.observed.append(events)
        acted = events.filter(pl.col("event") != "impression")
        for user, video in acted.select("user_id", "video_id").iter_rows():
            self.hidden.setdefault(user, set()).add(video)

    def known_video(self, video_id: str) -> bool:
        return video_id in self.scores

    @property
    def now(self) -> datetime:
        return datetime(2025, 6, 1, tzinfo=timezone.utc)

    def add_videos(self, videos: pl.DataFrame, strict: bool = False) -> pl.DataFrame:
        for v in videos["video_id"].to_list():
            self.scores[v] = 0.0
        return pl.DataFrame()

    def remove_videos(self, video_ids: list[str]) -> int:
        gone = [v for v in video_ids if self.scores.pop(v, None) is not None]
        return len(gone)
