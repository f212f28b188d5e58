"""The default re-ranker: hard filters, freshness boost, creator cap, explanations."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from vidrec.reranking.base import ADJUSTMENTS, REMOVED_REASON, ReRanker, check_inputs
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.diversity import BLOCKED, CAP_CODE, POS, cap_creators, order_by_score
from vidrec.reranking.filters import CATALOGUE_COLUMNS, apply_hard_filters
from vidrec.reranking.freshness import FRESH, apply_freshness, fresh_code

_EMPTY_CODES = pl.lit([], dtype=pl.List(pl.String))


class DefaultReRanker(ReRanker):
    """Stage 3 as configured by :class:`ReRankConfig`.

    Steps, all vectorised over every user at once:
      1. hard filters: drop disliked, seen and unavailable/unknown videos;
      2. freshness: ``final_score`` = score boosted by upload age;
      3. creator cap: greedy in final-score order, window by window;
      4. explanations: each returned row's ``adjustments`` lists what moved it.

    Example:
        >>> rr = DefaultReRanker(ReRankConfig(fresh_boost=0.3))
        >>> slate = rr.rerank(scored, users, videos, now, k=10)  # doctest: +SKIP
    """

    def __init__(self, config: ReRankConfig | None = None) -> None:
        self.config = config or ReRankConfig()

    def rerank(
        self,
        scored: pl.DataFrame,
        users: pl.DataFrame,
        videos: pl.DataFrame,
        now: datetime,
        k: int,
        debug: bool = False,
    ) -> pl.DataFrame:
        """See :meth:`ReRanker.rerank`; removed rows (debug) come after each user's slate."""
        check_inputs(scored, users, videos, now, k)
        cfg = self.config
        frame = scored
        if ADJUSTMENTS not in scored.columns:
            frame = scored.with_columns(_EMPTY_CODES.alias(ADJUSTMENTS))
        columns = _output_columns(scored.columns)
        allowed, removed = apply_hard_filters(frame, users, videos)
        boosted = apply_freshness(allowed, now, cfg.fresh_boost, cfg.fresh_half_life_days)
        slate, leftover = cap_creators(
            order_by_score(boosted),
            k,
            cfg.creator_cap,
            cfg.creator_window,
            backfill=cfg.creator_backfill,
            leftover=debug,
        )
        out = _explain(slate).sort("user_id", "rank").select(columns)
        if leftover is None:
            return out
        return _with_removed(out, removed, _explain(leftover), columns)


def _output_columns(inputs: list[str]) -> list[str]:
    """user_id, rank, video_id, final_score, the other input columns, adjustments."""
    rest = [c for c in inputs if c not in ("user_id", "video_id", ADJUSTMENTS)]
    return ["user_id", "rank", "video_id", "final_score", *rest, ADJUSTMENTS]


def _explain(frame: pl.DataFrame) -> pl.DataFrame:
    """Write ``adjustments``: earlier codes, then freshness, then the creator cap."""
    cap = pl.col(CAP_CODE) if CAP_CODE in frame.columns else pl.lit(None, dtype=pl.String)
    codes = pl.concat_list(pl.col(ADJUSTMENTS).fill_null(_EMPTY_CODES), fresh_code(pl.col(FRESH)), cap)
    return frame.with_columns(codes.list.drop_nulls().alias(ADJUSTMENTS))


def _with_removed(
    slate: pl.DataFrame, removed: pl.DataFrame, leftover: pl.DataFrame, columns: list[str]
) -> pl.DataFrame:
    """The slate plus every left-out candidate with a null rank and its ``removed_reason``."""
    reason = pl.when(pl.col(BLOCKED)).then(pl.lit("creator_cap")).otherwise(pl.lit("below_cutoff"))
    cut = leftover.with_columns(reason.alias(REMOVED_REASON))
    filtered = removed.with_columns(pl.lit(None, dtype=pl.Float64).alias("final_score"))
    rows = [
        slate.with_columns(pl.lit(None, dtype=pl.String).alias(REMOVED_REASON)),
        *(
            part.with_columns(pl.lit(None, dtype=pl.Int32).alias("rank"))
            .drop(*CATALOGUE_COLUMNS, POS, BLOCKED, FRESH, strict=False)
            .select(*columns, REMOVED_REASON)
            for part in (cut, filtered)
        ),
    ]
    return pl.concat(rows, how="vertical").sort(
        ["user_id", "rank", "final_score", "video_id"],
        descending=[False, False, True, False],
        nulls_last=True,
    )
