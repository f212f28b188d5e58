"""What a person browsing the service reads: a user's history, pages of the catalogue and of the users table.

Each read costs what it returns. A history is the user's own record in the online store (the
round trip a slate makes), with the catalogue rows of the videos it shows; a page is a slice of
the in-memory catalogue or users table. Nothing here reads the event log or scans the catalogue.
Answers are plain dicts (they cross the pipe to worker processes as they are).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import polars as pl

from vidrec.catalogue import Catalogue
from vidrec.data.schema import TIMESTAMP
from vidrec.features.store.base import UserRecord

HISTORY_TIMES: dict[str, str] = {
    "watched": "watched_at",  # first watch
    "last_watched": "last_watched_at",
    "completed": "completed_at",  # first watch that reached the completion threshold
    "liked": "liked_at",
    "disliked": "disliked_at",
}
"""Store list -> the history column holding its time (null when the user never did it)."""
VIDEO_FIELDS = ("video_id", "title", "creator_id", "category", "tags", "language", "duration_seconds",
                "uploaded_at", "available")  # fmt: skip
Order = Literal["newest", "oldest"]


def history(record: UserRecord, catalogue: Catalogue, limit: int) -> dict[str, Any]:
    """The videos the user watched, liked or disliked, the most recent activity first.

    One row per video: when the user first and last watched it, first completed, liked and
    disliked it (null when never), ``last_at`` (the latest of those) and the video's title,
    creator, category and availability. ``total`` counts every video in the record.
    """
    kinds = ["seen", *HISTORY_TIMES]
    items = [(kind, v, t) for kind in kinds for v, t in record.lists.get(kind, [])]
    if not items:
        return {"user_id": record.user_id, "known": record.known, "total": 0, "items": []}
    long = pl.DataFrame(items, schema={"kind": pl.String, "video_id": pl.String, "ts_us": pl.Int64}, orient="row")
    wide = long.pivot(on="kind", index="video_id", values="ts_us", aggregate_function="first")
    times = [pl.col(k).alias(HISTORY_TIMES[k]) if k in wide.columns else pl.lit(None, pl.Int64).alias(HISTORY_TIMES[k])
             for k in HISTORY_TIMES]  # fmt: skip
    first = pl.col("seen") if "seen" in wide.columns else pl.lit(None, pl.Int64)
    rows = wide.select("video_id", first.alias("first_at"), *times).with_columns(
        last_at=pl.max_horizontal("first_at", *HISTORY_TIMES.values())
    )
    shown = rows.sort(["last_at", "video_id"], descending=[True, False], nulls_last=True).head(limit)
    as_time = [pl.col(c).cast(TIMESTAMP) for c in ("first_at", "last_at", *HISTORY_TIMES.values())]
    shown = shown.with_columns(as_time)
    meta = videos_at(catalogue, catalogue.rows(shown["video_id"].to_list()))
    joined = shown.join(meta.select("video_id", "title", "creator_id", "category", "available"), on="video_id",
                        how="left", maintain_order="left")  # fmt: skip
    return {"user_id": record.user_id, "known": record.known, "total": rows.height, "items": joined.to_dicts()}


def videos_at(catalogue: Catalogue, rows: np.ndarray) -> pl.DataFrame:
    """The videos at catalogue ``rows`` (in that order, rows < 0 left out), availability current."""
    rows = np.asarray(rows, dtype=np.int64)
    return catalogue.videos_at(rows[rows >= 0]).select(VIDEO_FIELDS)


def videos_page(catalogue: Catalogue, offset: int, limit: int, order: Order = "newest") -> dict[str, Any]:
    """``limit`` videos from ``offset`` in the order they joined the catalogue (``newest``: the
    latest upload first), removed ones included and marked ``available: false``."""
    n = len(catalogue)
    if order == "newest":
        rows = np.arange(n - 1 - offset, max(n - 1 - offset - limit, -1), -1, dtype=np.int64)
    else:
        rows = np.arange(offset, min(offset + limit, n), dtype=np.int64)
    return {"total": n, "offset": offset, "limit": limit, "items": videos_at(catalogue, rows).to_dicts(),
            "missing": []}  # fmt: skip


def videos_by_id(catalogue: Catalogue, video_ids: list[str]) -> dict[str, Any]:
    """The videos named (in the order asked, repeats once); ``missing`` lists the ids the catalogue lacks."""
    ids = list(dict.fromkeys(video_ids))
    rows = catalogue.rows(ids)
    missing = [v for v, r in zip(ids, rows.tolist()) if r < 0]
    return {"total": len(catalogue), "offset": 0, "limit": len(ids), "items": videos_at(catalogue, rows).to_dicts(),
            "missing": missing}  # fmt: skip


def users_page(users: pl.DataFrame, offset: int, limit: int) -> dict[str, Any]:
    """``limit`` users of the model's users table from ``offset``, each with its profile as text
    (users first seen in events since training are not in the table; they are found by id)."""
    page = users.slice(offset, limit)
    extra = [c for c, t in page.schema.items() if c != "user_id" and not t.is_nested()]
    profiles = page.select(pl.col(extra).cast(pl.String)).to_dicts() if extra else [{}] * page.height
    items = [{"user_id": u, "profile": {k: v for k, v in p.items() if v is not None}}
             for u, p in zip(page["user_id"].to_list(), profiles)]  # fmt: skip
    return {"total": users.height, "offset": offset, "limit": limit, "items": items}
