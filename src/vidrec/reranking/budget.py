"""Re-ranking within an accuracy budget: the soft objectives are turned down until, together,
they cost at most a share of validation NDCG@k.

The soft objectives (fresh boost and minimum, diversity, creator cap, calibration, the
fairness minimum) trade accuracy for slate qualities, and what they cost depends on the
log: a creator cap of 3 per 10 costs nothing where every creator has one video and a lot
where a channel has hundreds. So the configured values are a ceiling, and
:func:`choose_within_budget` steps them down, one knob at a time, on a validation window
until the slates' NDCG@k is within ``budget`` of the slates with every soft objective off.
Hard rules (disliked, seen, unavailable, fatigue hiding) are never tuned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vidrec.catalogue import Catalogue
from vidrec.features.live import LiveCounts
from vidrec.request import Request
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.reranker import DefaultReRanker
from vidrec.reranking.select import RowVectors

log = logging.getLogger(__name__)

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
    """Mean NDCG@k of slates (catalogue rows, best first) against each user's relevant rows."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for slate, relevant in zip(slates, truth):
        hits = np.isin(slate[:k], relevant)
        ideal = discounts[: min(k, len(relevant))].sum()
        total += float(discounts[: len(hits)][hits].sum() / ideal) if ideal > 0 else 0.0
    return total / max(len(slates), 1)


@dataclass
class Window:
    """Scored candidates of validation requests and what each user went on to complete."""

    requests: list[Request]
    rows: list[np.ndarray]  # catalogue rows of each request's candidates
    scores: list[np.ndarray]  # the ranker's score per candidate
    truth: list[np.ndarray]  # catalogue rows each user completed in the window
    k: int = 10

    def evaluator(self, catalogue: Catalogue, live: LiveCounts | None,
                  vectors: RowVectors | None) -> Callable[[ReRankConfig], float]:  # fmt: skip
        """NDCG@k of the slates a config gives, the re-ranker bound as it serves."""

        def evaluate(config: ReRankConfig) -> float:
            reranker = DefaultReRanker(config).bind(catalogue, live, vectors)
            ks = [self.k] * len(self.requests)
            slates = reranker.rerank_requests(self.requests, self.rows, self.scores, ks)
            return ndcg([rows[s.order] for rows, s in zip(self.rows, slates)], self.truth, self.k)

        return evaluate


def choose_within_budget(
    evaluate: Callable[[ReRankConfig], float], config: ReRankConfig, budget: float
) -> tuple[ReRankConfig, list[dict[str, Any]]]:
    """The configured soft objectives, turned down until they cost at most ``budget``.

    Cost is ``1 - evaluate(candidate) / evaluate(neutral(config))``. While it is over the
    budget, every knob not yet off takes its next step down and the step that recovers the
    most accuracy is kept (the others stay as they are), so the objectives that cost the
    most give way first and the cheap ones stay on. Returns the chosen config and one row
    per config tried (``knob``, ``value``, ``ndcg``, ``cost``, ``kept``)."""
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"the re-ranking budget must lie in [0, 1], got {budget}")
    reference = evaluate(neutral(config))
    trace: list[dict[str, Any]] = [{"knob": "(all soft objectives off)", "value": None, "ndcg": reference,
                                    "cost": 0.0, "kept": False}]  # fmt: skip
    current, value = config, evaluate(config)

    def cost(v: float) -> float:
        return 1.0 - v / reference if reference > 0 else 0.0

    trace.append({"knob": "(as configured)", "value": None, "ndcg": value, "cost": cost(value), "kept": True})
    while cost(value) > budget:
        steps = []
        for knob in KNOBS:
            values = ladder(config, knob)
            at = values.index(getattr(current, knob))
            if at + 1 < len(values):
                steps.append((knob, values[at + 1]))
        if not steps:
            break
        tried = []
        for knob, step in steps:
            v = evaluate(replace(current, **{knob: step}))
            tried.append((v, knob, step))
            trace.append({"knob": knob, "value": step, "ndcg": v, "cost": cost(v), "kept": False})
        best = max(tried, key=lambda t: t[0])  # max keeps the first of equals: KNOBS order
        current, value = replace(current, **{best[1]: best[2]}), best[0]
        next(row for row in reversed(trace) if row["knob"] == best[1] and row["value"] == best[2])["kept"] = True
    return current, trace


def changes(before: ReRankConfig, after: ReRankConfig) -> dict[str, tuple[Any, Any]]:
    """The knobs the budget turned down: name -> (configured, chosen)."""
    return {k: (getattr(before, k), getattr(after, k)) for k in KNOBS if getattr(before, k) != getattr(after, k)}
