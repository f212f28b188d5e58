"""Item-to-item candidates: videos co-completed with the ones the user just completed.

The similarity of two videos comes from how many users completed both (``X^T X`` over a
binary user x video matrix), normalised so that popular videos do not neighbour everything,
and cut to each video's top-N neighbours. A user's candidates are the neighbours of their
last N completed videos, each vote weighted by the similarity and by how recent it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix, csr_matrix

from vidrec.candidates.common import age_days, decay
from vidrec.candidates.neighbours import EMPTY, SIGNALS, NeighbourGenerator, pair_matrix, top_per_row
from vidrec.data.dataset import Dataset

NORMALISATIONS = ("cosine", "lift", "conditional", "count")


@dataclass(frozen=True)
class CoWatchConfig:
    """How co-watching becomes similarity, and how a user's history votes."""

    signal: str = "watched"  # pairs that count: "completed" videos or every "watched" one
    normalisation: str = "cosine"  # cosine: c/sqrt(n_i n_j); lift: c/(n_i n_j); conditional: c/n_i
    shrinkage: float = 10.0  # added to the denominator: pairs seen by few users count less
    neighbours: int = 100  # top-N most similar videos kept per video
    history: int = 50  # the user's last N videos (of ``signal``) that vote
    recency_decay: float = 0.9  # the i-th most recent video's vote weighs decay^i
    half_life_days: float | None = None  # co-watches older than this count half (None: no decay)
    min_support: int = 1  # pairs co-watched by fewer users are dropped

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"cowatch.signal must be one of {SIGNALS}, got {self.signal!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"cowatch.normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}")
        if self.shrinkage < 0:
            raise ValueError(f"cowatch.shrinkage must be non-negative, got {self.shrinkage}")
        if self.neighbours < 1 or self.history < 1 or self.min_support < 1:
            raise ValueError("cowatch.neighbours, cowatch.history and cowatch.min_support must be at least 1")
        if not 0.0 < self.recency_decay <= 1.0:
            raise ValueError(f"cowatch.recency_decay must lie in (0, 1], got {self.recency_decay}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"cowatch.half_life_days must be positive or None, got {self.half_life_days}")


BLOCK_PRODUCTS = 10_000_000  # user-level co-watch products per block of videos: bounds the fit's memory


def item_similarity(pairs: pl.DataFrame, config: CoWatchConfig, block_products: int = BLOCK_PRODUCTS) -> pl.DataFrame:
    """``video_id, neighbour_id, sim`` from weighted ``user_id, video_id, w`` pairs.

    Top ``config.neighbours`` per video, best first; a video is never its own neighbour.
    The co-watch counts ``X^T X`` are formed for a block of videos at a time and cut to their
    top neighbours at once, so memory follows ``block_products`` (the users' co-watch products
    one block makes), not the square of the catalogue.
    """
    if pairs.height == 0:
        return EMPTY
    items, X = pair_matrix(pairs)
    shape = X.shape
    XT = X.T.tocsr()  # (videos, users)
    n = np.asarray(X.multiply(X).sum(axis=0)).ravel()  # each video's own (weighted) audience: diag(X^T X)
    B = csr_matrix((np.ones(X.nnz), X.indices, X.indptr), shape=shape)  # who watched what
    BT = B.T.tocsr()
    work = BT @ np.diff(X.indptr).astype(np.float64)  # products each video's row of X^T X costs
    blocks = []
    for a, b in _blocks(work, block_products):
        gram = coo_matrix(XT[a:b] @ X)  # rows a..b of the (videos, videos) weighted co-watch counts
        i, j, c = gram.row, gram.col, gram.data
        keep = (i + a != j) & (c > 0)
        if config.min_support > 1:
            support = (BT[a:b] @ B).tocsr()
            keep &= np.asarray(support[i, j]).ravel() >= config.min_support
        i, j, c = i[keep] + a, j[keep], c[keep]
        blocks.append(top_per_row(i, j, _normalise(c, n[i], n[j], config), config.neighbours))
    i, j, sim = (np.concatenate(parts) for parts in zip(*blocks))
    if len(i) == 0:
        return EMPTY
    return pl.DataFrame({"video_id": items.gather(i), "neighbour_id": items.gather(j), "sim": sim})


def _blocks(work: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges whose summed ``work`` stays near ``budget`` (at least one row each)."""
    total = np.cumsum(work)
    cuts = [0]
    while cuts[-1] < len(work):
        a = cuts[-1]
        base = total[a - 1] if a else 0.0
        cuts.append(max(a + 1, int(np.searchsorted(total, base + budget, side="right"))))
    return list(zip(cuts[:-1], cuts[1:]))


def _normalise(c: np.ndarray, ni: np.ndarray, nj: np.ndarray, config: CoWatchConfig) -> np.ndarray:
    shrink = config.shrinkage
    if config.normalisation == "cosine":
        return c / (np.sqrt(ni * nj) + shrink)
    if config.normalisation == "lift":
        return c / (ni * nj + shrink)
    if config.normalisation == "conditional":
        return c / (ni + shrink)
    return c.astype(np.float64)


class CoWatchGenerator(NeighbourGenerator):
    """Neighbours of the user's last completed videos in the co-completion graph."""

    name = "cowatch"
    config_type = CoWatchConfig

    def similarity(self, train: Dataset, now: datetime) -> pl.DataFrame:
        cfg = self.config
        ev = self.signal_watches(train, now)
        w = pl.lit(1.0) if cfg.half_life_days is None else decay(age_days("ts", now), cfg.half_life_days)
        pairs = ev.group_by("user_id", "video_id").agg(w=w.max())
        return item_similarity(pairs, cfg)
