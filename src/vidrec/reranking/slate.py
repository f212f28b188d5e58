"""The slate greedy: diversity, calibration, fresh and fair minimums and the creator cap together.

Slot by slot, each user's slate takes the candidate with the best gain

    gain_i = (1 - lambda_c) * base_i - lambda_c * dKL_i

where ``base`` is the relevance (final score scaled to [0, 1] per user), its MMR
gain or its DPP gain (see :mod:`objectives`), and ``dKL`` the change of the calibration
divergence of the slate's categories to the user's history. Hard-ish constraints
restrict the choice: the creator cap (per window, relaxed when nothing else is left and
backfill is on) and the minimum numbers of fresh videos and of small or new creators'
videos (binding once the slots left equal what is still owed).

The loop is over slots (k ~ 10); inside, everything is numpy over the request's pool of
``greedy_pool`` best candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.objectives import DppGreedy, calibration_delta, mmr_gain


@dataclass
class _User:
    """One user's pool as numpy arrays (n,) plus the history's category distribution."""

    score: np.ndarray
    creator: np.ndarray
    category: np.ndarray
    fresh: np.ndarray
    fair: np.ndarray
    features: np.ndarray | None
    history: np.ndarray  # (C + 1,) history counts per pool category, then all other categories


def _label(cfg: ReRankConfig) -> str:
    parts = [cfg.diversity] if cfg.diversity != "none" and cfg.diversity_weight > 0 else []
    if cfg.calibration_weight > 0:
        parts.append("calibration")
    return "+".join(parts) or "slate"


def _owed(want: int, have: int, total: int) -> int:
    """Slots a minimum still claims: ``want`` less those met, capped by the videos left."""
    return max(0, min(want - have, total - have))


def greedy_slate(u: _User, k: int, cfg: ReRankConfig) -> tuple[list[int], list[list[str]], np.ndarray]:
    """Pick one user's slate: (picked pool positions in order, codes per pick, capped flags).

    Counts the minimums and the creator window incrementally, so a slot costs a few numpy
    passes over the pool.
    """
    n = len(u.score)
    span = u.score.max() - u.score.min()
    rel = (u.score - u.score.min()) / span if span > 0 else np.ones(n)
    off = np.zeros(n)  # 0 while available, -inf once taken
    capped = np.zeros(n, dtype=bool)
    use_div = cfg.diversity != "none" and cfg.diversity_weight > 0 and u.features is not None
    dpp = DppGreedy(u.features, k) if use_div and cfg.diversity == "dpp" else None
    max_sim = np.zeros(n)
    hist = u.history.sum()
    p = u.history / hist if hist else None
    counts = np.zeros(len(u.history))
    minimums = [(u.fresh, cfg.min_fresh, "fresh_slot"), (u.fair, math.ceil(cfg.fair_min_share * k - 1e-9), "fair_slot")]
    minimums = [(flags, want, code, int(flags.sum())) for flags, want, code in minimums if want > 0]
    have = [0] * len(minimums)
    window = np.zeros(int(u.creator.max(initial=0)) + 1, dtype=np.int64)  # picks per creator in this window
    label = _label(cfg)
    picks: list[int] = []
    codes: list[list[str]] = []
    for slot in range(min(k, n)):
        if dpp is not None:
            base = (1.0 - cfg.diversity_weight) * rel + cfg.diversity_weight * dpp.log_residual()
        elif use_div:
            base = mmr_gain(rel, max_sim, cfg.diversity_weight)
        else:
            base = rel
        gain = base
        if p is not None and cfg.calibration_weight > 0:
            delta = calibration_delta(p, counts, cfg.calibration_alpha)[u.category]
            gain = (1.0 - cfg.calibration_weight) * base - cfg.calibration_weight * delta
        gain = gain + off
        why: list[str] = []
        owed = [_owed(want, h, total) for (_, want, _, total), h in zip(minimums, have)]
        binding = sum(owed) >= min(k, n) - slot > 0 and any(owed)
        free = int(np.argmax(gain))  # the choice without the minimums, to tell whether they moved it
        if binding:  # the slots left are all owed: only videos that pay a debt may take them
            serves = sum((flags & (off == 0) & (o > 0)).astype(np.int64) for (flags, *_), o in zip(minimums, owed))
            gain = np.where(serves == serves.max(), gain, -np.inf)  # paying two debts beats one
        if cfg.creator_cap is not None:
            if slot % cfg.creator_window == 0:
                window[:] = 0
            full = window[u.creator] >= cfg.creator_cap
            kept = np.where(full, -np.inf, gain)
            best = kept.max()
            if best > -np.inf:
                capped |= full & (gain > best)  # the cap kept out a better video
                gain = kept
            elif cfg.creator_backfill:
                why.append("creator_cap:relaxed")
            else:
                break
        j = int(np.argmax(gain))
        if not gain[j] > -np.inf:
            break
        picks.append(j)
        off[j] = -np.inf
        window[u.creator[j]] += 1
        for m, (flags, *_) in enumerate(minimums):
            have[m] += int(flags[j])
        if p is not None:
            counts[u.category[j]] += 1
        if dpp is not None:
            dpp.add(j)
        elif use_div:
            max_sim = np.maximum(max_sim, u.features @ u.features[j])
        if binding and j != free:
            why += [code for (flags, _, code, _), o in zip(minimums, owed) if o > 0 and flags[j]]
        if capped[j]:
            why.append("creator_cap:deferred")
        moved = j - slot
        if moved:
            why.insert(0, f"{label}:{moved:+d}")
        codes.append(why)
    return picks, codes, capped & (off == 0)
