"""What a batch of events changes in the online store, and how stored user values become features.

Both backends write the same :class:`Deltas` and read back the same raw values, so the
meaning of every feature lives here and in :mod:`vidrec.features.user_state` /
:mod:`vidrec.features.video_stats` (per-video counts are counted and derived by the
latter's code), never in a backend.

Everything the store keeps is *mergeable*: per (user, video, kind) the first time
(merged with ``min``), and counts (merged with ``+``). So a batch applied now gives
the same state as a rebuild from the whole log, whatever order batches arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from vidrec.data.schema import TIMESTAMP, with_derived
from vidrec.features.user_state import STATE_SCHEMA, completed_pairs
from vidrec.features.video_stats import COUNTS, count_aggs

KINDS: tuple[str, ...] = ("seen", "watched", "completed", "disliked")
"""Per-user video sets, each ordered by the first time the user entered it."""

CATEGORY_FIELDS = ("views", "completions")  # watches of the category's videos, completed ones among them
CREATOR_FIELDS = ("views", "dislikes")  # watches and dislikes of the creator's videos

CATEGORY_AFFINITY = pl.List(pl.Struct({"category": pl.String, "views": pl.Int64, "completions": pl.Int64}))
CREATOR_AFFINITY = pl.List(pl.Struct({"creator_id": pl.String, "views": pl.Int64, "dislikes": pl.Int64}))

USER_STATE_SCHEMA: dict[str, pl.DataType] = {
    **STATE_SCHEMA,
    "category_affinity": CATEGORY_AFFINITY,
    "creator_affinity": CREATOR_AFFINITY,
}
"""Columns of ``OnlineStore.get_user_state``: :data:`STATE_SCHEMA` plus the affinity counts."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Deltas:
    """The mergeable changes a batch of events makes (all times are epoch microseconds)."""

    firsts: pl.DataFrame  # user_id, kind, video_id, ts_us: first time per (user, kind, video)
    video_counts: pl.DataFrame  # video_id, *COUNTS (added)
    category: pl.DataFrame  # user_id, category, views, completions (added)
    creator: pl.DataFrame  # user_id, creator_id, views, dislikes (added)
    uploads: pl.DataFrame  # video_id, uploaded_us: catalogue entries the batch refers to
    last_event_us: int | None  # the latest event time (merged with max)


def to_us(col: str | pl.Expr) -> pl.Expr:
    """A UTC datetime column as integer epoch microseconds."""
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.cast(TIMESTAMP).dt.epoch("us")


def catalogue(videos: pl.DataFrame) -> pl.DataFrame:
    """``video_id, uploaded_us`` of a videos table (what the store keeps of the catalogue)."""
    return videos.select("video_id", to_us("uploaded_at").alias("uploaded_us"))


def check_videos(events: pl.DataFrame, videos: pl.DataFrame) -> None:
    """Refuse events whose video is not in ``videos``: its completion could not be computed."""
    unknown = events.select(pl.col("video_id").unique()).filter(~pl.col("video_id").is_in(videos["video_id"].implode()))
    if unknown.height:
        shown = ", ".join(unknown["video_id"].head(5).to_list())
        raise ValueError(
            f"{unknown.height} video id(s) in the events are not in the videos table (e.g. {shown}); "
            "pass the catalogue rows of every video the events refer to (validate the data first)"
        )


def compute_deltas(events: pl.DataFrame, videos: pl.DataFrame, threshold: float) -> Deltas:
    """Aggregate a batch of canonical events into :class:`Deltas` (columnar, no row loops)."""
    check_videos(events, videos)
    ev = with_derived(events, videos, threshold).join(
        videos.select("video_id", "category", "creator_id"), on="video_id", how="left"
    )
    e = pl.col("event")
    acted = ev.filter(e != "impression")
    completed = completed_pairs(events, videos, None, threshold).with_columns(kind=pl.lit("completed"))
    parts = [
        acted.group_by("user_id", "video_id").agg(ts=pl.col("ts").min()).with_columns(kind=pl.lit("seen")),
        acted.filter(e == "watch").group_by("user_id", "video_id").agg(ts=pl.col("ts").min())
        .with_columns(kind=pl.lit("watched")),
        completed,
        acted.filter(e == "dislike").group_by("user_id", "video_id").agg(ts=pl.col("ts").min())
        .with_columns(kind=pl.lit("disliked")),
    ]  # fmt: skip
    firsts = pl.concat([p.select("user_id", "kind", "video_id", to_us("ts").alias("ts_us")) for p in parts])
    video_counts = ev.group_by("video_id").agg(**count_aggs())
    watches = ev.filter(e == "watch")
    category = watches.group_by("user_id", "category").agg(
        views=pl.len().cast(pl.Int64), completions=pl.col("completed").sum().cast(pl.Int64)
    )
    creator = ev.filter(e.is_in(["watch", "dislike"])).group_by("user_id", "creator_id").agg(
        views=(e == "watch").sum().cast(pl.Int64), dislikes=(e == "dislike").sum().cast(pl.Int64)
    )
    used = videos.filter(pl.col("video_id").is_in(events["video_id"].unique().implode()))
    last = events.select(to_us("ts").max()).item() if events.height else None
    return Deltas(firsts, video_counts, category, creator, catalogue(used), last)


