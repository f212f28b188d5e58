"""Item-to-item features: how close a candidate is to what the user recently completed.

Item-to-item signal is why neighbourhood models (EASE, item kNN) are strong on catalogues
such as MovieLens: "people who completed your last films completed this one". Two views:

* **co-occurrence**: cosine of completion sets across users,
  ``C[i, j] = n(i and j) / sqrt(n(i) * n(j))``, counted only on completions strictly
  before a cut (the start of the ranker's training period), so no training example's
  own outcome is in it; serving reads the same table, as it reads the same two-tower;
* **embedding cosine**: the two-tower video vectors of candidate and history;
* **item regression** (EASE, Steck 2019): the weights of a ridge regression of each video's
  completions on every other's, from the same completions, over the most completed videos,
  so the ranker reads the strongest classical baseline's own score of the candidate.

For each (user state, candidate) the max and mean (for the regression: max and sum, its
score being a sum) over the user's last ``recent`` completed videos are returned (zeros for
an empty history or an unknown video).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse

from vidrec.candidates.ease import item_regression
from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP, with_derived
from vidrec.scoring.base import EmbeddingSource

SIMILARITY_FEATURES: tuple[str, ...] = (
    "hist_cos_max", "hist_cos_mean", "cooc_max", "cooc_mean", "ease_max", "ease_sum",
)  # fmt: skip
_CHUNK = 16_384  # rows per block: (chunk, recent, d) floats at most


def _sorted_csr(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    out = sparse.csr_matrix(matrix)
    out.sort_indices()  # lookups search each row's columns
    return out


class CoOccurrence:
    """Cosine co-occurrence of completed videos across users (sparse, zero diagonal), and the
    item-regression weights ``regression[h, c]``: how a completion of ``h`` predicts one of ``c``."""

    def __init__(self, video_ids: pl.Series, matrix: sparse.csr_matrix,
                 regression: sparse.csr_matrix | None = None) -> None:  # fmt: skip
        self.video_ids = pl.Series("video_id", video_ids, dtype=pl.String)
        self.matrix = _sorted_csr(matrix)
        self.regression = _sorted_csr(regression if regression is not None else sparse.csr_matrix(matrix.shape,
                                                                                                  dtype=np.float32))
        self._lookup = pl.DataFrame({"video_id": self.video_ids, "_i": np.arange(len(self.video_ids), dtype=np.int64)})

    @classmethod
    def build(
        cls,
        events: pl.DataFrame,
        videos: pl.DataFrame,
        before: datetime | None,
        threshold: float = COMPLETION_THRESHOLD,
        min_count: int = 2,
        ease_videos: int = 5_000,
        ease_lambda: float | None = None,
    ) -> CoOccurrence:
        """Count completions strictly before ``before`` (None: none at all, an all-zero table).

        Pairs completed together by fewer than ``min_count`` users are dropped: they are
        noise and they are most of a large catalogue's pairs. The regression covers the
        ``ease_videos`` most completed videos (0: none; its dense solve grows with their
        square), penalised by ``ease_lambda`` (None: :data:`vidrec.candidates.ease.EASE_LAMBDA_SCALE` x their mean
        completions).
        """
        ids = videos["video_id"].unique(maintain_order=True)
        n = len(ids)
        if before is None:
            return cls(ids, sparse.csr_matrix((n, n), dtype=np.float32))
        watch = events.filter((pl.col("event") == "watch") & (pl.col("ts") < pl.lit(before).cast(TIMESTAMP)))
        done = with_derived(watch, videos, threshold).filter(pl.col("completed")).select("user_id", "video_id").unique()
        col = pl.DataFrame({"video_id": ids, "_c": np.arange(n, dtype=np.int64)})
        done = done.join(col, on="video_id", how="inner").with_columns(_r=pl.col("user_id").rank("dense") - 1)
        x = sparse.csr_matrix(
            (np.ones(done.height, dtype=np.float32), (done["_r"].to_numpy(), done["_c"].to_numpy())),
            shape=(int(done["_r"].max() or 0) + 1 if done.height else 0, n),
        )
        co = (x.T @ x).tocoo()  # (n, n) users who completed both
        per_video = np.asarray(x.sum(axis=0)).ravel()
        keep = (co.row != co.col) & (co.data >= min_count)
        r, c = co.row[keep], co.col[keep]
        cos = co.data[keep] / np.sqrt(per_video[r] * per_video[c])
        regression = item_regression(x, ease_videos, ease_lambda)
        return cls(ids, sparse.csr_matrix((cos.astype(np.float32), (r, c)), shape=(n, n)), regression)

    def index(self, video_ids: pl.Series) -> np.ndarray:
        """Row of each id in the table; -1 for ids it does not know."""
        frame = pl.DataFrame({"video_id": pl.Series(video_ids, dtype=pl.String)})
        return frame.join(self._lookup, on="video_id", how="left", maintain_order="left")["_i"].fill_null(-1).to_numpy()

    def lookup_pairs(self, slot_rows: np.ndarray, known: np.ndarray, seg: np.ndarray,
                     cols: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Two float32 ``(len(cols), width)`` blocks, co-occurrence then regression:
        ``T[slot_rows[seg[i] * width + l], cols[i]]`` -- each candidate against the ``width``
        history slots of its own request (``known``: the slots whose row is in the table; 0
        elsewhere and where ``cols`` is -1). One query, one sorted search per table."""
        n = self.matrix.shape[1]
        slots = seg[:, None].astype(np.int64) * width + np.arange(width)[None, :]  # (len(cols), width)
        span = np.int64(n + 1)
        query = slots * span + np.where(cols >= 0, cols, n)[:, None]  # -1 never matches
        rows = slot_rows[known]
        blocks = []
        for m in (self.matrix, self.regression):
            starts, ends = m.indptr[rows], m.indptr[rows + 1]
            lengths = ends - starts
            out = np.zeros((len(cols), width), dtype=np.float32)
            blocks.append(out)
            if not lengths.sum():
                continue
            idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
            keys = np.repeat(known.astype(np.int64), lengths) * span + m.indices[idx]  # sorted: slots, then CSR order
            pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            hit = keys[pos] == query
            out[hit] = m.data[idx][pos[hit]]
        return blocks[0], blocks[1]

    def values(self, rows: np.ndarray, cols: np.ndarray, table: sparse.csr_matrix | None = None) -> np.ndarray:
        """``C[rows, cols]`` elementwise (0 where either index is -1); ``table``: another table
        over the same videos (the regression), default the co-occurrence."""
        ok = (rows >= 0) & (cols >= 0)
        out = np.zeros(len(rows), dtype=np.float32)
        if ok.any():
            out[ok] = np.asarray((self.matrix if table is None else table)[rows[ok], cols[ok]]).ravel()
        return out

    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        sparse.save_npz(root / "cooccurrence.npz", self.matrix)
        sparse.save_npz(root / "regression.npz", self.regression)
        (root / "cooccurrence_ids.json").write_text(json.dumps(self.video_ids.to_list()))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> CoOccurrence:
        root = Path(directory)
        ids = pl.Series("video_id", json.loads((root / "cooccurrence_ids.json").read_text()), dtype=pl.String)
        return cls(ids, sparse.load_npz(root / "cooccurrence.npz"), sparse.load_npz(root / "regression.npz"))


