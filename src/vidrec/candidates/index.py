"""Top-K inner-product indexes over video embeddings: an exact numpy oracle and FAISS.

Both score by inner product, as the two-tower model does with normalised vectors. Queries
can exclude ids per row (the user's seen videos) and for every row (unavailable or not yet
uploaded videos); FAISS over-fetches so that exclusions never shorten a result.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Exclusions:
    """Ids to exclude per query row in CSR form: row i excludes ``ids[offsets[i]:offsets[i+1]]``."""

    offsets: np.ndarray  # (n + 1,) int64
    ids: np.ndarray  # (nnz,) int64

    @classmethod
    def from_sets(cls, sets: list[set[int]]) -> "Exclusions":
        """From one Python set per row (convenient for small calls and tests)."""
        lengths = np.array([len(s) for s in sets], dtype=np.int64)
        ids = np.fromiter((i for s in sets for i in s), dtype=np.int64, count=int(lengths.sum()))
        return cls(np.concatenate([[0], np.cumsum(lengths)]), ids)

    @classmethod
    def from_lists(cls, lists: pl.Series) -> "Exclusions":
        """From a list[int] column (nulls are skipped), without a Python loop over rows."""
        lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
        ids = lists.explode().drop_nulls().to_numpy().astype(np.int64)
        if len(ids) != lengths.sum():  # nulls inside lists: fall back to exact counting
            clean = lists.list.drop_nulls()
            lengths = clean.list.len().fill_null(0).to_numpy().astype(np.int64)
            ids = clean.explode().drop_nulls().to_numpy().astype(np.int64)
        return cls(np.concatenate([[0], np.cumsum(lengths)]), ids)

    def rows(self) -> np.ndarray:
        """The query row of each excluded id."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    def max_per_row(self) -> int:
        return int(np.diff(self.offsets).max(initial=0))


