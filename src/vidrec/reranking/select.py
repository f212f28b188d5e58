"""Stage 3 for one request: hard rules, score adjustments, the slate and its explanations.

Everything here is numpy over the request's few hundred candidates: the user's history
comes from the hydrated :class:`~vidrec.request.Request` (seen, disliked, the dislikes
of each creator and the latest, completions and their last watch), the videos' from the
:class:`~vidrec.catalogue.Catalogue`. :class:`~vidrec.reranking.reranker.DefaultReRanker`
runs it per request and, for frames of many users, per user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vidrec.candidates.common import in_sorted
from vidrec.catalogue import Catalogue
from vidrec.features.live import LiveCounts
from vidrec.request import Request
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.fatigue import request_fatigue
from vidrec.reranking.objectives import similarity_features
from vidrec.reranking.slate import _User, greedy_slates

RowVectors = Callable[[np.ndarray], np.ndarray]
_US_PER_DAY = 86_400e6


REASONS = ("creator_fatigue", "unavailable", "seen", "disliked", "creator_cap", "slate_objective", "below_cutoff")
"""Reason codes of :class:`Slate` (index + 1; 0 = in the slate)."""
_CODE = {r: i + 1 for i, r in enumerate(REASONS)}


@dataclass
class Slate:
    """The re-ranker's answer: slate positions (into the candidates) and why each candidate moved.

    Explanations are built on demand (:meth:`codes`), for the rows a view shows.
    """

    order: np.ndarray  # (s,) candidate positions, rank 1 first
    final_score: np.ndarray  # (n,) per candidate; NaN where a hard rule removed it
    reason: np.ndarray  # (n,) int8: 0 in the slate, else 1 + index in REASONS
    allowed: np.ndarray  # (n,) passed the hard rules
    rewatch: np.ndarray  # (n,) let back in by the re-watch policy
    fresh: np.ndarray  # (n,) freshness multiplier
    fatigue: np.ndarray  # (n,) creator-fatigue factor
    moves: dict[int, list[str]] = field(default_factory=dict)  # position -> slate codes (cap, diversity, minimums)
    prior: list[list[str]] | None = None  # codes the candidates came with

    def codes(self, i: int) -> list[str]:
        """``adjustments`` of candidate ``i``: earlier codes, re-watch, freshness, fatigue, slate moves."""
        return self.codes_of([i])[0]

    def codes_of(self, positions: list[int]) -> list[list[str]]:
        """:meth:`codes` of several candidates (one pass over the columns)."""
        at = np.asarray(positions, dtype=np.int64)
        columns = zip(positions, self.allowed[at].tolist(), self.rewatch[at].tolist(), self.fresh[at].tolist(),
                      self.fatigue[at].tolist())  # fmt: skip
        out = []
        for i, allowed, rewatch, fresh, tired in columns:
            codes = list(self.prior[i]) if self.prior else []
            if allowed:
                if rewatch:
                    codes.append("rewatch")
                codes += [c for c in (_fresh_code(fresh), _fatigue_code(tired)) if c]
                codes += self.moves.get(i, [])
            out.append(codes)
        return out

    @property
    def adjustments(self) -> list[list[str]]:
        return self.codes_of(list(range(len(self.reason))))

    @property
    def reasons(self) -> list[str | None]:
        return [None if r == 0 else REASONS[r - 1] for r in self.reason.tolist()]

    def removed(self) -> np.ndarray:
        """Positions of the candidates left out."""
        return np.flatnonzero(self.reason > 0)


def rewatchable(request: Request, rows: np.ndarray, catalogue: Catalogue, cfg: ReRankConfig) -> np.ndarray:
    """(n,) True where the re-watch policy lets a seen candidate back in."""
    if cfg.rewatch_after_days is None or len(request.completed) == 0:
        return np.zeros(len(rows), dtype=bool)
    pos = np.minimum(np.searchsorted(request.completed, rows), len(request.completed) - 1)
    done = request.completed[pos] == rows
    last = np.where(done, request.last_watched_us[pos], -1)
    ok = done & (last >= 0) & (last < request.now_us)
    ok &= (request.now_us - last) / _US_PER_DAY >= cfg.rewatch_after_days
    if cfg.rewatch_categories:
        allowed = catalogue.categories.lookup(cfg.rewatch_categories)
        ok &= np.isin(catalogue.category[np.maximum(rows, 0)], allowed)
    return ok


def fresh_multiplier(age_days: np.ndarray, cfg: ReRankConfig) -> np.ndarray:
    """``1 + boost * 0.5 ** (age / half_life)``: 1 + boost at upload, -> 1 when old."""
    return 1.0 + cfg.fresh_boost * np.power(0.5, age_days / cfg.fresh_half_life_days)


def _fresh_code(mult: float) -> str | None:
    hundredths = round(float(mult) * 100)  # half to even, as numpy rounds
    return f"fresh_boost:x{hundredths // 100}.{hundredths % 100:02d}" if hundredths > 100 else None


def _fatigue_code(factor: float) -> str | None:
    hundredths = round(float(factor) * 100)
    return f"creator_fatigue:x0.{hundredths:02d}" if hundredths < 100 else None


def cumcount(codes: np.ndarray) -> np.ndarray:
    """1-based count of each value so far, in order (the i-th video of its creator)."""
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    run = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    out = np.empty(len(codes), dtype=np.int64)
    out[order] = run + 1
    return out


def cap_slate(creators: np.ndarray, k: int, cap: int, window: int, backfill: bool
              ) -> tuple[list[int], np.ndarray, np.ndarray]:  # fmt: skip
    """The creator cap in score order: (picked positions in slate order, blocked, relaxed flags).

    Window by window, the best videos whose creator has fewer than ``cap`` in the window;
    a video kept out of a window it would have entered is ``blocked`` (it may enter a later
    one). A slate the cap leaves short is filled (``backfill``) with the best of the rest
    among the top ``k``, as ``relaxed``.
    """
    n = len(creators)
    taken, blocked, relaxed = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    picks: list[int] = []
    for start in range(0, k, window):
        slots = min(window, k - start)
        rem = np.flatnonzero(~taken)
        allowed = cumcount(creators[rem]) <= cap
        chosen = rem[allowed][:slots]
        blocked[rem[~allowed & (np.arange(len(rem)) < slots)]] = True
        picks += chosen.tolist()
        taken[chosen] = True
        if len(chosen) < slots:
            break
    if backfill and len(picks) < k:
        fill = [i for i in range(min(k, n)) if not taken[i]][: k - len(picks)]
        relaxed[fill] = True
        picks += fill
    return picks, blocked, relaxed


class RequestReRanker:
    """:class:`ReRankConfig` applied to one request (see :meth:`rerank`); bound to the catalogue."""

    def __init__(self, config: ReRankConfig, catalogue: Catalogue, live: LiveCounts | None = None,
                 vectors: RowVectors | None = None) -> None:  # fmt: skip
        self.config, self.catalogue, self.live, self.vectors = config, catalogue, live, vectors
        self._small: tuple[int, float, np.ndarray] | None = None  # (creators, watches then, small flags)

    def rerank(self, request: Request, rows: np.ndarray, scores: np.ndarray, k: int,
               prior: list[list[str]] | None = None) -> Slate:  # fmt: skip
        """The slate of at most ``k`` of ``rows`` (catalogue rows, -1 for videos it does not hold)."""
        return self.rerank_many([request], [rows], [scores], [k], [prior])[0]

    def rerank_many(self, requests: list[Request], rows: list[np.ndarray], scores: list[np.ndarray], ks: list[int],
                    priors: list[list[list[str]] | None] | None = None) -> list[Slate]:  # fmt: skip
        """:meth:`rerank` of requests served together: the rules per request, the slate greedy
        for all of them at once (:func:`~vidrec.reranking.slate.greedy_slates`)."""
        priors = priors or [None] * len(requests)
        ruled = [self._rules(q, r, s, p) for q, r, s, p in zip(requests, rows, scores, priors)]
        if not self.config.uses_slate_greedy:
            for (slate, ordered, creators, _, _), k in zip(ruled, ks):
                slate.order = np.asarray(self._capped(ordered, creators, k, slate), dtype=np.int64)
            return [r[0] for r in ruled]
        pools = [self._pool(q, safe, ordered, slate.final_score, age, k)
                 for q, (slate, ordered, _, safe, age), k in zip(requests, ruled, ks)]  # fmt: skip
        chosen = [(i, pool) for i, pool in enumerate(pools) if pool is not None]
        picked = greedy_slates([user for _, (_, user) in chosen], [ks[i] for i, _ in chosen], self.config)
        for slate, ordered, *_ in ruled:
            slate.order = np.zeros(0, np.int64)
            slate.reason[ordered] = _CODE["below_cutoff"]
        for (i, (pool, _)), (picks, why, capped) in zip(chosen, picked):
            slate, ordered = ruled[i][0], ruled[i][1]
            for j, c in zip(picks, why):
                if c:
                    slate.moves[int(pool[j])] = c
            code = np.full(len(ordered), _CODE["below_cutoff"], dtype=np.int8)
            code[: min(ks[i], len(ordered))] = _CODE["slate_objective"]
            code[: len(pool)][capped] = _CODE["creator_cap"]
            code[picks] = 0
            slate.reason[ordered] = code
            slate.order = pool[np.asarray(picks, dtype=np.int64)].astype(np.int64)
        return [r[0] for r in ruled]

    def _rules(self, request: Request, rows: np.ndarray, scores: np.ndarray, prior: list[list[str]] | None
               ) -> tuple[Slate, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """The hard rules, fatigue and freshness of one request: (slate so far, allowed positions
        in score order, creators, rows with -1 as 0, age in days)."""
        cfg, cat = self.config, self.catalogue
        known = rows >= 0
        safe = np.where(known, rows, 0)
        creators = np.where(known, cat.creator[safe], -1)
        factor = np.where(known, request_fatigue(request, creators, cat.creator, cfg), 1.0)
        again = rewatchable(request, safe, cat, cfg) & known
        seen = in_sorted(rows, np.sort(request.seen)) & ~again
        reason = np.select(  # the most important rule first
            [in_sorted(rows, np.sort(request.disliked)), seen, ~(known & cat.available[safe]), factor <= 0.0],
            [_CODE["disliked"], _CODE["seen"], _CODE["unavailable"], _CODE["creator_fatigue"]], 0,
        ).astype(np.int8)  # fmt: skip
        allowed = reason == 0
        age = np.clip((request.now_us - cat.uploaded_us[safe]) / _US_PER_DAY, 0.0, None)
        mult = fresh_multiplier(age, cfg)
        final = scores + np.abs(scores) * (mult - 1.0)
        final = np.where(allowed, final - np.abs(final) * (1.0 - factor), np.nan)
        idx = np.flatnonzero(allowed)
        ordered = idx[np.lexsort((cat.id_keys[safe[idx]], -final[idx]))]  # score order, ties by id
        slate = Slate(np.zeros(0, np.int64), final, reason, allowed, again, mult, factor, prior=prior)
        return slate, ordered, creators, safe, age

    def _capped(self, ordered: np.ndarray, creators: np.ndarray, k: int, slate: Slate) -> list[int]:
        cfg = self.config
        if cfg.creator_cap is None:
            picks, blocked, relaxed = list(range(min(k, len(ordered)))), np.zeros(len(ordered), bool), None
        else:
            picks, blocked, relaxed = cap_slate(creators[ordered], k, cfg.creator_cap, cfg.creator_window,
                                                cfg.creator_backfill)  # fmt: skip
        out = np.zeros(len(ordered), dtype=np.int8)
        out[:] = np.where(blocked, _CODE["creator_cap"], _CODE["below_cutoff"])
        out[picks] = 0
        slate.reason[ordered] = out
        for j in picks:
            if relaxed is not None and relaxed[j]:
                slate.moves[int(ordered[j])] = ["creator_cap:relaxed"]
            elif blocked[j]:
                slate.moves[int(ordered[j])] = ["creator_cap:deferred"]
        return [int(ordered[j]) for j in picks]

    def _pool(self, request: Request, rows: np.ndarray, ordered: np.ndarray, final: np.ndarray, age: np.ndarray,
              k: int) -> tuple[np.ndarray, _User] | None:  # fmt: skip
        """The greedy's pool (the best ``greedy_pool`` positions) and its inputs; None when empty."""
        cfg, cat = self.config, self.catalogue
        pool = ordered[: max(cfg.greedy_pool, k)]
        if len(pool) == 0:
            return None
        prow = rows[pool]
        _, creator = np.unique(cat.creator[prow], return_inverse=True)
        local, inverse = np.unique(cat.category[prow], return_inverse=True)
        fresh = age[pool] < cfg.fresh_days
        fair = (
            self._protected(cat.creator[prow], request.now_us) if cfg.fair_min_share > 0 else np.zeros(len(pool), bool)
        )
        feats = None
        if cfg.diversity != "none" and cfg.diversity_weight > 0:
            vectors = None
            if self.vectors is not None and cfg.category_similarity < 1.0:
                vectors = np.asarray(self.vectors(prow), dtype=np.float64)
            weight = cfg.category_similarity if vectors is not None else 1.0
            feats = similarity_features(vectors, inverse, weight)
        history = self._history(request, local) if cfg.calibration_weight > 0 else np.zeros(len(local) + 1)
        return pool, _User(final[pool], creator, inverse, fresh, fair, feats, history)

    def _history(self, request: Request, local: np.ndarray) -> np.ndarray:
        """(C + 1,) the user's recent completions per pool category, then all other categories."""
        cats = self.catalogue.category[request.recent_completed]
        inside = np.searchsorted(local, cats)
        hit = (inside < len(local)) & (local[np.minimum(inside, len(local) - 1)] == cats) if len(local) else cats < 0
        counts = np.bincount(inside[hit], minlength=len(local)).astype(np.float64)
        return np.append(counts, float((~hit).sum()))

    def _protected(self, creators: np.ndarray, now_us: int) -> np.ndarray:
        """(n,) True for small creators (watches at or below the quantile) or new ones.

        Which creators are small is recomputed when a creator joined or the platform's
        watches grew by 1% since the last time, not on every event: the number of creators
        is paid at most once per 1% of traffic, and the catalogue never.
        """
        cfg, cat = self.config, self.catalogue
        views = self.live.total("views") if self.live is not None else 0.0
        n = len(cat.creators)
        if self._small is None or self._small[0] != n or views > self._small[1] * 1.01:
            watches = np.zeros(n, dtype=np.int64)
            if self.live is not None:
                seen = self.live.views["creator"][:n]
                watches[: len(seen)] = seen
            limit = np.quantile(watches, cfg.small_creator_quantile, method="lower") if n else 0
            small = watches <= limit if self.live is not None else np.zeros(n, bool)
            self._small = (n, max(views, 1.0), small)
        new = (now_us - cat.creator_first_us[creators]) / _US_PER_DAY < cfg.new_creator_days
        return self._small[2][creators] | new