def assemble_user_state(
    user_ids: list[str], firsts: pl.DataFrame, category: pl.DataFrame, creator: pl.DataFrame, history_len: int
) -> pl.DataFrame:
    """One row per requested user (in order) from the raw rows a backend read.

    ``firsts`` is ``user_id, kind, video_id, ts_us``; lists are ordered by (first time,
    video id), most recent last, and the two ``recent_*`` lists keep the last ``history_len``.
    """
    ids = pl.DataFrame({"user_id": pl.Series(user_ids, dtype=pl.String)}).unique(maintain_order=True)
    ordered = firsts.sort("user_id", "kind", "ts_us", "video_id")
    lists = ordered.group_by("user_id", "kind", maintain_order=True).agg(pl.col("video_id"))
    wide = lists.pivot(on="kind", index="user_id", values="video_id") if lists.height else ids.head(0)
    out = ids.join(wide, on="user_id", how="left")
    names = {"seen": "seen", "disliked": "disliked", "watched": "recent_watched", "completed": "recent_completed"}
    empty = pl.lit([], dtype=pl.List(pl.String()))
    for kind, name in names.items():
        col = pl.col(kind) if kind in out.columns else pl.lit(None, dtype=pl.List(pl.String()))
        if name.startswith("recent_"):
            col = col.list.tail(history_len)
        out = out.with_columns(col.fill_null(empty).alias(name))
    cat = _struct_lists(category, "category", CATEGORY_FIELDS, "category_affinity")
    cre = _struct_lists(creator, "creator_id", CREATOR_FIELDS, "creator_affinity")
    out = out.join(cat, on="user_id", how="left").join(cre, on="user_id", how="left")
    fills = [pl.col(c).fill_null(pl.lit([], dtype=USER_STATE_SCHEMA[c])) for c in ("category_affinity", "creator_affinity")]
    return out.with_columns(fills).select(pl.col(c).cast(t) for c, t in USER_STATE_SCHEMA.items())


def _struct_lists(df: pl.DataFrame, key: str, fields: tuple[str, ...], name: str) -> pl.DataFrame:
    """``user_id, name``: one list of ``{key, *fields}`` structs per user, sorted by key."""
    return (
        df.sort("user_id", key)
        .group_by("user_id", maintain_order=True)
        .agg(pl.struct(key, *fields).alias(name))
    )


def from_us(us: int | None) -> datetime | None:
    """Epoch microseconds as a UTC datetime."""
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def as_matrix(ids: list[str], vectors: np.ndarray) -> np.ndarray:
    """Validate ``vectors`` as a C-contiguous float32 ``(len(ids), d)`` matrix."""
    mat = np.ascontiguousarray(vectors, dtype=np.float32)
    if mat.ndim != 2 or mat.shape[0] != len(ids):
        raise ValueError(f"expected a ({len(ids)}, d) matrix of embeddings, got shape {mat.shape}")
    if len(set(ids)) != len(ids):
        raise ValueError("video ids of the embeddings must be distinct")
    if not np.isfinite(mat).all():
        raise ValueError("embeddings must be finite (found NaN or inf)")
    return mat


def place(ids: list[str], found: list[str], stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the ``stored`` rows of the ``found`` ids into request order; missing rows stay zero."""
    out = np.zeros((len(ids), stored.shape[1]), dtype=np.float32)  # (n, d)
    mask = np.zeros(len(ids), dtype=bool)
    if found:
        req = pl.DataFrame({"video_id": pl.Series(ids, dtype=pl.String)}).with_row_index("pos")
        got = pl.DataFrame({"video_id": pl.Series(found, dtype=pl.String)}).with_row_index("src")
        pairs = req.join(got, on="video_id", how="inner")
        pos, src = pairs["pos"].to_numpy(), pairs["src"].to_numpy()
        out[pos] = stored[src]
        mask[pos] = True
    return out, mask
