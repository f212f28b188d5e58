"""Merging the candidates of several generators into one list per user.

Round-robin by rank across generators (rank 1 of each, then rank 2 of each, ...), a video
counted once and kept with every source that found it and each source's score and rank, so
later stages can explain where a candidate came from.
"""

from __future__ import annotations

import polars as pl

DEFAULT_QUOTAS: dict[str, int] = {"cowatch": 105, "trending": 0}
"""Per-generator caps for a 300-candidate target (two-tower uncapped), chosen on ML-100K's
validation carve: co-watch 35% of the target; trending only fills lists left short."""


def merge_candidates(
    frames: list[pl.DataFrame],
    quotas: dict[str, int] | None = None,
    target: int = 200,
    retrieval_source: str = "two_tower",
) -> pl.DataFrame:
    """Merge generator outputs (``user_id, video_id, score, rank, source``) into ``target`` per user.

    A video takes the slot of its first nomination in round-robin order (ties of rank
    broken by the order of ``frames``). ``quotas`` cap how many of its top nominations a
    source contributes (``DEFAULT_QUOTAS`` suit ``target=300``); when the caps leave a user
    short of ``target``, the remaining slots go to the over-quota nominations in the same
    round-robin order. A video nominated by several sources keeps them all.

    Returns ``user_id, video_id, rank`` (merged, 1-based), ``sources`` (list, in frame
    order), ``retrieval_score`` (the ``retrieval_source`` score, null when it did not find
    the video) and ``score_<source>``, ``rank_<source>`` for every source.
    """
    if target < 1:
        raise ValueError(f"merge_candidates: target must be at least 1, got {target}")
    if quotas and min(quotas.values()) < 0:
        raise ValueError(f"merge_candidates: quotas must be non-negative, got {quotas}")
    parts = [f.select("user_id", "video_id", "score", "rank", "source") for f in frames if f.height]
    if not parts:
        return _empty(retrieval_source)
    allc = pl.concat(parts, how="vertical_relaxed")
    names = allc["source"].unique(maintain_order=True).to_list()
    allc = allc.with_columns(prio=pl.col("source").replace_strict(names, list(range(len(names)))))
    quota = pl.col("source").replace_strict(quotas or {}, default=target, return_dtype=pl.Int64)
    # A source's quota caps how deep into its own list the merge reads before the fill-up;
    # a video counts for every source whose capped prefix holds it, so a video that a capped
    # source ranks high never pushes out the same video found by an uncapped source.
    picked = (
        allc.with_columns(over=pl.int_range(1, pl.len() + 1).over("user_id", "source", order_by="rank") > quota)
        .sort("user_id", "over", "rank", "prio")
        .unique(["user_id", "video_id"], keep="first", maintain_order=True)
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user_id"))
        .filter(pl.col("rank") <= target)
        .select("user_id", "video_id", "rank")
    )
    sources = allc.sort("prio").group_by("user_id", "video_id", maintain_order=True).agg(
        sources=pl.col("source").unique(maintain_order=True)
    )
    out = picked.join(sources, on=["user_id", "video_id"], how="left")
    for name in names:
        per = allc.filter(pl.col("source") == name).unique(["user_id", "video_id"], keep="first")
        per = per.select("user_id", "video_id", pl.col("score").alias(f"score_{name}"), pl.col("rank").alias(f"rank_{name}"))
        out = out.join(per, on=["user_id", "video_id"], how="left")
    retrieval = f"score_{retrieval_source}"
    score = pl.col(retrieval) if retrieval in out.columns else pl.lit(None, dtype=pl.Float64)
    out = out.with_columns(retrieval_score=score.cast(pl.Float64))
    lead = ["user_id", "video_id", "rank", "sources", "retrieval_score"]
    return out.select(lead + [c for c in out.columns if c not in lead]).sort("user_id", "rank")


def _empty(retrieval_source: str) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "user_id": pl.String,
            "video_id": pl.String,
            "rank": pl.Int64,
            "sources": pl.List(pl.String),
            "retrieval_score": pl.Float64,
            f"score_{retrieval_source}": pl.Float64,
            f"rank_{retrieval_source}": pl.Int64,
        }
    )
