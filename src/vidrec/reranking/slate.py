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


def _owed(flags: np.ndarray, taken: np.ndarray, want: int) -> int:
    """Slots a minimum still claims: ``want`` less those met, capped by the videos left."""
    have = int((flags & taken).sum())
    return max(0, min(want - have, int((flags & ~taken).sum())))


def _cap_reached(creator: np.ndarray, picks: list[int], slot: int, cap: int, window: int) -> np.ndarray:
    """(n,) True where the item's creator already has ``cap`` videos in the current window."""
    in_window = creator[np.asarray(picks[slot - slot % window:], dtype=np.int64)]
    return np.bincount(in_window, minlength=int(creator.max()) + 1)[creator] >= cap


def greedy_slate(u: _User, k: int, cfg: ReRankConfig) -> tuple[list[int], list[list[str]], np.ndarray]:
    """Pick one user's slate: (picked pool positions in order, codes per pick, capped flags)."""
    n = len(u.score)
    span = u.score.max() - u.score.min()
    rel = (u.score - u.score.min()) / span if span > 0 else np.ones(n)
    taken = np.zeros(n, dtype=bool)
    capped = np.zeros(n, dtype=bool)
    use_div = cfg.diversity != "none" and cfg.diversity_weight > 0 and u.features is not None
    dpp = DppGreedy(u.features, k) if use_div and cfg.diversity == "dpp" else None
    max_sim = np.zeros(n)
    hist = u.history.sum()
    p = u.history / hist if hist else None
    counts = np.zeros(len(u.history))
    want_fair = math.ceil(cfg.fair_min_share * k - 1e-9)
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
        gain = np.where(taken, -np.inf, gain)
        why: list[str] = []
        owed = [(u.fresh, _owed(u.fresh, taken, cfg.min_fresh), "fresh_slot"),
                (u.fair, _owed(u.fair, taken, want_fair), "fair_slot")]
        binding = sum(o for _, o, _ in owed) >= min(k, n) - slot > 0 and any(o for _, o, _ in owed)
        free = int(np.argmax(gain))  # the choice without the minimums, to tell whether they moved it
        if binding:  # the slots left are all owed: only videos that pay a debt may take them
            serves = sum((flags & ~taken & (o > 0)).astype(np.int64) for flags, o, _ in owed)
            gain = np.where(serves == serves.max(), gain, -np.inf)  # paying two debts beats one
        if cfg.creator_cap is not None:
            full = _cap_reached(u.creator, picks, slot, cfg.creator_cap, cfg.creator_window)
            kept = np.where(full, -np.inf, gain)
            if np.isfinite(kept).any():
                capped |= full & (gain > kept.max())  # the cap kept out a better video
                gain = kept
            elif cfg.creator_backfill:
                why.append("creator_cap:relaxed")
            else:
                break
        j = int(np.argmax(gain))
        if not np.isfinite(gain[j]):
            break
        picks.append(j)
        taken[j] = True
        if p is not None:
            counts[u.category[j]] += 1
        if dpp is not None:
            dpp.add(j)
        elif use_div:
            max_sim = np.maximum(max_sim, u.features @ u.features[j])
        if binding and j != free:
            why += [code for flags, o, code in owed if o > 0 and flags[j]]
        if capped[j]:
            why.append("creator_cap:deferred")
        moved = j - slot
        if moved:
            why.insert(0, f"{_label(cfg)}:{moved:+d}")
        codes.append(why)
    return picks, codes, capped & ~taken
