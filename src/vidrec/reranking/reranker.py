"""The default re-ranker: hard rules, score adjustments, slate objectives, explanations."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from vidrec.reranking.base import ADJUSTMENTS, REMOVED_REASON, ReRanker, check_inputs
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.diversity import BLOCKED, CAP_CODE, POS, cap_creators, order_by_score
from vidrec.reranking.fairness import creator_watches, protected_creators
from vidrec.reranking.filters import (
    CATALOGUE_COLUMNS,
    CREATOR,
    UPLOADED,
    join_catalogue,
    mark_rewatch,
    removal_reason,
    split_removed,
)
from vidrec.reranking.freshness import FRESH, apply_freshness, fresh_code, upload_age_days
from vidrec.reranking.history import (
    FATIGUE,
    REWATCH,
    check_events,
    creator_fatigue,
    dislike_times,
    rewatchable,
    user_events,
)
from vidrec.reranking.slate import CAPPED, IS_FAIR, IS_FRESH, SLATE_CODES, VideoVectors, select_slates

_EMPTY_CODES = pl.lit([], dtype=pl.List(pl.String))
_NO_CODE = pl.lit(None, dtype=pl.String)
PRIVATE: tuple[str, ...] = (*CATALOGUE_COLUMNS, POS, BLOCKED, FRESH, FATIGUE, REWATCH, CAP_CODE,
                            IS_FRESH, IS_FAIR, SLATE_CODES, CAPPED)


class DefaultReRanker(ReRanker):
    """Stage 3 as configured by :class:`ReRankConfig`.

    Steps:
      1. hard rules: drop disliked, seen (unless the re-watch policy allows), unavailable
         or unknown videos, and creators in their fatigue filter period;
      2. ``final_score`` = score x freshness boost x creator-fatigue factor;
      3. the slate: the per-user greedy of :mod:`slate` (diversity, calibration, fresh and
         fair minimums, creator cap) when any of those objectives is on, else the
         vectorised creator cap in final-score order;
      4. explanations: each returned row's ``adjustments`` lists what moved it.

    Example:
        >>> rr = DefaultReRanker(ReRankConfig(diversity="dpp", diversity_weight=0.5))
        >>> slate = rr.rerank(scored, users, videos, now, k=10, events=events)  # doctest: +SKIP
    """

    def __init__(self, config: ReRankConfig | None = None) -> None:
        self.config = config or ReRankConfig()
        self._protected: tuple[tuple, pl.DataFrame] | None = None  # (inputs it was computed from, result)

    def rerank(
        self,
        scored: pl.DataFrame,
        users: pl.DataFrame,
        videos: pl.DataFrame,
        now: datetime,
        k: int,
        debug: bool = False,
        events: pl.DataFrame | None = None,
        video_vectors: VideoVectors | None = None,
    ) -> pl.DataFrame:
        """See :meth:`ReRanker.rerank`; removed rows (debug) come after each user's slate."""
        check_inputs(scored, users, videos, now, k)
        log = events
        if events is not None:  # one columnar scan of the log; every later step reads the few rows left
            check_events(events)
            events = user_events(events, scored["user_id"], now)
        cfg = self.config
        frame = scored
        if ADJUSTMENTS not in scored.columns:
            frame = scored.with_columns(_EMPTY_CODES.alias(ADJUSTMENTS))
        columns = _output_columns(scored.columns)
        allowed, removed = self._hard_rules(frame, users, videos, now, events)
        boosted = _adjust(apply_freshness(allowed, now, cfg.fresh_boost, cfg.fresh_half_life_days))
        ordered = order_by_score(boosted)
        if cfg.uses_slate_greedy:
            flagged = _flag(ordered, self._protected_creators(videos, log, now), now, cfg)
            pool = select_slates(flagged, users, videos, k, cfg, video_vectors)
            slate = pool.filter(pl.col("rank").is_not_null())
            leftover = None
            if debug:
                rest = ordered.join(slate.select("user_id", "video_id"), on=["user_id", "video_id"], how="anti")
                leftover = _greedy_leftover(rest, pool, k)
        else:
            slate, leftover = cap_creators(
                ordered, k, cfg.creator_cap, cfg.creator_window, backfill=cfg.creator_backfill, leftover=debug
            )
            if leftover is not None:
                reason = pl.when(pl.col(BLOCKED)).then(pl.lit("creator_cap")).otherwise(pl.lit("below_cutoff"))
                leftover = leftover.with_columns(reason.alias(REMOVED_REASON))
        out = _explain(slate).sort("user_id", "rank").select(columns)
        if leftover is None:
            return out
        return _with_removed(out, removed, _explain(leftover), columns)

    def _hard_rules(
        self,
        frame: pl.DataFrame,
        users: pl.DataFrame,
        videos: pl.DataFrame,
        now: datetime,
        events: pl.DataFrame | None,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(allowed with catalogue, fatigue and re-watch columns, removed with their reason)."""
        cfg = self.config
        dislikes = dislike_times(users, videos, now, events)
        joined = creator_fatigue(
            join_catalogue(frame, videos), CREATOR, dislikes, now,
            cfg.fatigue_filter_days, cfg.fatigue_recover_days, cfg.fatigue_floor,
        )
        rewatch = rewatchable(users, videos, now, events, cfg.rewatch_after_days, cfg.rewatch_categories)
        allowed, removed = split_removed(removal_reason(joined, users, rewatch))
        return mark_rewatch(allowed, users, rewatch), removed

    def _protected_creators(
        self, videos: pl.DataFrame, log: pl.DataFrame | None, now: datetime
    ) -> pl.DataFrame | None:
        """Small or new creators (fairness minimum), from the whole log: kept until an input changes.

        The statistic is global (every creator's watches), so it is computed once per
        (log, catalogue, time, settings) rather than on every request; a new log object
        (``Recommender.observe`` appends events) recomputes it on the next request.
        """
        cfg = self.config
        if cfg.fair_min_share <= 0:
            return None
        key = (log, videos, now, cfg.small_creator_quantile, cfg.new_creator_days)
        cached = self._protected
        if cached is not None and all(map(_same, cached[0], key)):
            return cached[1]
        watches = creator_watches(log, videos, now) if log is not None else None
        guarded = protected_creators(videos, watches, now, cfg.small_creator_quantile, cfg.new_creator_days)
        self._protected = (key, guarded)
        return guarded


def _same(a: object, b: object) -> bool:
    """Frames match only when they are the same object (no content scan); other values by equality."""
    if isinstance(a, pl.DataFrame) or isinstance(b, pl.DataFrame):
        return a is b
    return bool(a == b)


def _adjust(frame: pl.DataFrame) -> pl.DataFrame:
    """Apply the fatigue factor to ``final_score`` (a negative score moves away from zero)."""
    fs = pl.col("final_score")
    return frame.with_columns((fs - fs.abs() * (1.0 - pl.col(FATIGUE))).alias("final_score"))


def _flag(ordered: pl.DataFrame, guarded: pl.DataFrame | None, now: datetime, cfg: ReRankConfig) -> pl.DataFrame:
    """Add the fresh and protected-creator flags the slate minimums count."""
    fresh = (upload_age_days(pl.col(UPLOADED), now) < cfg.fresh_days).fill_null(False)
    out = ordered.with_columns(fresh.alias(IS_FRESH))
    if guarded is None:
        return out.with_columns(pl.lit(False).alias(IS_FAIR))
    guarded = guarded.select(pl.col("creator_id").alias(CREATOR), pl.col("protected").alias(IS_FAIR))
    out = out.join(guarded, on=CREATOR, how="left", maintain_order="left")
    return out.with_columns(pl.col(IS_FAIR).fill_null(False))


def _greedy_leftover(rest: pl.DataFrame, pool: pl.DataFrame, k: int) -> pl.DataFrame:
    """Reasons for candidates the greedy left out: cap, displaced by the objectives, or cut."""
    capped = pool.filter(pl.col(CAPPED)).select("user_id", "video_id", pl.lit(True).alias("__c"))
    reason = (
        pl.when(pl.col("__c").fill_null(False))
        .then(pl.lit("creator_cap"))
        .when(pl.col(POS) < k)
        .then(pl.lit("slate_objective"))
        .otherwise(pl.lit("below_cutoff"))
    )
    out = rest.join(capped, on=["user_id", "video_id"], how="left", maintain_order="left")
    return out.with_columns(reason.alias(REMOVED_REASON)).drop("__c")


def _output_columns(inputs: list[str]) -> list[str]:
    """user_id, rank, video_id, final_score, the other input columns, adjustments."""
    rest = [c for c in inputs if c not in ("user_id", "video_id", ADJUSTMENTS)]
    return ["user_id", "rank", "video_id", "final_score", *rest, ADJUSTMENTS]


def _fatigue_code(factor: pl.Expr) -> pl.Expr:
    """``creator_fatigue:x0.45`` while a disliked creator is recovering, else null."""
    hundredths = (factor * 100).round(0).cast(pl.Int64)
    code = pl.format("creator_fatigue:x0.{}", hundredths.cast(pl.String).str.zfill(2))
    return pl.when(hundredths < 100).then(code).otherwise(_NO_CODE)


def _explain(frame: pl.DataFrame) -> pl.DataFrame:
    """Write ``adjustments``: earlier codes, re-watch, freshness, fatigue, then slate moves."""
    def col(name: str) -> pl.Expr:
        return pl.col(name) if name in frame.columns else _NO_CODE

    rewatch = pl.when(col(REWATCH).fill_null(False)).then(pl.lit("rewatch")).otherwise(_NO_CODE)
    slate = pl.col(SLATE_CODES).fill_null(_EMPTY_CODES) if SLATE_CODES in frame.columns else _EMPTY_CODES
    codes = pl.concat_list(
        pl.col(ADJUSTMENTS).fill_null(_EMPTY_CODES),
        rewatch,
        fresh_code(pl.col(FRESH)),
        _fatigue_code(pl.col(FATIGUE)),
        col(CAP_CODE),
        slate,
    )
    return frame.with_columns(codes.list.drop_nulls().alias(ADJUSTMENTS))


def _with_removed(
    slate: pl.DataFrame, removed: pl.DataFrame, leftover: pl.DataFrame, columns: list[str]
) -> pl.DataFrame:
    """The slate plus every left-out candidate with a null rank and its ``removed_reason``."""
    filtered = removed.with_columns(pl.lit(None, dtype=pl.Float64).alias("final_score"))
    rows = [
        slate.with_columns(pl.lit(None, dtype=pl.String).alias(REMOVED_REASON)),
        *(
            part.with_columns(pl.lit(None, dtype=pl.Int32).alias("rank"))
            .drop(*PRIVATE, strict=False)
            .select(*columns, REMOVED_REASON)
            for part in (leftover, filtered)
        ),
    ]
    return pl.concat(rows, how="vertical").sort(
        ["user_id", "rank", "final_score", "video_id"],
        descending=[False, False, True, False],
        nulls_last=True,
    )
