"""Re-ranking within an accuracy budget: the soft objectives are turned down until, together,
they cost at most a share of validation NDCG@k (or, on a simulated platform, of the slates'
true expected completions).

The soft objectives (fresh boost and minimum, diversity, creator cap, calibration, the
fairness minimum) trade accuracy for slate qualities, and what they cost depends on the
log: a creator cap of 3 per 10 costs nothing where every creator has one video and a lot
where a channel has hundreds. So the configured values are a ceiling, and
:func:`choose_within_budget` steps them down, one knob at a time, on a validation window
until the slates' NDCG@k is within ``budget`` of the slates with every soft objective off.
Hard rules (disliked, seen, unavailable, fatigue hiding) are never tuned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from vidrec.catalogue import Catalogue
from vidrec.evaluation.metrics import NO_ITEM, ranking_metrics
from vidrec.features.live import LiveCounts
from vidrec.request import Request
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.reranker import DefaultReRanker
from vidrec.reranking.select import RowVectors

KNOBS: tuple[str, ...] = (
    "diversity_weight", "creator_cap", "fresh_boost", "min_fresh", "fair_min_share", "calibration_weight",
)  # fmt: skip
"""The soft objectives the budget may turn down, in the order ties are broken."""


def ladder(config: ReRankConfig, knob: str) -> list[Any]:
    """The values ``knob`` steps through, from the configured one down to off."""
    value = getattr(config, knob)
    if knob == "creator_cap":
        if value is None:
            return [None]
        wider = sorted({value, min(2 * value, config.creator_window)})
        return [*wider, None]
    if knob == "min_fresh":
        return list(range(value, -1, -1))
    if knob == "diversity_weight" and config.diversity == "none":
        return [value]
    return [value] if value == 0 else [value, value / 2, 0.0]


def neutral(config: ReRankConfig) -> ReRankConfig:
    """``config`` with every soft objective off: the reference the budget is a share of."""
    return replace(config, **{knob: ladder(config, knob)[-1] for knob in KNOBS})


def ndcg(slates: Sequence[np.ndarray], truth: Sequence[np.ndarray], k: int) -> float:
    """Mean NDCG@k of slates (catalogue rows, best first) against each user's relevant rows,
    as the offline evaluation computes it (:func:`~vidrec.evaluation.metrics.ranking_metrics`)."""
    recs = np.full((len(slates), k), NO_ITEM, dtype=np.int64)
    for i, slate in enumerate(slates):
        recs[i, : min(k, len(slate))] = slate[:k]
    n_items = 1 + max((int(a.max(initial=-1)) for a in (*slates, *truth)), default=0)
    lengths = np.array([len(t) for t in truth], dtype=np.int64)
    cols = np.concatenate([np.asarray(t, dtype=np.int64) for t in truth]) if len(truth) else np.zeros(0, np.int64)
    relevance = csr_matrix((np.ones(len(cols)), cols, np.concatenate([[0], np.cumsum(lengths)])),
                           shape=(len(truth), max(n_items, 1)))  # fmt: skip
    value = ranking_metrics(recs, relevance, ks=(k,)).mean[f"ndcg@{k}"]
    return 0.0 if np.isnan(value) else value


@dataclass
class Window:
    """Scored candidates of validation requests and what each user went on to complete."""

    requests: list[Request]
    rows: list[np.ndarray]  # catalogue rows of each request's candidates
    scores: list[np.ndarray]  # the ranker's score per candidate
    truth: list[np.ndarray]  # catalogue rows each user completed in the window
    k: int = 10

    def evaluator(
        self, catalogue: Catalogue, live: LiveCounts | None, vectors: RowVectors | None,
        measure: Callable[[list[np.ndarray]], float] | None = None,
    ) -> Callable[[ReRankConfig], float]:  # fmt: skip
        """``measure`` of the slates a config gives (their catalogue rows, one array per request;
        default: NDCG@k against :attr:`truth`), the re-ranker bound as it serves."""
        judge = measure or (lambda slates: ndcg(slates, self.truth, self.k))

        def evaluate(config: ReRankConfig) -> float:
            reranker = DefaultReRanker(config).bind(catalogue, live, vectors)
            ks = [self.k] * len(self.requests)
            slates = reranker.rerank_requests(self.requests, self.rows, self.scores, ks)
            return judge([rows[s.order] for rows, s in zip(self.rows, slates)])

        return evaluate


def choose_within_budget(
    evaluate: Callable[[ReRankConfig], float], config: ReRankConfig, budget: float
) -> tuple[ReRankConfig, list[dict[str, Any]]]:
    """The configured soft objectives, turned down until they cost at most ``budget``.

    Cost is ``1 - evaluate(candidate) / evaluate(neutral(config))``. While it is over the
    budget, every knob not yet off takes its next step down and the step that recovers the
    most accuracy is kept (the others stay as they are), so the objectives that cost the
    most give way first and the cheap ones stay on. Returns the chosen config and one row
    per config tried (``knob``, ``value``, ``measured``: what ``evaluate`` returned, ``cost``,
    ``kept``)."""
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"the re-ranking budget must lie in [0, 1], got {budget}")
    reference = evaluate(neutral(config))
    trace: list[dict[str, Any]] = [{"knob": "(all soft objectives off)", "value": None, "measured": reference,
                                    "cost": 0.0, "kept": False}]  # fmt: skip
    current, value = config, evaluate(config)

    def cost(v: float) -> float:
        return 1.0 - v / reference if reference > 0 else 0.0

    trace.append({"knob": "(as configured)", "value": None, "measured": value, "cost": cost(value), "kept": True})
    while cost(value) > budget:
        steps = []
        for knob in KNOBS:
            values = ladder(config, knob)
            at = values.index(getattr(current, knob))
            if at + 1 < len(values):
                steps.append((knob, values[at + 1]))
        if not steps:
            break
        tried = [{"knob": knob, "value": step, "measured": evaluate(replace(current, **{knob: step})), "kept": False}
                 for knob, step in steps]  # fmt: skip
        for row in tried:
            row["cost"] = cost(row["measured"])
        best = max(tried, key=lambda row: row["measured"])  # max keeps the first of equals: KNOBS order
        best["kept"] = True
        trace += tried
        current, value = replace(current, **{best["knob"]: best["value"]}), best["measured"]
    return current, trace


def changes(before: ReRankConfig, after: ReRankConfig) -> dict[str, tuple[Any, Any]]:
    """The knobs the budget turned down: name -> (configured, chosen)."""
    return {k: (getattr(before, k), getattr(after, k)) for k in KNOBS if getattr(before, k) != getattr(after, k)}
