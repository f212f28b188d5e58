"""Judge a trained vidrec model stage by stage, beside the baselines, on one split."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.evaluation.metrics import NO_ITEM
from vidrec.evaluation.protocol import DEFAULT_KS, EvaluationData, evaluate_baselines, evaluate_recommendations
from vidrec.progress import bar
from vidrec.recommender import Recommender
from vidrec.result import Result

_USERS_PER_STEP = 256  # users per step of the progress bar (each step serves them in batches)
STAGE_NAMES = {"candidates": "vidrec candidates", "scored": "vidrec scored", "final": "vidrec final"}


@dataclass(frozen=True)
class StageRun:
    """One full pass per judged user (every stage's view) and the seconds per user it took.

    Kept so that a report can read the same pass the evaluation judged instead of running it again.
    """

    results: list[Result]  # one per judged user, in ``data.judged_users()`` order
    per_user: dict[str, float]  # "request" and each stage: seconds per user
    final_k: int


def run_stages(rec: Recommender, data: EvaluationData, final_k: int = 10) -> StageRun:
    """One pass over the stages for every judged user of ``data``, timed."""
    users = data.users.ids.gather(data.judged_users()).to_list()
    start = time.perf_counter()
    chunks = range(0, len(users), _USERS_PER_STEP)
    results = [r for s in bar(chunks, len(chunks), "vidrec pass", unit="step")
               for r in rec.results(users[s : s + _USERS_PER_STEP], k=final_k)]  # fmt: skip
    per_user = {"request": (time.perf_counter() - start) / max(len(users), 1)}
    for stage in ("candidates", "scoring", "reranking"):
        per_user[stage] = sum(r.times.get(stage, 0.0) for r in results) / max(len(users), 1)
    return StageRun(results, per_user, final_k)


def to_matrix(recs: pl.DataFrame, data: EvaluationData, depth: int) -> np.ndarray:
    """Ranked ``user_id, rank, video_id`` rows as an (n_users, depth) index matrix (-1 pads)."""
    out = np.full((len(data.users), depth), NO_ITEM, dtype=np.int64)
    ranked = recs.filter(pl.col("rank").is_not_null() & (pl.col("rank") <= depth))
    rows = data.users.to_index(ranked["user_id"])
    cols = data.videos.to_index(ranked["video_id"])
    keep = (rows >= 0) & (cols >= 0)
    out[rows[keep], ranked["rank"].to_numpy()[keep].astype(np.int64) - 1] = cols[keep]
    return out


def stage_matrix(rec: Recommender, run: StageRun, data: EvaluationData, stage: str, depth: int) -> np.ndarray:
    """One stage's top ``depth`` of every judged user as an (n_users, depth) index matrix."""
    recs = pl.concat([r.frame(rec.catalogue, stage, depth) for r in run.results], how="diagonal_relaxed")
    return to_matrix(recs, data, depth)


def evaluate_stages(
    rec: Recommender, data: EvaluationData, ks: Sequence[int] = DEFAULT_KS, final_k: int = 10,
    run: StageRun | None = None, recommendations: dict[str, np.ndarray] | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:  # fmt: skip
    """One metrics row per vidrec stage, and the time per user (one pass: ``request``, and each stage).

    One pass per user gives every stage's view (``run``, made here unless given). Candidate
    recall@ks is judged on the merged candidate list; NDCG, recall and precision at ``final_k``
    on each stage's top ``final_k``. Pass a dict as ``recommendations`` to receive each stage's
    judged index matrix, keyed by its name in the table.
    """
    run = run_stages(rec, data, final_k) if run is None else run
    depth = max(max(ks), final_k)
    rows = []
    for stage in bar(("candidates", "scored", "final"), 3, "judging stages", unit="stage"):
        matrix = stage_matrix(rec, run, data, stage, depth if stage == "candidates" else final_k)
        if matrix.shape[1] < depth:
            matrix = np.pad(matrix, ((0, 0), (0, depth - matrix.shape[1])), constant_values=NO_ITEM)
        if recommendations is not None:
            recommendations[STAGE_NAMES[stage]] = matrix
        row = evaluate_recommendations(data, matrix, STAGE_NAMES[stage], ks=ks, final_k=final_k)
        if stage != "candidates":  # a 10-item list says nothing about recall@50..200
            undefined = [pl.lit(None, dtype=pl.Float64).alias(f"cand_recall@{k}") for k in ks if k > final_k]
            row = row.with_columns(undefined)
        rows.append(row)
    return pl.concat(rows, how="vertical_relaxed"), run.per_user


def evaluate_all(
    rec: Recommender, data: EvaluationData, baselines: bool = True, ks: Sequence[int] = DEFAULT_KS,
    run: StageRun | None = None, recommendations: dict[str, np.ndarray] | None = None,
) -> tuple[pl.DataFrame, dict[str, float]]:  # fmt: skip
    """vidrec's stages and (optionally) the tuned baselines in one table (``recommendations``: as
    :func:`evaluate_stages`, the baselines' lists too)."""
    table, per_user = evaluate_stages(rec, data, ks, run=run, recommendations=recommendations)
    if baselines:
        base = evaluate_baselines(data, ks=ks, recommendations=recommendations)
        table = pl.concat([base, table], how="diagonal_relaxed")
    return table, per_user
