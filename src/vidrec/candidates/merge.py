"""Merging the candidates of several generators into one list per request.

Round-robin by rank across generators (rank 1 of each, then rank 2 of each, ...), a video
counted once and kept with every source that found it and each source's score and rank, so
later stages can explain where a candidate came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.candidates.base import Nominations

DEFAULT_QUOTAS: dict[str, int] = {"cowatch": 105, "trending": 0}
"""Per-generator caps for a 300-candidate target (two-tower uncapped), chosen on ML-100K's
validation carve: co-watch 35% of the target; trending only fills lists left short."""


@dataclass(frozen=True)
class Candidates:
    """One request's merged candidates: rows in merged order, and what each source said of them."""

    rows: np.ndarray  # (n,) int64, merged order (rank 1 first)
    sources: tuple[str, ...]  # generator names, merge priority order
    scores: np.ndarray  # (n, S) float64 each source's score, NaN where it did not nominate the row
    ranks: np.ndarray  # (n, S) int64 each source's rank, 0 where it did not nominate the row
    retrieval_source: str = "two_tower"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def retrieval_score(self) -> np.ndarray:
        """(n,) the retrieval source's score (NaN where it did not nominate the row)."""
        if self.retrieval_source not in self.sources:
            return np.full(len(self.rows), np.nan)
        return self.scores[:, self.sources.index(self.retrieval_source)]

    def source_lists(self) -> list[list[str]]:
        """Per row, the sources that nominated it, in priority order."""
        hit = self.ranks > 0
        return [[s for s, h in zip(self.sources, row) if h] for row in hit.tolist()]

    def take(self, positions: np.ndarray) -> Candidates:
        return Candidates(self.rows[positions], self.sources, self.scores[positions], self.ranks[positions],
                          self.retrieval_source)  # fmt: skip


def merge(
    named: list[tuple[str, Nominations]],
    quotas: dict[str, int] | None = None,
    target: int = 200,
    retrieval_source: str = "two_tower",
) -> Candidates:
    """Merge one request's nominations (in priority order) into at most ``target`` candidates.

    A row takes the slot of its first nomination in round-robin order (ties of rank broken
    by priority). ``quotas`` cap how many of its top nominations a source contributes
    (``DEFAULT_QUOTAS`` suit ``target=300``); when the caps leave the list short of
    ``target``, the remaining slots go to the over-quota nominations in the same
    round-robin order. A row nominated by several sources keeps them all.
    """
    return merge_many([named], quotas, target, retrieval_source)[0]


