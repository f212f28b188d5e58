"""Frame views of a trained :class:`~vidrec.recommender.Recommender` for the offline benchmarks.

The serving path answers one request at a time (:meth:`Recommender.run_many` returns a
:class:`~vidrec.result.Result` per user); the benchmarks that judge many users at once
(``oracle_breakdown.py``, ``ranker_refit.py``, ``reranking.py``) read the stages' outputs as
frames, as the pipeline's frame API used to return them, and re-rank them with the re-ranker's
frame adapter (:meth:`DefaultReRanker.rerank`, given the training events as the users' history);
``scoring.py`` refits rankers on the training events.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from vidrec.data.dataset import read_table
from vidrec.recommender import Recommender
from vidrec.versions import resolve_version


def stage_frames(rec: Recommender, users: list[str], batch: int = 32) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stage 1 and 2 of ``users`` as the pipeline serves them, from one pass up to scoring.

    Returns the merged candidates (``user_id, video_id, rank``, ``sources``,
    ``retrieval_score``, ``score_<source>``, ``rank_<source>``: the columns of
    ``merge_candidates``) and the same rows scored (``rank`` renamed ``candidate_rank``, plus
    the ranker's probabilities and ``score``), both in candidate order per user.
    """
    cands, scored = [], []
    for start in range(0, len(users), batch):
        for r in rec.run_many([(u, 10) for u in users[start : start + batch]], until="scored"):
            n = len(r.candidates)
            cands.append(r.frame(rec.catalogue, "candidates", k=n).drop("score", "source"))
            scored.append(r.frame(rec.catalogue, "scored", k=n).drop("rank", "source"))
    c = pl.concat(cands, how="diagonal_relaxed").sort("user_id", "rank", maintain_order=True)
    s = pl.concat(scored, how="diagonal_relaxed").sort("user_id", "candidate_rank", maintain_order=True)
    return c, s


def video_vectors(rec: Recommender) -> Callable[[pl.Series], np.ndarray] | None:
    """The retrieval embeddings the pipeline gives stage 3 (diversity), by video id (None without a two-tower)."""
    by_row = rec.pipeline.video_vectors()
    if by_row is None:
        return None
    catalogue = rec.catalogue

    def vectors(video_ids: pl.Series) -> np.ndarray:
        rows = catalogue.rows_of(video_ids)
        if (rows < 0).any():
            raise KeyError("video ids outside the catalogue")
        return np.asarray(by_row(rows))

    return vectors


def training_events(rec: Recommender) -> pl.DataFrame:
    """The events ``rec`` was trained on: held after ``train``, else read from its version folder."""
    if rec.training_events is not None:
        return rec.training_events
    if rec.path is None:
        raise ValueError("this Recommender was neither trained here nor loaded: no training events")
    return read_table(resolve_version(rec.path) / "data" / "events.parquet", "events")
