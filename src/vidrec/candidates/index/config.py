"""How the nearest-neighbour index is built and tuned, chosen by corpus size by default."""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("auto", "flat", "hnsw", "ivfpq")


@dataclass(frozen=True)
class IndexConfig:
    """FAISS structure and search-parameter tuning; every structure scores by inner product.

    ``auto`` picks exact search (``flat``) below ``flat_max`` videos, a graph (``hnsw``) up to
    ``hnsw_max``, and IVF with product quantisation plus exact re-scoring (``ivfpq``) above.
    Approximate indexes tune ``ef_search`` / ``nprobe`` at build time until recall@``tune_k``
    against exact search reaches ``target_recall`` (0 turns tuning off).
    """

    kind: str = "auto"
    flat_max: int = 50_000  # auto: exact search below this many vectors
    hnsw_max: int = 2_000_000  # auto: HNSW up to this many, IVF-PQ above
    hnsw_m: int = 32  # graph degree
    ef_construction: int = 200
    ef_search: int = 128  # HNSW candidate list for tune_k results (scaled for larger k)
    ivf_nlist: int = 0  # IVF cells; 0 = 2 * sqrt(n)
    nprobe: int = 16  # IVF cells visited per query (before tuning)
    pq_m: int = 0  # PQ sub-quantisers; 0 = dim // 4 (must divide dim); re-scoring restores precision
    pq_bits: int = 8  # bits per sub-quantiser code
    rescore_factor: int = 4  # IVF-PQ: factor * k candidates re-scored with the full vectors
    train_per_cell: int = 64  # IVF training sample: this many vectors per cell
    target_recall: float = 0.98
    tune_k: int = 100
    tune_queries: int = 500  # sampled from the indexed vectors when no queries are given
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"IndexConfig.kind must be one of {KINDS}, got {self.kind!r}")
        positive = ("hnsw_m", "ef_construction", "ef_search", "nprobe", "pq_bits", "rescore_factor")
        positive += ("train_per_cell", "tune_k", "tune_queries", "flat_max")
        bad = [name for name in positive if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"IndexConfig: {', '.join(bad)} must be at least 1")
        if self.ivf_nlist < 0 or self.pq_m < 0:
            raise ValueError("IndexConfig: ivf_nlist and pq_m must be >= 0 (0 = chosen from the data)")
        if self.hnsw_max < self.flat_max:
            raise ValueError(f"IndexConfig: hnsw_max ({self.hnsw_max}) must be >= flat_max ({self.flat_max})")
        if not 0.0 <= self.target_recall <= 1.0:
            raise ValueError(f"IndexConfig.target_recall must be in [0, 1], got {self.target_recall}")
        if self.pq_bits > 16:
            raise ValueError(f"IndexConfig.pq_bits must be at most 16, got {self.pq_bits}")

    def resolve_kind(self, n: int) -> str:
        """The structure to build for ``n`` vectors."""
        if self.kind != "auto":
            return self.kind
        if n < self.flat_max:
            return "flat"
        return "hnsw" if n <= self.hnsw_max else "ivfpq"

    def ivf_shape(self, n: int, dim: int) -> tuple[int, int, int]:
        """(nlist, pq_m, pq_bits) for ``n`` vectors of ``dim``, shrunk so training data suffices."""
        nlist = self.ivf_nlist or max(1, round(2 * math.sqrt(n)))
        nlist = max(1, min(nlist, n // 39))  # FAISS k-means wants >= 39 points per centroid
        pq_m = self.pq_m or max(1, dim // 4)
        if dim % pq_m:
            raise ValueError(f"IndexConfig.pq_m={pq_m} must divide the embedding dimension {dim}")
        bits = max(1, min(self.pq_bits, int(math.log2(max(2, n // 39)))))
        return nlist, pq_m, bits