def merge_many(
    named: list[list[tuple[str, Nominations]]],
    quotas: dict[str, int] | None = None,
    target: int = 200,
    retrieval_source: str = "two_tower",
) -> list[Candidates]:
    """:func:`merge` of requests served together (the same sources, in the same order, for
    each): one sort of every nomination of every request, the request first."""
    if target < 1:
        raise ValueError(f"merge: target must be at least 1, got {target}")
    if quotas and min(quotas.values()) < 0:
        raise ValueError(f"merge: quotas must be non-negative, got {quotas}")
    if not named:
        return []
    names = tuple(n for n, _ in named[0])
    if any(tuple(n for n, _ in mine) != names for mine in named):
        raise ValueError("merge_many: every request needs the same sources in the same order")
    s, nreq = len(names), len(named)
    noms = [nom for mine in named for _, nom in mine]  # request-major, then source priority
    lengths = np.array([len(nom) for nom in noms], dtype=np.int64)
    empty = np.zeros((0, s))
    if not lengths.sum():
        return [Candidates(np.zeros(0, np.int64), names, empty, empty.astype(np.int64), retrieval_source)] * nreq
    rows = np.concatenate([nom.rows for nom in noms]).astype(np.int64)
    score = np.concatenate([nom.scores for nom in noms]).astype(np.float64)
    req = np.repeat(np.repeat(np.arange(nreq), s), lengths)
    src = np.repeat(np.tile(np.arange(s), nreq), lengths)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
    quota = np.array([(quotas or {}).get(n, target) for n in names], dtype=np.int64)
    # A source's quota caps how deep into its own list the merge reads before the fill-up; a row
    # counts for every source whose capped prefix holds it.
    order = np.lexsort((src, rank, rank > quota[src], req))
    span = np.int64(rows.max() + 2)
    key = req * span + rows + 1  # (request, row): rows may be -1 (unknown to the catalogue)
    _, first = np.unique(key[order], return_index=True)
    picked = key[order][np.sort(first)]  # by request, then merged order
    picked_req = picked // span
    per_req = np.bincount(picked_req, minlength=nreq)
    within = np.arange(len(picked)) - np.repeat(np.cumsum(per_req) - per_req, per_req)
    picked = picked[within < target]
    by_key = np.argsort(picked)
    pos = np.minimum(np.searchsorted(picked[by_key], key), len(picked) - 1)
    hit = picked[by_key][pos] == key
    slot = by_key[pos[hit]]
    scores = np.full((len(picked), s), np.nan)
    ranks = np.zeros((len(picked), s), dtype=np.int64)
    scores[slot, src[hit]] = score[hit]
    ranks[slot, src[hit]] = rank[hit]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(picked // span, minlength=nreq))])
    picked_rows = picked % span - 1
    return [
        Candidates(picked_rows[a:b], names, scores[a:b], ranks[a:b], retrieval_source)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]


def merge_candidates(
    frames: list[pl.DataFrame],
    quotas: dict[str, int] | None = None,
    target: int = 200,
    retrieval_source: str = "two_tower",
) -> pl.DataFrame:
    """:func:`merge` over generator frames (``user_id, video_id, score, rank, source``), per user.

    Returns ``user_id, video_id, rank`` (merged, 1-based), ``sources`` (list, in frame
    order), ``retrieval_score`` (the ``retrieval_source`` score, null when it did not find
    the video) and ``score_<source>``, ``rank_<source>`` for every source.
    """
    if target < 1:
        raise ValueError(f"merge_candidates: target must be at least 1, got {target}")
    parts = [f.select("user_id", "video_id", "score", "rank", "source") for f in frames if f.height]
    if not parts:
        return _empty(retrieval_source)
    allc = pl.concat(parts, how="vertical_relaxed")
    names = allc["source"].unique(maintain_order=True).to_list()
    ids = allc["video_id"].unique(maintain_order=True)
    allc = allc.with_columns(row=pl.col("video_id").replace_strict(ids, list(range(len(ids))), return_dtype=pl.Int64))
    out = []
    for (user,), mine in allc.sort("rank").group_by("user_id", maintain_order=True):
        named = []
        for name in names:
            part = mine.filter(pl.col("source") == name)
            named.append((name, Nominations(part["row"].to_numpy(), part["score"].to_numpy())))
        got = merge(named, quotas, target, retrieval_source)
        frame = pl.DataFrame({"user_id": user, "video_id": ids.gather(got.rows), "rank": np.arange(1, len(got) + 1),
                              "sources": got.source_lists(),
                              "retrieval_score": pl.Series(got.retrieval_score).fill_nan(None)})  # fmt: skip
        for j, name in enumerate(names):
            frame = frame.with_columns(
                pl.Series(f"score_{name}", got.scores[:, j]).fill_nan(None),
                pl.Series(f"rank_{name}", got.ranks[:, j]).replace(0, None),
            )
        out.append(frame)
    return pl.concat(out).sort("user_id", "rank")


def _empty(retrieval_source: str) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "user_id": pl.String,
            "video_id": pl.String,
            "rank": pl.Int64,
            "sources": pl.List(pl.String),
            "retrieval_score": pl.Float64,
            f"score_{retrieval_source}": pl.Float64,
            f"rank_{retrieval_source}": pl.Int64,
        }
    )
