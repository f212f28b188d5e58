"""A small, honest stand-in for the orchestrator, implementing RecommenderLike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from vidrec.errors import DataError
from vidrec.features.store import EventLog
from vidrec.recommender import Observed


class CatalogueRecommender:
    """Ranks a fixed catalogue by fixed scores, hiding what each user watched, liked or
    disliked in the events it observed (so a dislike is honoured at once). Like the real
    one it writes what it is told to an event log first."""

    def __init__(self, scores: dict[str, float], log: EventLog | None = None) -> None:
        self.scores = scores
        self.log = log
        self.hidden: dict[str, set[str]] = {}
        self.observed: list[pl.DataFrame] = []

    def slate(self, user_id: str, k: int = 10) -> list[dict[str, Any]]:
        hidden = self.hidden.get(user_id, set())
        ranked = sorted((v for v in self.scores if v not in hidden), key=lambda v: (-self.scores[v], v))[:k]
        return [{"rank": i, "video_id": v, "score": self.scores[v], "sources": ["popular"], "retrieval_score": None,
                 "p_complete": 0.5, "probabilities": {"p_complete": 0.5}, "adjustments": []}
                for i, v in enumerate(ranked, 1)]  # fmt: skip

    def slates(self, asks: list[tuple[str, int]]) -> list[list[dict[str, Any]]]:
        return [self.slate(user, k) for user, k in asks]

    def explain(self, user_id: str, k: int = 10) -> dict[str, list[dict[str, Any]]]:
        hidden = sorted(v for v in self.hidden.get(user_id, set()) if v in self.scores)
        removed = [{"video_id": v, "reason": "seen", "sources": ["popular"], "p_complete": 0.5,
                    "probabilities": {"p_complete": 0.5}, "score": self.scores[v]} for v in hidden]  # fmt: skip
        return {"items": self.slate(user_id, k), "removed": removed}

    def observe(self, events: pl.DataFrame) -> Observed:
        if self.log is not None:
            self.log.append(events)
        self.observed.append(events)
        acted = events.filter(pl.col("event") != "impression")
        for user, video in acted.select("user_id", "video_id").iter_rows():
            self.hidden.setdefault(user, set()).add(video)
        return Observed(events.height, 0, True)

    def known_video(self, video_id: str) -> bool:
        return video_id in self.scores

    @property
    def now(self) -> datetime:
        return datetime(2025, 6, 1, tzinfo=UTC)

    def add_videos(self, videos: pl.DataFrame, strict: bool = False) -> pl.DataFrame:
        if self.log is not None:
            try:
                self.log.append_videos(videos)
            except ValueError as exc:
                raise DataError(str(exc), "ids are never reused") from None
        for v in videos["video_id"].to_list():
            self.scores[v] = 0.0
        return pl.DataFrame()

    def remove_videos(self, video_ids: list[str]) -> int:
        gone = [v for v in video_ids if self.scores.pop(v, None) is not None]
        return len(gone)

    def ready(self) -> dict[str, str]:
        return {"store": "ok"}
