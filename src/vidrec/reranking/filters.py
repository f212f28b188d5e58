"""Hard rules of re-ranking: what a user must never be shown, whatever its score.

A candidate is removed when the user disliked it, already saw it (watched, liked or
disliked; unless the re-watch policy lets a completed video back), when the video is
unavailable or missing from the catalogue, or while its creator is in the user's
fatigue period after a dislike. These run as joins over all users at once, so their
cost does not grow with a Python loop.
"""

from __future__ import annotations

import polars as pl

from vidrec.reranking.base import REMOVED_REASON
from vidrec.reranking.history import FATIGUE, REWATCH

CREATOR = "__creator_id"
UPLOADED = "__uploaded_at"
AVAILABLE = "__available"
CATEGORY = "__category"
CATALOGUE_COLUMNS: tuple[str, ...] = (CREATOR, UPLOADED, AVAILABLE, CATEGORY)
"""Catalogue fields joined onto candidates under private names (no clash with inputs)."""


def _user_pairs(users: pl.DataFrame, column: str, flag: str) -> pl.DataFrame:
    """Distinct (user_id, video_id) pairs listed in a user-state list column, flagged True."""
    return (
        users.select("user_id", pl.col(column).alias("video_id"))
        .explode("video_id")
        .drop_nulls()
        .unique()
        .with_columns(pl.lit(True).alias(flag))
    )


def _category(videos: pl.DataFrame) -> pl.Expr:
    if "category" in videos.columns:
        return pl.col("category").cast(pl.String)
    return pl.lit(None, dtype=pl.String)


def join_catalogue(scored: pl.DataFrame, videos: pl.DataFrame) -> pl.DataFrame:
    """Add creator, upload time and availability of each candidate (null when unknown)."""
    wanted = scored.select(pl.col("video_id").unique())
    catalogue = (
        videos.join(wanted, on="video_id", how="semi")
        .unique(subset="video_id", keep="first", maintain_order=True)
        .select(
            "video_id",
            pl.col("creator_id").alias(CREATOR),
            pl.col("uploaded_at").alias(UPLOADED),
            pl.col("available").alias(AVAILABLE),
            _category(videos).alias(CATEGORY),
        )
    )
    return scored.join(catalogue, on="video_id", how="left", maintain_order="left")


def removal_reason(frame: pl.DataFrame, users: pl.DataFrame, rewatch: pl.DataFrame | None) -> pl.DataFrame:
    """Candidates (catalogue and :data:`FATIGUE` joined) with ``removed_reason`` (null when allowed).

    One reason per candidate, the most important first: ``disliked``, ``seen`` (unless
    ``rewatch`` lists the pair), ``unavailable`` (``available`` false, or the video is
    not in the catalogue), ``creator_fatigue`` (fatigue factor 0).
    """
    keys = ["user_id", "video_id"]
    disliked = _user_pairs(users, "disliked", "__disliked")
    seen = _user_pairs(users, "seen", "__seen")
    if rewatch is not None:
        seen = seen.join(rewatch, on=keys, how="anti")
    out = frame.join(disliked, on=keys, how="left", maintain_order="left").join(
        seen, on=keys, how="left", maintain_order="left"
    )
    reason = (
        pl.when(pl.col("__disliked").fill_null(False))
        .then(pl.lit("disliked"))
        .when(pl.col("__seen").fill_null(False))
        .then(pl.lit("seen"))
        .when(~pl.col(AVAILABLE).fill_null(False))
        .then(pl.lit("unavailable"))
        .when(pl.col(FATIGUE) <= 0.0)
        .then(pl.lit("creator_fatigue"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return out.with_columns(reason.alias(REMOVED_REASON)).drop("__disliked", "__seen")


def mark_rewatch(frame: pl.DataFrame, users: pl.DataFrame, rewatch: pl.DataFrame | None) -> pl.DataFrame:
    """Add :data:`REWATCH`: True for allowed candidates the user has seen (re-watch policy)."""
    seen = _user_pairs(users, "seen", REWATCH)
    out = frame.join(seen, on=["user_id", "video_id"], how="left", maintain_order="left")
    return out.with_columns(pl.col(REWATCH).fill_null(False))


def split_removed(tagged: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split tagged candidates into (allowed, removed); removed rows keep ``removed_reason``."""
    allowed = tagged.filter(pl.col(REMOVED_REASON).is_null()).drop(REMOVED_REASON)
    removed = tagged.filter(pl.col(REMOVED_REASON).is_not_null())
    return allowed, removed
