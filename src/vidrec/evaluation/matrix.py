"""From (user, video) pairs to the sparse user x video matrices models and metrics use."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.sparse import csr_matrix

from vidrec.data.ids import IdMap


def interaction_matrix(pairs: pl.DataFrame, users: IdMap, videos: IdMap) -> csr_matrix:
    """Binary float32 CSR ``(len(users), len(videos))`` with a 1 for every listed pair.

    ``pairs`` needs ``user_id`` and ``video_id``; duplicates collapse to one entry and
    pairs whose user or video is outside the vocabularies are left out (callers count
    them when that matters, see :class:`vidrec.evaluation.protocol.EvaluationData`).
    """
    rows = users.to_index(pairs["user_id"])
    cols = videos.to_index(pairs["video_id"])
    known = (rows >= 0) & (cols >= 0)
    rows, cols = rows[known], cols[known]
    X = csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(videos))
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def subtract(A: csr_matrix, B: csr_matrix) -> csr_matrix:
    """Entries of binary ``A`` that are not in binary ``B`` (set difference per row)."""
    out = csr_matrix(A - A.multiply(B > 0))
    out.eliminate_zeros()
    return out


def nonempty_rows(*matrices: csr_matrix) -> np.ndarray:
    """Indices of rows with at least one stored entry in any of ``matrices``."""
    mask = np.zeros(matrices[0].shape[0], dtype=bool)
    for M in matrices:
        mask |= np.diff(csr_matrix(M).indptr) > 0
    return np.flatnonzero(mask)
