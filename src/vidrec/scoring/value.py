"""The value model: how the ranker's per-task probabilities add up to one ranking score.

``score = P(completed) + interact * P(interacted) + like * P(liked) - dislike * P(disliked)``.
The heads are calibrated probabilities, so the weights read as exchange rates ("a like
is worth 0.2 completions, a dislike costs one"). They are not learned: changing them
re-ranks without retraining (:meth:`MultiTaskRanker.load` takes an override). The ranker
passes each trained head's strictly increasing calibration (so steps of the calibrator do
not tie candidates) and a task without a head at its base rate (a constant: it shifts every
score alike and is never reported as a prediction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROBABILITY_COLUMNS: dict[str, str] = {
    "label": "p_complete",
    "interacted": "p_interact",
    "liked": "p_like",
    "disliked": "p_dislike",
}
"""Label column of each task -> its probability column (reported only for the heads a ranker trains)."""


@dataclass(frozen=True)
class ValueModel:
    """Weights of ``p_interact``, ``p_like`` and ``p_dislike`` next to ``p_complete`` (weight 1).

    The defaults (all 0: rank by completion) won on the ML-100K validation carve, where
    like 0.2 / dislike 1.0 cost 0.005 NDCG@10 (relevance there is completion itself).
    """

    interact: float = 0.0
    like: float = 0.0
    dislike: float = 0.0  # subtracted

    def __post_init__(self) -> None:
        for name in ("interact", "like", "dislike"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"ValueModel.{name} must be a finite number >= 0, got {value!r}")

    def score(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        """The score of candidates whose ``PROBABILITY_COLUMNS`` are given as arrays (all four)."""
        return (probs["p_complete"] + self.interact * probs["p_interact"] + self.like * probs["p_like"]
                - self.dislike * probs["p_dislike"])  # fmt: skip