def _as_exclusions(exclude: list[set[int]] | Exclusions | None, n: int) -> Exclusions:
    if exclude is None:
        return Exclusions(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    out = exclude if isinstance(exclude, Exclusions) else Exclusions.from_sets(exclude)
    if len(out.offsets) != n + 1:
        raise ValueError(f"exclusions cover {len(out.offsets) - 1} rows but there are {n} queries")
    return out


class TopKIndex(ABC):
    """Inner-product top-K over (id, vector) pairs with per-query exclusions and masking."""

    is_exact: bool

    def __init__(self) -> None:
        self._ids = np.zeros(0, dtype=np.int64)
        self._blocked = np.zeros(0, dtype=np.int64)  # sorted ids never returned

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, d) under non-negative int64 ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"add: expected ids (n,) and vectors (n, d), got {ids.shape} and {vectors.shape}")
        if len(ids) and ids.min() < 0:
            raise ValueError("add: ids must be non-negative")
        if len(np.union1d(self._ids, ids)) != len(self._ids) + len(ids):
            raise ValueError("add: ids must be unique and not already in the index")
        self._add(vectors)
        self._ids = np.concatenate([self._ids, ids])

    def remove(self, ids: np.ndarray) -> None:
        """Mask ``ids`` (e.g. unavailable videos): they are never returned until restored."""
        self._blocked = np.union1d(self._blocked, np.asarray(ids, dtype=np.int64))

    def restore(self, ids: np.ndarray) -> None:
        """Undo :meth:`remove` for ``ids``."""
        self._blocked = np.setdiff1d(self._blocked, np.asarray(ids, dtype=np.int64))

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: list[set[int]] | Exclusions | None = None,
        blocked: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product: scores float32 (n, k) and ids int64 (n, k), best first.

        ``exclude`` removes ids per query row, ``blocked`` for every row (on top of
        :meth:`remove`). Rows with fewer than ``k`` eligible ids are padded with id -1 and
        score -inf.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2:
            raise ValueError(f"search: queries must be (n, d), got shape {queries.shape}")
        if k < 1:
            raise ValueError(f"search: k must be at least 1, got {k}")
        excl = _as_exclusions(exclude, len(queries))
        block = self._blocked if blocked is None else np.union1d(self._blocked, blocked)
        if len(self._ids) == 0:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        return self._search(queries, k, excl, block)

    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _search(
        self, queries: np.ndarray, k: int, excl: Exclusions, blocked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and scores of the k best per row, best first (ties by position)."""
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    pos = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, pos, axis=1), pos


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to k columns; entries with -inf score become id -1."""
    n, have = scores.shape
    if have < k:
        scores = np.hstack([scores, np.full((n, k - have), -np.inf, scores.dtype)])
        ids = np.hstack([ids, np.full((n, k - have), -1, np.int64)])
    ids = np.where(np.isneginf(scores), -1, ids)
    return scores.astype(np.float32), ids


class ExactIndex(TopKIndex):
    """Brute force: one matmul and an argpartition. The oracle for approximate indexes."""

    is_exact = True

    def __init__(self) -> None:
        super().__init__()
        self._vectors = np.zeros((0, 0), dtype=np.float32)

    def _add(self, vectors: np.ndarray) -> None:
        self._vectors = vectors if self._vectors.size == 0 else np.vstack([self._vectors, vectors])

    def _search(
        self, queries: np.ndarray, k: int, excl: Exclusions, blocked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self._vectors.T  # (n, N)
        scores[:, np.isin(self._ids, blocked)] = -np.inf
        order = np.argsort(self._ids, kind="stable")
        pos = np.searchsorted(self._ids[order], excl.ids)
        pos = np.clip(pos, 0, len(order) - 1)
        hit = self._ids[order][pos] == excl.ids
        scores[excl.rows()[hit], order[pos[hit]]] = -np.inf
        top_scores, top_pos = _top_k(scores, k)
        return _pad(top_scores, self._ids[top_pos], k)

    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        np.savez(root / "exact_index.npz", ids=self._ids, vectors=self._vectors, blocked=self._blocked)
        return root

    @classmethod
    def load(cls, directory: str | Path) -> "ExactIndex":
        data = np.load(Path(directory) / "exact_index.npz")
        index = cls()
        index._ids, index._vectors, index._blocked = data["ids"], data["vectors"], data["blocked"]
        return index


@dataclass(frozen=True)
class IndexConfig:
    """Which FAISS structure to build: ``flat`` (exact) or ``hnsw`` (approximate)."""

    kind: str = "flat"
    hnsw_m: int = 32  # graph degree
    ef_construction: int = 200
    ef_search: int = 128  # raised per query to at least the number fetched

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "hnsw"):
            raise ValueError(f"IndexConfig.kind must be 'flat' or 'hnsw', got {self.kind!r}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search) < 1:
            raise ValueError("IndexConfig: hnsw_m, ef_construction and ef_search must be >= 1")


class FaissIndex(TopKIndex):
    """FAISS inner-product index (IndexFlatIP, or IndexHNSWFlat with METRIC_INNER_PRODUCT)."""

    def __init__(self, dim: int, config: IndexConfig | None = None) -> None:
        import faiss  # heavy optional dependency, imported where it is used

        super().__init__()
        self.config = config or IndexConfig()
        self.dim = dim
        self.is_exact = self.config.kind == "flat"
        if self.config.kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        else:
            self._index = faiss.IndexHNSWFlat(dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = self.config.ef_construction

    def _add(self, vectors: np.ndarray) -> None:
        if vectors.shape[1] != self.dim:
            raise ValueError(f"add: index dimension is {self.dim}, vectors have {vectors.shape[1]}")
        self._index.add(vectors)

    def _raw_search(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if self.config.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, fetch))
            return self._index.search(queries, fetch, params=params)
        return self._index.search(queries, fetch)

    def _search(
        self, queries: np.ndarray, k: int, excl: Exclusions, blocked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n_total = len(self._ids)
        # Over-fetch enough that every row still has k eligible results after filtering.
        fetch = min(n_total, k + excl.max_per_row() + len(blocked))
        scores, pos = self._raw_search(queries, fetch)
        ids = np.where(pos >= 0, self._ids[np.clip(pos, 0, None)], -1)
        span = np.int64(max(int(self._ids.max()), int(excl.ids.max(initial=0))) + 2)
        excl_keys = np.sort(excl.rows().astype(np.int64) * span + excl.ids + 1)
        keys = np.arange(len(queries), dtype=np.int64)[:, None] * span + ids + 1
        drop = (pos < 0) | np.isin(ids, blocked) | np.isin(keys, excl_keys)
        scores = np.where(drop, -np.inf, scores)
        order = np.argsort(drop, axis=1, kind="stable")[:, :k]  # keep rank order of survivors
        return _pad(np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), k)

    def save(self, directory: str | Path) -> Path:
        """Write ``faiss.index`` plus ids, masked ids and the config."""
        import faiss

        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(root / "faiss.index"))
        np.savez(root / "faiss_ids.npz", ids=self._ids, blocked=self._blocked)
        (root / "faiss_config.json").write_text(json.dumps({"dim": self.dim, **asdict(self.config)}))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> "FaissIndex":
        import faiss

        root = Path(directory)
        meta = json.loads((root / "faiss_config.json").read_text())
        index = cls(meta.pop("dim"), IndexConfig(**meta))
        index._index = faiss.read_index(str(root / "faiss.index"))
        data = np.load(root / "faiss_ids.npz")
        index._ids, index._blocked = data["ids"], data["blocked"]
        return index


def build_index(dim: int, config: IndexConfig | None = None, exact: bool = False) -> TopKIndex:
    """Backend factory: the numpy oracle when ``exact``, else FAISS as configured."""
    return ExactIndex() if exact else FaissIndex(dim, config)