def similarity_features(
    frame: pl.DataFrame, cooc: CoOccurrence, embeddings: EmbeddingSource | None, recent: int
) -> np.ndarray:
    """float32 ``(n, 6)``: :data:`SIMILARITY_FEATURES` of each row of ``frame`` (user_id, video_id, history).

    ``history`` lists completed videos, most recent last; the last ``recent`` are used.
    Without ``embeddings`` the two cosine columns are zero.
    """
    n = frame.height
    out = np.zeros((n, len(SIMILARITY_FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    hist = frame["history"].list.tail(recent)
    vocab = pl.concat([frame["video_id"], hist.explode().drop_nulls()]).unique(maintain_order=True)
    local = pl.DataFrame({"video_id": vocab, "_l": np.arange(len(vocab), dtype=np.int64)})
    cand = frame.select("video_id").join(local, on="video_id", how="left", maintain_order="left")["_l"].to_numpy()
    padded = _padded(hist, local, recent)  # (n, recent), -1 pads
    global_idx = np.append(cooc.index(vocab), -1)  # local -> table row; local -1 -> -1
    unit = np.zeros((len(vocab) + 1, 1), dtype=np.float32)
    if embeddings is not None:
        vec = np.asarray(embeddings.video_vectors(vocab), dtype=np.float32)
        norm = np.linalg.norm(vec, axis=1, keepdims=True)
        unit = np.vstack([vec / np.where(norm > 0, norm, 1.0), np.zeros((1, vec.shape[1]), np.float32)])  # (V+1, d)
    for s in range(0, n, _CHUNK):
        h, c = padded[s : s + _CHUNK], cand[s : s + _CHUNK]  # (b, recent), (b,)
        valid = h >= 0
        count = valid.sum(axis=1)
        pairs = global_idx[h].ravel(), np.repeat(global_idx[c], h.shape[1])
        co = cooc.values(*pairs).reshape(h.shape)
        ease = cooc.values(*pairs, table=cooc.regression).reshape(h.shape)
        cos = np.einsum("bld,bd->bl", unit[h], unit[c]) if embeddings is not None else np.zeros(h.shape, np.float32)
        for j, m in enumerate((cos, co, ease)):
            out[s : s + _CHUNK, 2 * j] = np.where(valid, m, -np.inf).max(axis=1, initial=-np.inf)
            total = np.where(valid, m, 0.0).sum(axis=1)
            out[s : s + _CHUNK, 2 * j + 1] = total if j == 2 else total / np.maximum(count, 1)
    out[~np.isfinite(out)] = 0.0
    return out


def request_similarity(
    candidates: list[np.ndarray], histories: list[np.ndarray], unit: np.ndarray | None, cooc: CoOccurrence,
    cooc_rows: np.ndarray, recent: int,
) -> np.ndarray:
    """float32 ``(sum n, 6)``: :data:`SIMILARITY_FEATURES` of each request's catalogue rows
    ``candidates[b]`` against its ``histories[b]`` (rows, most recent last), requests stacked in
    order: the same values :func:`similarity_features` gives. ``unit`` holds unit video vectors
    by row (None: no cosine), ``cooc_rows`` each row's index in ``cooc`` (-1 unknown).

    Requests served together are computed together: one product of every candidate with
    every request's recent history, one sorted search of the co-occurrence table.
    """
    sizes = np.array([len(c) for c in candidates], dtype=np.int64)
    out = np.zeros((int(sizes.sum()), len(SIMILARITY_FEATURES)), dtype=np.float32)
    recent_h = [h[len(h) - min(recent, len(h)) :] for h in histories]
    width = max((len(h) for h in recent_h), default=0)
    if width == 0 or not len(out):
        return out
    hist = np.full((len(histories), width), -1, dtype=np.int64)  # (requests, width) rows, -1 pads
    for b, h in enumerate(recent_h):
        hist[b, : len(h)] = h
    valid = hist >= 0
    seg = np.repeat(np.arange(len(candidates)), sizes)
    cand = np.concatenate(candidates).astype(np.int64)
    mine = valid[seg]  # (n, width) the slots of each row's own history
    if unit is not None:
        flat = np.where(valid, hist, 0).ravel()
        every = unit[cand] @ unit[flat].T  # (n, requests * width)
        cols = seg[:, None] * width + np.arange(width)[None, :]
        cos = np.take_along_axis(every, cols, axis=1)
    else:
        cos = np.zeros(mine.shape, dtype=np.float32)
    co, ease = np.zeros(mine.shape, dtype=np.float32), np.zeros(mine.shape, dtype=np.float32)
    slot_rows = np.where(valid, cooc_rows[np.where(valid, hist, 0)], -1).ravel()  # (requests * width,)
    known = np.flatnonzero(slot_rows >= 0)
    ci = cooc_rows[cand]
    if len(known) and (ci >= 0).any():
        co_block, ease_block = cooc.lookup_pairs(slot_rows, known, seg, ci, width)  # (n, width) each
        co, ease = np.where(mine, co_block, 0.0), np.where(mine, ease_block, 0.0)
    count = np.maximum(mine.sum(axis=1), 1)
    has = mine.any(axis=1)
    for j, m in enumerate((cos, co, ease)):
        out[:, 2 * j] = np.where(has, np.where(mine, m, -np.inf).max(axis=1), 0.0)
        total = np.where(mine, m, 0.0).sum(axis=1)
        out[:, 2 * j + 1] = total if j == 2 else total / count
    return out


def _padded(hist: pl.Series, local: pl.DataFrame, width: int) -> np.ndarray:
    """(n, width) local indices of each history (oldest first, left-aligned), -1 pads."""
    lengths = hist.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = pl.DataFrame({"video_id": hist.explode().drop_nulls()})
    idx = flat.join(local, on="video_id", how="left", maintain_order="left")["_l"].to_numpy()
    out = np.full((len(lengths), width), -1, dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, np.arange(len(idx)) - starts] = idx
    return out
