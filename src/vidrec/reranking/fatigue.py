"""Creator fatigue that follows the evidence: a user's dislikes of a creator against their completions.

One dislike says little about a channel with hundreds of videos the user keeps completing;
many dislikes and no completions say a lot. The user's verdicts on a creator -- ``d``
dislikes, ``c`` completed videos -- give a Beta posterior of the share of that creator's
videos the user dislikes, ``Beta(a + d, b + c)`` with the prior's pseudo-counts ``a, b``
(``ReRankConfig.fatigue_prior_dislikes / fatigue_prior_completions``). The creator's other
videos are scaled by ``1 - E[share]`` (the chance the user's next verdict on it is not a
dislike), never below ``fatigue_floor``, and hidden only while the evidence is strong:
``P(share > fatigue_hide_share) >= fatigue_hide_confidence``, for ``fatigue_filter_days``
after the latest dislike. After that period every factor recovers linearly to 1 over
``fatigue_recover_days`` (X's home mixer's schedule, its depth set by the evidence).

A creator the user never disliked is untouched. The counts come with the request (the
store's user x creator dislikes, the user's completed videos), so the cost per request is
that of the user's own state, never of the log.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betainc

from vidrec.request import Request
from vidrec.reranking.config import ReRankConfig

_US_PER_DAY = 86_400e6


def fatigue_factor(days: np.ndarray, dislikes: np.ndarray, completions: np.ndarray, cfg: ReRankConfig) -> np.ndarray:
    """(n,) factor of creators disliked ``dislikes`` (>= 1) times, the latest ``days`` ago, against
    ``completions`` completed videos: 0 while hidden, else the evidence's factor recovering to 1."""
    days = np.asarray(days, dtype=np.float64)
    d = np.asarray(dislikes, dtype=np.float64)
    c = np.asarray(completions, dtype=np.float64)
    alpha, beta = cfg.fatigue_prior_dislikes + d, cfg.fatigue_prior_completions + c
    start = np.maximum(beta / (alpha + beta), cfg.fatigue_floor)  # 1 - posterior mean share of dislikes
    strong = 1.0 - betainc(alpha, beta, cfg.fatigue_hide_share) >= cfg.fatigue_hide_confidence
    if cfg.fatigue_recover_days > 0:
        ramp = np.clip((days - cfg.fatigue_filter_days) / cfg.fatigue_recover_days, 0.0, 1.0)
    else:
        ramp = (days >= cfg.fatigue_filter_days).astype(np.float64)
    factor = start + (1.0 - start) * ramp
    return np.where(strong & (days < cfg.fatigue_filter_days), 0.0, factor)


def creator_verdicts(request: Request, creator_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The creators the user disliked before ``now``: (codes sorted, dislikes, completions, latest dislike us).

    ``creator_of``: the catalogue's creator code of every row. Completions are counted over the
    user's completed videos only when there is a disliked creator to count them for.
    """
    pairs = request.pair("creator")
    past = (pairs.last_us >= 0) & (pairs.last_us < request.now_us)
    codes = pairs.codes[past].astype(np.int64)
    dislikes = np.maximum(pairs.counts[past, 1], 1)  # a dislike time without a count is one dislike
    completions = np.zeros(len(codes), dtype=np.int64)
    if len(codes) and len(request.completed):
        done = np.sort(creator_of[request.completed].astype(np.int64))
        completions = np.searchsorted(done, codes, side="right") - np.searchsorted(done, codes, side="left")
    return codes, dislikes, completions, pairs.last_us[past]


def request_fatigue(request: Request, creators: np.ndarray, creator_of: np.ndarray, cfg: ReRankConfig) -> np.ndarray:
    """(n,) fatigue factor of each candidate's creator code in ``creators`` (1: never disliked)."""
    codes, dislikes, completions, last = creator_verdicts(request, creator_of)
    if not len(codes):
        return np.ones(len(creators))
    days = (request.now_us - last) / _US_PER_DAY
    per_creator = fatigue_factor(days, dislikes, completions, cfg)
    pos = np.minimum(np.searchsorted(codes, creators), len(codes) - 1)
    return np.where(codes[pos] == creators, per_creator[pos], 1.0)
