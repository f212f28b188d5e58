"""The default re-ranker: hard rules, score adjustments, slate objectives, explanations."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Self

import numpy as np
import polars as pl

from vidrec.catalogue import Catalogue
from vidrec.data.schema import epoch_us
from vidrec.features.live import LiveCounts
from vidrec.request import Pairs, Request, from_lists
from vidrec.reranking.base import ADJUSTMENTS, REMOVED_REASON, ReRanker, check_inputs
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.history import check_events, completions, creator_watches, last_dislikes, user_events
from vidrec.reranking.select import RequestReRanker, RowVectors, Slate

_LISTS = ("recent_completed", "recent_watched", "seen", "disliked")


class DefaultReRanker(ReRanker):
    """Stage 3 as configured by :class:`ReRankConfig`.

    Steps (per request, :mod:`vidrec.reranking.select`):
      1. hard rules: drop disliked, seen (unless the re-watch policy allows), unavailable
         or unknown videos, and creators the user's dislikes hide (strong evidence, in the
         fatigue filter period: :mod:`vidrec.reranking.fatigue`);
      2. ``final_score`` = score x freshness boost x creator-fatigue factor;
      3. the slate: the greedy of :mod:`slate` (diversity, calibration, fresh and fair
         minimums, creator cap) when any of those objectives is on, else the creator cap
         in final-score order;
      4. explanations: each candidate's ``adjustments`` lists what moved it.

    Example:
        >>> rr = DefaultReRanker(ReRankConfig(diversity="dpp", diversity_weight=0.5))
        >>> slate = rr.rerank(scored, users, videos, now, k=10, events=events)  # doctest: +SKIP
    """

    def __init__(self, config: ReRankConfig | None = None) -> None:
        self.config = config or ReRankConfig()
        self._bound: RequestReRanker | None = None
        self._frames: tuple[pl.DataFrame, Catalogue] | None = None  # the last videos frame -> its catalogue

    def bind(self, catalogue: Catalogue, live: LiveCounts | None = None, vectors: RowVectors | None = None) -> Self:
        """Re-rank requests over ``catalogue``; ``vectors`` gives video embeddings by row (diversity)."""
        self._bound = RequestReRanker(self.config, catalogue, live, vectors)
        return self

    def rerank_request(self, request: Request, rows: np.ndarray, scores: np.ndarray, k: int) -> Slate:
        """The slate of one hydrated request from its scored candidates (catalogue rows)."""
        if self._bound is None:
            raise RuntimeError("DefaultReRanker: bind(catalogue) before re-ranking requests")
        return self._bound.rerank(request, rows, scores, k)

    def rerank_requests(self, requests: list[Request], rows: list[np.ndarray], scores: list[np.ndarray],
                        ks: list[int]) -> list[Slate]:  # fmt: skip
        """:meth:`rerank_request` of requests served together (the slate greedy runs once for all)."""
        if self._bound is None:
            raise RuntimeError("DefaultReRanker: bind(catalogue) before re-ranking requests")
        return self._bound.rerank_many(requests, rows, scores, ks)

    # ---- frames of many users (offline use and tests) --------------------------------------

    def rerank(
        self,
        scored: pl.DataFrame,
        users: pl.DataFrame,
        videos: pl.DataFrame,
        now: datetime,
        k: int,
        debug: bool = False,
        events: pl.DataFrame | None = None,
        video_vectors=None,  # type: ignore[no-untyped-def]
    ) -> pl.DataFrame:
        """See :meth:`ReRanker.rerank`; removed rows (debug) come after each user's slate."""
        check_inputs(scored, users, videos, now, k)
        catalogue = self._catalogue(videos)
        now_us = epoch_us(now)
        requests = self._requests(scored, users, videos, now, now_us, k, events, catalogue)
        live = self._creator_watches(events, videos, now, catalogue)
        vectors = None
        if video_vectors is not None:

            def vectors(rows: np.ndarray) -> np.ndarray:
                return np.asarray(video_vectors(pl.Series("video_id", catalogue.ids_of(rows), dtype=pl.String)))

        core = RequestReRanker(self.config, catalogue, live, vectors)
        frame = (
            scored
            if ADJUSTMENTS in scored.columns
            else scored.with_columns(pl.lit([], pl.List(pl.String)).alias(ADJUSTMENTS))
        )
        columns = _output_columns(scored.columns)
        out = []
        for (user,), mine in frame.with_row_index("__i").group_by("user_id", maintain_order=True):
            rows = catalogue.rows(mine["video_id"].to_list())
            slate = core.rerank(requests[user], rows, mine["score"].cast(pl.Float64).to_numpy(), k,
                                prior=mine[ADJUSTMENTS].to_list())  # fmt: skip
            out.append(_frame(mine, slate, debug))
        result = pl.concat(out, how="vertical") if out else frame.head(0).with_columns(
            pl.lit(None, pl.Int32).alias("rank"), pl.lit(None, pl.Float64).alias("final_score"),
            pl.lit(None, pl.String).alias(REMOVED_REASON))  # fmt: skip
        if not debug:
            return result.sort("user_id", "rank").select(columns)
        return result.select(*columns, REMOVED_REASON).sort(
            ["user_id", "rank", "final_score", "video_id"], descending=[False, False, True, False], nulls_last=True
        )

    def _catalogue(self, videos: pl.DataFrame) -> Catalogue:
        if self._frames is None or self._frames[0] is not videos:
            self._frames = (videos, Catalogue(videos.unique(subset="video_id", keep="first", maintain_order=True)))
        return self._frames[1]

    def _requests(
        self, scored: pl.DataFrame, users: pl.DataFrame, videos: pl.DataFrame, now: datetime,
        now_us: int, k: int, events: pl.DataFrame | None, catalogue: Catalogue,
    ) -> dict[str, Request]:  # fmt: skip
        """One request per user of ``scored``: the state lists of ``users``, the history of ``events``."""
        ids = scored["user_id"].unique(maintain_order=True)
        state = {r["user_id"]: r for r in users.filter(pl.col("user_id").is_in(ids.implode())).iter_rows(named=True)}
        dislikes: dict[str, list[tuple]] = {}
        done: dict[str, list[tuple]] = {}
        if events is not None:
            check_events(events)
            mine = user_events(events, ids, now)
            for u, c, last, n in last_dislikes(mine, videos).rows():
                dislikes.setdefault(u, []).append((c, last, n))
            for u, v, last in completions(mine, videos).rows():
                done.setdefault(u, []).append((v, last))
        elif "disliked_at" in users.columns:
            for u, vids, times in users.select("user_id", "disliked", "disliked_at").rows():
                rows = catalogue.rows(vids or [])
                for r, t in zip(rows, times or []):
                    if r >= 0 and t is not None and epoch_us(t) < now_us:
                        name = catalogue.creators.names[catalogue.creator[r]]
                        dislikes.setdefault(u, []).append((name, epoch_us(t), 1))
        out = {}
        for u in ids.to_list():
            lists = {c: (state.get(u) or {}).get(c) or [] for c in _LISTS}
            request = from_lists(u, lists, catalogue, now_us, k)
            out[u] = dataclasses.replace(request, pairs={"creator": _creator_pairs(dislikes.get(u, []), catalogue)},
                                         **_completed(done.get(u, []), catalogue))  # fmt: skip
        return out

    def _creator_watches(self, events: pl.DataFrame | None, videos: pl.DataFrame, now: datetime,
                         catalogue: Catalogue) -> LiveCounts | None:  # fmt: skip
        """Watches per creator in ``events`` (the fairness minimum's small creators), or None."""
        if events is None or self.config.fair_min_share <= 0:
            return None
        live = LiveCounts(catalogue)
        watches = creator_watches(events, videos, now)
        codes = catalogue.creators.lookup(watches["creator_id"].to_list()).astype(np.int64)
        table = np.zeros(len(catalogue.creators), dtype=np.int64)
        np.add.at(table, codes[codes >= 0], watches["watches"].to_numpy()[codes >= 0])
        live.views["creator"] = table
        return live


