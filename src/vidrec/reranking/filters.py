"""Hard rules of re-ranking: what a user must never be shown, whatever its score.

A candidate is removed when the user disliked it, already saw it (watched, liked or
disliked) or when the video is unavailable or missing from the catalogue. These run
as joins over all users at once, so their cost does not grow with a Python loop.
"""

from __future__ import annotations

import polars as pl

from vidrec.reranking.base import REMOVED_REASON

CREATOR = "__creator_id"
UPLOADED = "__uploaded_at"
AVAILABLE = "__available"
CATALOGUE_COLUMNS: tuple[str, ...] = (CREATOR, UPLOADED, AVAILABLE)
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
        )
    )
    return scored.join(catalogue, on="video_id", how="left", maintain_order="left")


def removal_reason(
    scored: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame
) -> pl.DataFrame:
    """The candidates with catalogue fields and ``removed_reason`` (null when allowed).

    One reason per candidate, the most important first: ``disliked``, ``seen``,
    ``unavailable`` (``available`` false, or the video is not in the catalogue).
    """
    keys = ["user_id", "video_id"]
    disliked = _user_pairs(users, "disliked", "__disliked")
    seen = _user_pairs(users, "seen", "__seen")
    out = (
        join_catalogue(scored, videos)
        .join(disliked, on=keys, how="left", maintain_order="left")
        .join(seen, on=keys, how="left", maintain_order="left")
    )
    reason = (
        pl.when(pl.col("__disliked").fill_null(False))
        .then(pl.lit("disliked"))
        .when(pl.col("__seen").fill_null(False))
        .then(pl.lit("seen"))
        .when(~pl.col(AVAILABLE).fill_null(False))
        .then(pl.lit("unavailable"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return out.with_columns(reason.alias(REMOVED_REASON)).drop("__disliked", "__seen")


def apply_hard_filters(
    scored: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split candidates into (allowed, removed); the removed rows keep ``removed_reason``.

    The allowed frame carries the private catalogue columns :data:`CATALOGUE_COLUMNS`
    that later steps (freshness, creator cap) read.
    """
    tagged = removal_reason(scored, users, videos)
    allowed = tagged.filter(pl.col(REMOVED_REASON).is_null()).drop(REMOVED_REASON)
    removed = tagged.filter(pl.col(REMOVED_REASON).is_not_null())
    return allowed, removed
