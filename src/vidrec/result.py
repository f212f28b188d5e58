"""What one pass over the stages returns: candidates, their scores, the slate and what was left out.

Every view of a request -- the merged candidates, the scored list, the final slate with its
removed candidates and their reasons -- is read off one :class:`Result`; nothing is rerun.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from vidrec.candidates.merge import Candidates
from vidrec.catalogue import Catalogue
from vidrec.request import Request
from vidrec.reranking.select import Slate
from vidrec.scoring.value import PROBABILITY_COLUMNS

PROBABILITIES = (*PROBABILITY_COLUMNS.values(), "p_raw")
"""The probability columns a scored view may carry, in order; a result carries those its ranker
reports (the trained heads' and ``p_raw``), never a constant for a head that was not trained."""
OUTPUT_LEAD = ["user_id", "rank", "video_id", "score", "source"]


@dataclass
class Result:
    """One request's pass: ``scored`` and ``slate`` are None when the pass stopped earlier."""

    request: Request
    candidates: Candidates
    scored: dict[str, np.ndarray] | None = None  # the ranker's PROBABILITIES and ``score``, per candidate
    slate: Slate | None = None
    times: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def frame(self, catalogue: Catalogue, stage: str = "final", k: int | None = None,
              debug: bool = False) -> pl.DataFrame:  # fmt: skip
        """The ``stage`` view as rows ``user_id, rank, video_id, score, source`` plus every stage's columns.

        ``candidates``: the merged list (``score`` the retrieval score, else the first source's);
        ``scored``: ordered by the ranker's score; ``final``: the slate (``score`` the final
        score) and, with ``debug``, the candidates left out with a ``removed_reason``.
        """
        k = self.request.k if k is None else k
        base = self._candidate_columns(catalogue)
        if stage == "candidates":
            rank = np.arange(1, len(self.candidates) + 1)
            return _lead(base.with_columns(rank=pl.Series(rank, dtype=pl.Int64),
                                           score=_first_score(base)).filter(pl.col("rank") <= k))  # fmt: skip
        if self.scored is None:
            raise ValueError("this result stopped before scoring")
        scored = base.with_columns(
            *(pl.Series(c, self.scored[c], dtype=pl.Float64) for c in self.probability_columns(with_raw=True)),
            candidate_rank=pl.Series(np.arange(1, len(self.candidates) + 1), dtype=pl.Int64),
            score=pl.Series(self.scored["score"], dtype=pl.Float64),
        )
        if stage == "scored":
            order = np.argsort(-self.scored["score"], kind="stable")[:k]
            return _lead(scored[order].with_columns(rank=pl.Series(np.arange(1, len(order) + 1), dtype=pl.Int64)))
        if stage != "final":
            raise ValueError(f"stage must be candidates, scored or final, got {stage!r}")
        if self.slate is None:
            raise ValueError("this result stopped before re-ranking")
        slate = self.slate
        rank = np.zeros(len(self.candidates), dtype=np.int64)
        rank[slate.order] = np.arange(1, len(slate.order) + 1)
        order = slate.order
        if debug:
            removed = slate.removed()
            worst = np.nan_to_num(slate.final_score[removed], nan=-np.inf)
            order = np.concatenate([order, removed[np.lexsort((removed, -worst))]])
        final = (
            scored[order]
            .with_columns(
                rank=pl.Series(rank[order], dtype=pl.Int64).replace(0, None),
                final_score=pl.Series(slate.final_score[order], dtype=pl.Float64).fill_nan(None),
                adjustments=pl.Series([slate.codes(i) for i in order.tolist()], dtype=pl.List(pl.String)),
            )
            .with_columns(score=pl.col("final_score"))
        )
        if debug:
            final = final.with_columns(removed_reason=pl.Series([slate.reasons[i] for i in order.tolist()],
                                                                dtype=pl.String))  # fmt: skip
        return _lead(final)

    def probability_columns(self, with_raw: bool = False) -> list[str]:
        """The PROBABILITIES this result's ranker reported (``p_raw`` only ``with_raw``)."""
        scored = self.scored or {}
        return [c for c in PROBABILITIES if c in scored and (with_raw or c != "p_raw")]

    def _candidate_columns(self, catalogue: Catalogue) -> pl.DataFrame:
        c = self.candidates
        sources = c.source_lists()
        cols: dict[str, Any] = {
            "user_id": pl.Series([self.request.user_id] * len(c), dtype=pl.String),
            "video_id": pl.Series(catalogue.ids_of(c.rows), dtype=pl.String),
            "source": pl.Series(["+".join(s) for s in sources], dtype=pl.String),
            "sources": pl.Series(sources, dtype=pl.List(pl.String)),
            "retrieval_score": pl.Series(c.retrieval_score, dtype=pl.Float64).fill_nan(None),
        }
        for j, name in enumerate(c.sources):
            cols[f"score_{name}"] = pl.Series(c.scores[:, j], dtype=pl.Float64).fill_nan(None)
            cols[f"rank_{name}"] = pl.Series(c.ranks[:, j], dtype=pl.Int64).replace(0, None)
        return pl.DataFrame(cols)

    def items(self, catalogue: Catalogue) -> list[dict[str, Any]]:
        """The slate as plain dicts (the HTTP response): rank, video_id, score, sources,
        retrieval_score, p_complete, probabilities (each trained head's), adjustments."""
        if self.slate is None or self.scored is None:
            raise ValueError("this result stopped before re-ranking")
        c, slate = self.candidates, self.slate
        order = slate.order.tolist()
        at = slate.order
        ids, names = catalogue.ids, c.sources
        columns = zip(c.rows[at].tolist(), slate.final_score[at].tolist(), (c.ranks[at] > 0).tolist(),
                      c.retrieval_score[at].tolist(), self._probabilities(at), slate.codes_of(order))
        return [{
            "rank": rank, "video_id": ids[row], "score": final, "sources": [s for s, h in zip(names, hit) if h],
            "retrieval_score": None if r != r else r, "p_complete": p.get("p_complete"), "probabilities": p,
            "adjustments": codes,  # r != r: NaN
        } for rank, (row, final, hit, r, p, codes) in enumerate(columns, 1)]  # fmt: skip

    def _probabilities(self, at: np.ndarray) -> list[dict[str, float]]:
        """Each trained head's probability of the candidates at ``at``, one dict per candidate."""
        assert self.scored is not None
        names = self.probability_columns()
        values = [self.scored[name][at].tolist() for name in names]
        return [dict(zip(names, row)) for row in zip(*values)] if names else [{} for _ in range(len(at))]

    def removed_items(self, catalogue: Catalogue) -> list[dict[str, Any]]:
        """The candidates re-ranking left out, best first: video_id, reason, sources,
        p_complete, probabilities (each trained head's) and score (the ranker's)."""
        if self.slate is None or self.scored is None:
            raise ValueError("this result stopped before re-ranking")
        c, slate, score = self.candidates, self.slate, self.scored["score"]
        removed = slate.removed()
        removed = removed[np.lexsort((removed, -score[removed]))]
        hit = c.ranks > 0
        reasons = slate.reasons
        probs = self._probabilities(removed)
        return [{
            "video_id": catalogue.ids[int(c.rows[i])], "reason": reasons[i],
            "sources": [s for s, h in zip(c.sources, hit[i]) if h],
            "p_complete": p.get("p_complete"), "probabilities": p, "score": float(score[i]),
        } for i, p in zip(removed.tolist(), probs)]  # fmt: skip


def _first_score(frame: pl.DataFrame) -> pl.Expr:
    """The retrieval score where there is one, else the first source's score."""
    return pl.coalesce(pl.col("retrieval_score"), *[pl.col(c) for c in frame.columns if c.startswith("score_")])


def _lead(frame: pl.DataFrame) -> pl.DataFrame:
    rest = [c for c in frame.columns if c not in OUTPUT_LEAD]
    return frame.select(OUTPUT_LEAD + rest)