def _creator_pairs(items: list[tuple], catalogue: Catalogue) -> Pairs:
    """The creator table of a request from ``(creator, dislike time, dislikes)`` items: per creator the
    dislikes (the store's second count) and the latest time; views are not needed here (0)."""
    if not items:
        return Pairs.empty()
    best: dict[int, int] = {}
    count: dict[int, int] = {}
    for creator, last, n in items:
        code = int(catalogue.creators.lookup([creator])[0])
        if code >= 0:
            best[code] = max(best.get(code, last), last)
            count[code] = count.get(code, 0) + int(n)
    codes = np.array(sorted(best), dtype=np.int32)
    counts = np.zeros((len(codes), 3), np.int64)
    counts[:, 1] = [count[c] for c in codes.tolist()]
    return Pairs(codes, counts, np.array([best[c] for c in codes], dtype=np.int64))


def _completed(items: list[tuple], catalogue: Catalogue) -> dict[str, np.ndarray]:
    rows = catalogue.rows([v for v, _ in items])
    last = np.array([t for _, t in items], dtype=np.int64)
    keep = rows >= 0
    order = np.argsort(rows[keep])
    return {"completed": rows[keep][order], "last_watched_us": last[keep][order]}


def _frame(mine: pl.DataFrame, slate: Slate, debug: bool) -> pl.DataFrame:
    """One user's candidates with rank, final score, adjustments and (debug) removal reasons."""
    rank = np.zeros(mine.height, dtype=np.int64)
    rank[slate.order] = np.arange(1, len(slate.order) + 1)
    out = mine.drop("__i").with_columns(
        pl.Series("rank", rank, dtype=pl.Int32).replace(0, None),
        pl.Series("final_score", slate.final_score, dtype=pl.Float64).fill_nan(None),
        pl.Series(ADJUSTMENTS, slate.adjustments, dtype=pl.List(pl.String)),
        pl.Series(REMOVED_REASON, slate.reasons, dtype=pl.String),
    )
    return out if debug else out.filter(pl.col("rank").is_not_null())


def _output_columns(inputs: list[str]) -> list[str]:
    """user_id, rank, video_id, final_score, the other input columns, adjustments."""
    rest = [c for c in inputs if c not in ("user_id", "video_id", ADJUSTMENTS)]
    return ["user_id", "rank", "video_id", "final_score", *rest, ADJUSTMENTS]
