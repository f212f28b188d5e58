"""EASE candidates: the closed-form item-item regression as a generator.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) regresses every
video's audience on every other's with a ridge penalty and a zero diagonal:
``P = (X^T X + lambda I)^-1``, ``B = -P / diag(P)`` column-wise; a user's scores are ``x_u B``.
On catalogues like MovieLens it is the strongest classical baseline, so the system nominates
with it too. The dense solve grows with the cube of the videos it covers, so it covers the
``videos`` most watched ones and keeps each one's ``neighbours`` largest weights: serving sums
the weights of the user's recent videos (:class:`~vidrec.candidates.neighbours.NeighbourGenerator`),
the EASE score restricted to that history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from scipy import sparse

from vidrec.candidates.neighbours import EMPTY, SIGNALS, NeighbourGenerator, pair_matrix, top_per_row
from vidrec.data.dataset import Dataset

EASE_LAMBDA_SCALE = 5.0
"""The L2 penalty as a multiple of the mean audience of the regression's videos (the Gram
diagonal), so it scales with the log: 5 x gives about the lambda tuned EASE picks on ML-100K."""
EASE_KEEP = 256  # largest weights (by magnitude) kept per video: the sparse table serving reads


@dataclass(frozen=True)
class EaseConfig:
    """Which interactions the regression learns from, how many videos it covers, how a history votes."""

    signal: str = "watched"  # "completed" videos or every "watched" one
    videos: int = 5_000  # the most watched videos in the regression: its solve costs videos^3, memory videos^2
    lambda_: float | None = None  # ridge penalty; None: EASE_LAMBDA_SCALE x the mean audience of those videos
    neighbours: int = EASE_KEEP  # largest weights kept per video
    history: int = 50  # the user's last N videos (of ``signal``) that vote
    recency_decay: float = 1.0  # the i-th most recent video's vote weighs decay^i (1: EASE's plain sum)

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"ease.signal must be one of {SIGNALS}, got {self.signal!r}")
        if self.videos < 2 or self.neighbours < 1 or self.history < 1:
            raise ValueError("ease.videos must be at least 2, ease.neighbours and ease.history at least 1")
        if self.lambda_ is not None and not self.lambda_ > 0:
            raise ValueError(f"ease.lambda_ must be positive or None, got {self.lambda_}")
        if not 0.0 < self.recency_decay <= 1.0:
            raise ValueError(f"ease.recency_decay must lie in (0, 1], got {self.recency_decay}")


def item_regression(
    x: sparse.csr_matrix, most: int, lam: float | None = None, keep: int = EASE_KEEP
) -> sparse.csr_matrix:
    """EASE weights ``(n, n)`` from a binary users x videos matrix ``x``, over its ``most`` most
    interacted videos (the rest have none), zero diagonal; the ``keep`` largest weights by
    magnitude per row kept."""
    n = x.shape[1]
    per_video = np.asarray(x.sum(axis=0)).ravel()
    top = np.sort(np.argsort(-per_video, kind="stable")[: min(most, n)])
    top = top[per_video[top] > 0]
    if len(top) < 2:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    sub = x[:, top]
    gram = (sub.T @ sub).toarray().astype(np.float64)  # (m, m)
    diag = np.diag_indices_from(gram)
    gram[diag] += EASE_LAMBDA_SCALE * float(per_video[top].mean()) if lam is None else lam
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))[None, :]
    b[diag] = 0.0
    keep = min(keep, len(top) - 1)
    cols = np.argpartition(-np.abs(b), keep - 1, axis=1)[:, :keep]  # (m, keep) per row
    vals = np.take_along_axis(b, cols, axis=1)
    rows = np.repeat(top, keep)
    return sparse.csr_matrix((vals.ravel().astype(np.float32), (rows, top[cols].ravel())), shape=(n, n))


class EaseGenerator(NeighbourGenerator):
    """The EASE score of the user's recent videos, over the most watched part of the catalogue."""

    name = "ease"
    config_type = EaseConfig

    def similarity(self, train: Dataset, now: datetime) -> pl.DataFrame:
        cfg = self.config
        pairs = self.signal_watches(train, now).select("user_id", "video_id").unique().with_columns(w=pl.lit(1.0))
        if pairs.height == 0:
            return EMPTY
        items, x = pair_matrix(pairs)
        weights = item_regression(x, cfg.videos, cfg.lambda_, cfg.neighbours).tocoo()
        src, dst, sim = top_per_row(weights.row.astype(np.int64), weights.col.astype(np.int64),
                                    weights.data.astype(np.float64), cfg.neighbours)  # fmt: skip
        return pl.DataFrame({"video_id": items.gather(src), "neighbour_id": items.gather(dst), "sim": sim})
