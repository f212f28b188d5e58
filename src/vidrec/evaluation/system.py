"""Judge a trained vidrec model stage by stage, beside the baselines, on one split."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import polars as pl

from vidrec.evaluation.metrics import NO_ITEM
from vidrec.evaluation.protocol import DEFAULT_KS, EvaluationData, evaluate_baselines, evaluate_recommendations
from vidrec.recommender import Recommender

STAGE_NAMES = {"candidates": "vidrec candidates", "scored": "vidrec scored", "final": "vidrec final"}


def to_matrix(recs: pl.DataFrame, data: EvaluationData, depth: int) -> np.ndarray:
    """Ranked ``user_id, rank, video_id`` rows as an (n_users, depth) index matrix (-1 pads)."""
    out = np.full((len(data.users), depth), NO_ITEM, dtype=np.int64)
    ranked = recs.filter(pl.col("rank").is_not_null() & (pl.col("rank") <= depth))
    rows = data.users.to_index(ranked["user_id"])
    cols = data.videos.to_index(ranked["video_id"])
    keep = (rows >= 0) & (cols >= 0)
    out[rows[keep], ranked["rank"].to_numpy()[keep].astype(np.int64) - 1] = cols[keep]
    return out


def evaluate_stages(
    rec: Recommender, data: EvaluationData, ks: Sequence[int] = DEFAULT_KS, final_k: int = 10
) -> tuple[pl.DataFrame, dict[str, float]]:
    """One metrics row per vidrec stage, and the time per user (one pass: ``request``, and each stage).

    One pass per user gives every stage's view. Candidate recall@ks is judged on the merged
    candidate list; NDCG, recall and precision at ``final_k`` on each stage's top ``final_k``.
    """
    users = data.users.ids.gather(data.judged_users()).to_list()
    depth = max(max(ks), final_k)
    start = time.perf_counter()
    results = rec.results(users, k=final_k)
    per_user = {"request": (time.perf_counter() - start) / max(len(users), 1)}
    for stage in ("candidates", "scoring", "reranking"):
        per_user[stage] = sum(r.times.get(stage, 0.0) for r in results) / max(len(users), 1)
    rows = []
    for stage in ("candidates", "scored", "final"):
        k = depth if stage == "candidates" else final_k
        recs = pl.concat([r.frame(rec.catalogue, stage, k) for r in results], how="diagonal_relaxed")
        matrix = to_matrix(recs, data, depth)
        row = evaluate_recommendations(data, matrix, STAGE_NAMES[stage], ks=ks, final_k=final_k)
        if stage != "candidates":  # a 10-item list says nothing about recall@50..200
            undefined = [pl.lit(None, dtype=pl.Float64).alias(f"cand_recall@{k}") for k in ks if k > final_k]
            row = row.with_columns(undefined)
        rows.append(row)
    return pl.concat(rows, how="vertical_relaxed"), per_user


def evaluate_all(
    rec: Recommender, data: EvaluationData, baselines: bool = True, ks: Sequence[int] = DEFAULT_KS
) -> tuple[pl.DataFrame, dict[str, float]]:
    """vidrec's stages and (optionally) the tuned baselines in one table."""
    table, per_user = evaluate_stages(rec, data, ks)
    if baselines:
        base = evaluate_baselines(data, ks=ks)
        table = pl.concat([base, table], how="diagonal_relaxed")
    return table, per_user
