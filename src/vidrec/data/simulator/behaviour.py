"""How a user responds to one impression: the only place the response model is written.

The simulation draws every outcome from these functions and the ground truth evaluates
the same functions, so the ground truth is the truth by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class BehaviourParams:
    """Coefficients of the response model (logits unless said otherwise)."""

    watch_bias: float = -1.2
    watch_interest: float = 0.7  # per unit of log-affinity
    watch_quality: float = 0.5
    watch_fresh: float = 1.5  # fully fresh upload vs an old one
    fresh_days: float = 3.0  # e-folding time of a video's appeal, in days
    full_bias: float = -0.5  # P(watch >= 80% | watch): logit at a one-minute video
    full_interest: float = 0.6
    full_quality: float = 0.5
    full_length: float = 0.6  # per log(duration / 60 s): long videos are abandoned more
    loop_share: float = 0.6  # P(loop | full watch) for a zero-length video; decays with length
    loop_seconds: float = 60.0  # length scale of that decay
    loop_tail: float = 1.6  # Pareto index of extra loops (smaller = heavier tail)
    like_bias: float = -5.6
    like_interest: float = 0.6
    like_quality: float = 0.4
    like_completed: float = 1.4
    dislike_bias: float = -6.0
    dislike_interest: float = -0.8
    dislike_quality: float = -0.5
    dislike_abandoned: float = 1.8  # watched less than 10%

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def log_affinity(interest: np.ndarray, n_topics: int) -> np.ndarray:
    """Log-affinity from the user's interest in the video's topic; 0 at the average topic."""
    return np.log(n_topics * interest.astype(np.float64) + 0.1)


def freshness(age_us: np.ndarray, params: BehaviourParams) -> np.ndarray:
    """Appeal of a video's novelty: 1 at upload, decaying with age (never negative age)."""
    age_days = np.maximum(age_us, 0) / US_PER_DAY
    return np.exp(-age_days / params.fresh_days)


def response_probabilities(
    params: BehaviourParams,
    affinity: np.ndarray,
    language_penalty: np.ndarray,
    quality: np.ndarray,
    duration: np.ndarray,
    age_us: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``(P(watch | impression), P(completion >= 0.8 | watch))``, elementwise (broadcasts)."""
    p = params
    watch = sigmoid(
        p.watch_bias + p.watch_interest * affinity + p.watch_quality * quality
        + p.watch_fresh * freshness(age_us, p) + language_penalty
    )
    full = sigmoid(
        p.full_bias + p.full_interest * affinity + p.full_quality * quality
        - p.full_length * np.log(duration / 60.0)
    )
    return watch, full


def completion_candidates(
    params: BehaviourParams, duration: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The completion a watch would have if not full (``partial``, below 0.8: quick
    abandons and partial watches) and if full (``whole``: 0.8-1, often exactly 1, and
    loops above 1 for short videos). Drawn up front so outcomes are cheap to select."""
    n = duration.size
    partial = np.maximum(0.8 * rng.beta(0.55, 1.4, size=n), 1e-3)  # mass near 0
    u_kind, u_value, u_loop = rng.random(n), rng.random(n), rng.random(n)
    p_loop = params.loop_share * np.exp(-duration / params.loop_seconds)
    loops = 1.0 + np.minimum((1.0 - u_value) ** (-1.0 / params.loop_tail) - 1.0, 200.0)
    whole = np.where(u_loop < p_loop, loops, np.where(u_kind < 0.6, 1.0, 0.8001 + 0.1999 * u_value))
    return partial, whole


def like_dislike_probabilities(
    params: BehaviourParams, affinity: np.ndarray, quality: np.ndarray, completion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(P(like | watch), P(dislike | watch))`` given how much was watched."""
    p = params
    like = sigmoid(
        p.like_bias + p.like_interest * affinity + p.like_quality * quality
        + p.like_completed * (completion >= 0.8)
    )
    dislike = sigmoid(
        p.dislike_bias + p.dislike_interest * affinity + p.dislike_quality * quality
        + p.dislike_abandoned * (completion < 0.1)
    )
    return like, dislike
