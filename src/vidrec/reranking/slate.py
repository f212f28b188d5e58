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
from vidrec.reranking.objectives import EPS, calibration_deltas, mmr_gain


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
    """Pick one user's slate: (picked pool positions in order, codes per pick, capped flags)."""
    return greedy_slates([u], [k], cfg)[0]


def _padded(values: list[np.ndarray], width: int, fill: float | bool | int, dtype: type) -> np.ndarray:
    """(users, width, ...) of per-user arrays, ``fill`` beyond each one's length."""
    out = np.full((len(values), width, *values[0].shape[1:]), fill, dtype=dtype)
    for b, v in enumerate(values):
        out[b, : len(v)] = v
    return out


def greedy_slates(users: list[_User], ks: list[int], cfg: ReRankConfig
                  ) -> list[tuple[list[int], list[list[str]], np.ndarray]]:  # fmt: skip
    """:func:`greedy_slate` of requests served together, slot by slot for all of them at once.

    The pools are padded to the longest (padding is never available), so a slot costs a
    few numpy passes over a (users, pool) array whatever the number of users; each user
    stops at its own ``k`` or when nothing is left. Counts the minimums and the creator
    window incrementally.
    """
    nb = len(users)
    if nb == 0:
        return []
    sizes = np.array([len(u.score) for u in users], dtype=np.int64)
    n = int(sizes.max(initial=0))
    valid = np.arange(n)[None, :] < sizes[:, None]
    score = _padded([u.score for u in users], n, 0.0, np.float64)
    lo = np.where(valid, score, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, score, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    rel = np.where(span > 0, (score - lo) / np.where(span > 0, span, 1.0), 1.0)
    off = np.where(valid, 0.0, -np.inf)  # 0 while available, -inf once taken (or padding)
    capped = np.zeros((nb, n), dtype=bool)
    rows = np.arange(nb)
    use_div = cfg.diversity != "none" and cfg.diversity_weight > 0 and all(u.features is not None for u in users)
    feats = None
    if use_div:
        width = max(int(u.features.shape[1]) for u in users if u.features is not None)
        feats = np.zeros((nb, n, width))
        for b, u in enumerate(users):
            assert u.features is not None
            feats[b, : len(u.score), : u.features.shape[1]] = u.features
    dpp = feats is not None and cfg.diversity == "dpp"
    kmax = int(max(ks, default=0))
    if dpp:
        assert feats is not None
        d2 = np.einsum("bij,bij->bi", feats, feats)
        chol = np.zeros((nb, n, max(kmax, 1)))
    max_sim = np.zeros((nb, n))
    creator = _padded([u.creator for u in users], n, 0, np.int64)
    category = _padded([u.category for u in users], n, 0, np.int64)
    hist = _padded([u.history for u in users], max(len(u.history) for u in users) if users else 1, 0.0, np.float64)
    hist_sum = hist.sum(axis=1, keepdims=True)
    calibrate = cfg.calibration_weight > 0 and bool((hist_sum > 0).any())
    p = np.divide(hist, hist_sum, out=np.zeros_like(hist), where=hist_sum > 0)
    has_p = hist_sum[:, 0] > 0
    counts = np.zeros_like(hist)
    ks_arr = np.array(ks, dtype=np.int64)
    limit = np.minimum(ks_arr, sizes)
    minimums = []  # (flags (users, n), wanted (users,), code, total (users,))
    for flags_of, wanted, code in (
        (lambda u: u.fresh, np.full(nb, cfg.min_fresh), "fresh_slot"),
        (lambda u: u.fair, np.array([math.ceil(cfg.fair_min_share * k - 1e-9) for k in ks]), "fair_slot"),
    ):
        if (wanted > 0).any():
            flags = _padded([flags_of(u) for u in users], n, False, bool)
            minimums.append((flags, wanted, code, flags.sum(axis=1)))
    have = np.zeros((len(minimums), nb), dtype=np.int64)
    wanted = np.stack([w for _, w, _, _ in minimums]) if minimums else have
    totals = np.stack([t for *_, t in minimums]) if minimums else have
    window = np.zeros((nb, int(creator.max(initial=0)) + 1), dtype=np.int64)  # picks per creator in this window
    label = _label(cfg)
    active = limit > 0
    picks: list[list[int]] = [[] for _ in users]
    codes: list[list[list[str]]] = [[] for _ in users]
    for slot in range(int(limit.max(initial=0))):
        active &= slot < limit
        if not active.any():
            break
        if dpp:
            base = (1.0 - cfg.diversity_weight) * rel + cfg.diversity_weight * np.log(np.maximum(d2, EPS))
        elif use_div:
            base = mmr_gain(rel, max_sim, cfg.diversity_weight)
        else:
            base = rel
        gain = base
        if calibrate:
            delta = np.take_along_axis(calibration_deltas(p, counts, cfg.calibration_alpha), category, axis=1)
            gain = np.where(has_p[:, None], (1.0 - cfg.calibration_weight) * base - cfg.calibration_weight * delta,
                            base)  # fmt: skip
        gain = gain + off
        relaxed = np.zeros(nb, dtype=bool)
        owed = np.maximum(0, np.minimum(wanted - have, totals - have))  # (minimums, users)
        binding = (owed.sum(axis=0) >= limit - slot) & (limit - slot > 0) & (owed > 0).any(axis=0)
        free = np.argmax(gain, axis=1)  # the choice without the minimums, to tell whether they moved it
        if binding.any():  # the slots left are all owed: only videos that pay a debt may take them
            serves = sum(((f & (off == 0)) & (o[:, None] > 0)).astype(np.int64)
                         for (f, *_), o in zip(minimums, owed))  # fmt: skip
            best_serves = np.max(serves, axis=1, keepdims=True)
            gain = np.where(binding[:, None] & (serves != best_serves), -np.inf, gain)  # paying two debts beats one
        if cfg.creator_cap is not None:
            if slot % cfg.creator_window == 0:
                window[:] = 0
            full = window[rows[:, None], creator] >= cfg.creator_cap
            kept = np.where(full, -np.inf, gain)
            best = kept.max(axis=1)
            some = best > -np.inf
            capped |= full & (gain > best[:, None]) & (some & active)[:, None]  # the cap kept out a better video
            gain = np.where(some[:, None], kept, gain)
            if cfg.creator_backfill:
                relaxed = ~some
            else:
                active &= some
        j = np.argmax(gain, axis=1)
        active &= gain[rows, j] > -np.inf
        if not active.any():
            break
        act = np.flatnonzero(active)
        ja = j[act]
        off[act, ja] = -np.inf
        window[act, creator[act, ja]] += 1  # one pick per user: no repeated index
        for m, (flags, *_) in enumerate(minimums):
            have[m, act] += flags[act, ja]
        if calibrate:
            counts[act, category[act, ja]] += 1.0
        if dpp:  # every user at once, the ones that stopped unchanged (their e is 0)
            assert feats is not None
            fj, dj = feats[rows, j], d2[rows, j]  # (users, f), (users,)
            ok = active & (dj > EPS)
            row = np.matmul(feats, fj[:, :, None])[:, :, 0]  # S_ji
            done = np.matmul(chol[:, :, :slot], chol[rows, j, :slot][:, :, None])[:, :, 0]
            e = np.where(ok[:, None], (row - done) / np.sqrt(np.where(ok, dj, 1.0))[:, None], 0.0)
            chol[:, :, slot] = e
            d2 -= e * e
            d2[act, ja] = 0.0
        elif use_div:
            assert feats is not None
            sim = np.matmul(feats, feats[rows, j][:, :, None])[:, :, 0]
            max_sim = np.where(active[:, None], np.maximum(max_sim, sim), max_sim)
        for b, jb in zip(act.tolist(), ja.tolist()):
            picks[b].append(jb)
            why: list[str] = ["creator_cap:relaxed"] if relaxed[b] else []
            if binding[b] and jb != free[b]:
                why += [code for (flags, _, code, _), o in zip(minimums, owed) if o[b] > 0 and flags[b, jb]]
            if capped[b, jb]:
                why.append("creator_cap:deferred")
            moved = jb - slot
            if moved:
                why.insert(0, f"{label}:{moved:+d}")
            codes[b].append(why)
    return [(picks[b], codes[b], (capped[b] & (off[b] == 0))[: sizes[b]]) for b in range(nb)]
