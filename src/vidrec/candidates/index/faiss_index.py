"""FAISS inner-product index whose structure follows corpus size: flat, HNSW or IVF-PQ.

Retrieving a few hundred candidates from a corpus of millions: exact search below ~50k
videos, an HNSW graph up to a few million, IVF with product-quantised codes (re-scored
exactly from the stored full vectors) beyond. Search parameters are tuned at build time to
a target recall against exact search over the same vectors, which stay available as the
oracle. Unavailable videos are filtered inside FAISS with an id selector, so they never cost
a result; a row that still comes back short falls back to exact search.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vidrec.candidates.index.base import ExactIndex, Exclusions, TopKIndex, _pad, exact_search
from vidrec.candidates.index.config import IndexConfig
from vidrec.candidates.index.tuning import TuneReport, tune


class FaissIndex(TopKIndex):
    """FAISS with METRIC_INNER_PRODUCT; the structure is fixed by the first :meth:`add`."""

    def __init__(self, dim: int, config: IndexConfig | None = None) -> None:
        super().__init__()
        self.config = config or IndexConfig()
        self.dim = dim
        self.kind: str | None = None if self.config.kind == "auto" else self.config.kind
        self.params: dict[str, int] = {}  # search parameters in force (tuned or configured)
        self.tuning: TuneReport | None = None
        self._index: Any = None
        self._parts: tuple[Any, ...] = ()  # sub-indexes kept alive for the wrapper's lifetime

    @property
    def is_exact(self) -> bool:  # type: ignore[override]
        return self.kind == "flat"

    @property
    def nlist(self) -> int:
        """IVF cells (IVF-PQ only)."""
        import faiss

        return int(faiss.downcast_index(self._index.base_index).nlist)

    def _create(self, vectors: np.ndarray) -> None:
        """Choose and (for IVF-PQ) train the structure on the first batch of vectors."""
        import faiss

        n, cfg = len(vectors), self.config
        self.kind = cfg.resolve_kind(n)
        if self.kind == "flat":
            self._index = faiss.IndexFlatIP(self.dim)
        elif self.kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(self.dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = cfg.ef_construction
            self.params = {"ef_search": cfg.ef_search}
        else:
            nlist, pq_m, bits = cfg.ivf_shape(n, self.dim)
            quantizer = faiss.IndexFlatIP(self.dim)
            ivf = faiss.IndexIVFPQ(quantizer, self.dim, nlist, pq_m, bits, faiss.METRIC_INNER_PRODUCT)
            ivf.pq.cp.niter, ivf.pq.cp.max_points_per_centroid = 10, 64  # FAISS k-means is slow at small d
            rng = np.random.default_rng(cfg.seed)
            sample = min(n, max(nlist * cfg.train_per_cell, 39 * 2**bits))
            ivf.train(vectors[np.sort(rng.choice(n, sample, replace=False))])
            self._index = faiss.IndexRefineFlat(ivf)  # keeps the full vectors for re-scoring
            self._parts = (quantizer, ivf)
            self.params = {"nprobe": min(cfg.nprobe, nlist), "k_factor": cfg.rescore_factor}

    def _add(self, vectors: np.ndarray) -> None:
        if vectors.shape[1] != self.dim:
            raise ValueError(f"add: index dimension is {self.dim}, vectors have {vectors.shape[1]}")
        if self._index is None:
            self._create(vectors)
        self._index.add(vectors)

    def stored_vectors(self) -> np.ndarray:
        """The full float32 vectors (N, d) as FAISS holds them (a view: no copy)."""
        import faiss

        if self._index is None:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.kind == "flat":
            flat = self._index
        else:
            flat = faiss.downcast_index(self._index.storage if self.kind == "hnsw" else self._index.refine_index)
        n = flat.ntotal
        return faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)

    def vectors_for_search(self) -> np.ndarray:
        return self.stored_vectors()

    def _removal_changed(self) -> None:
        self._allowed_bits = np.packbits(~self._removed, bitorder="little")
        self._n_removed = int(self._removed.sum())

    def _search_positions(self, q: np.ndarray, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search filtered inside the index: removed positions by a bitmap kept up to date,
        the request's exclusions by an id set (cost grows with the exclusions, not the corpus)."""
        import faiss

        n = len(self._ids)
        bits = getattr(self, "_allowed_bits", None)
        if bits is None or len(bits) * 8 < n:
            self._removal_changed()
            bits = self._allowed_bits
        allowed = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
        sel, keep = allowed, [bits]
        if len(exclude):
            ex = np.ascontiguousarray(exclude, dtype=np.int64)
            batch = faiss.IDSelectorBatch(len(ex), faiss.swig_ptr(ex))
            neg = faiss.IDSelectorNot(batch)
            sel = faiss.IDSelectorAnd(allowed, neg)
            keep += [ex, batch, neg]
        fetch = min(k, n)
        params = self._search_params(fetch, sel, self.params)
        scores, pos = self._index.search(q, fetch, params=params)
        del keep
        scores, pos = scores[0], pos[0]
        ok = pos >= 0
        scores, pos = scores[ok], pos[ok].astype(np.int64)
        eligible = n - self._n_removed - len(exclude)
        if len(pos) < min(k, eligible) and not self.is_exact:  # heavy filtering: ask the exact oracle
            from vidrec.candidates.index.base import exact_positions

            return exact_positions(self.stored_vectors(), q, k, self._removed, exclude)
        order = np.lexsort((pos, -scores))
        return scores[order].astype(np.float32), pos[order]

    def oracle(self) -> ExactIndex:
        """An exact numpy index over a copy of the same ids, vectors and removals."""
        exact = ExactIndex()
        exact.add(self._ids, self.stored_vectors().copy())
        exact.remove(self._blocked)
        return exact

    def exact_raw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k positions over every stored vector, ignoring removals (the tuning oracle)."""
        import faiss

        return faiss.knn(queries, self.stored_vectors(), k, metric=faiss.METRIC_INNER_PRODUCT)

    def _search_params(self, fetch: int, sel: Any, params: dict[str, int]) -> Any:
        import faiss

        if self.kind == "hnsw":
            # Keep the tuned candidate-list-to-k ratio when more than tune_k results are fetched.
            ef = max(params["ef_search"], math.ceil(params["ef_search"] * fetch / self.config.tune_k))
            return faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
        if self.kind == "ivfpq":
            base = faiss.SearchParametersIVF(nprobe=params["nprobe"], sel=sel)
            return faiss.IndexRefineSearchParameters(k_factor=params["k_factor"], base_index_params=base)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def raw_search(
        self, queries: np.ndarray, fetch: int, allowed: np.ndarray | None = None, params: dict[str, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search returning (scores, positions); ``allowed`` is a bitmap over positions."""
        import faiss

        sel = None
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")  # held until the search returns
            sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        search_params = self._search_params(fetch, sel, params or self.params)
        if search_params is None:
            return self._index.search(queries, fetch)
        return self._index.search(queries, fetch, params=search_params)

    def _search(
        self, queries: np.ndarray, k: int, excl: Exclusions, blocked: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n_total = len(self._ids)
        masked = np.isin(self._ids, blocked)
        allowed = ~masked if masked.any() else None
        # Blocked ids are skipped inside FAISS; over-fetch only for the per-row exclusions.
        fetch = min(n_total, k + excl.max_per_row())
        scores, pos = self.raw_search(queries, fetch, allowed)
        ids = np.where(pos >= 0, self._ids[np.clip(pos, 0, None)], -1)
        span = np.int64(max(int(self._ids.max()), int(excl.ids.max(initial=0))) + 2)
        excl_keys = np.sort(excl.rows().astype(np.int64) * span + excl.ids + 1)
        keys = np.arange(len(queries), dtype=np.int64)[:, None] * span + ids + 1
        drop = (pos < 0) | np.isin(ids, blocked) | np.isin(keys, excl_keys)
        scores = np.where(drop, -np.inf, scores)
        order = np.argsort(drop, axis=1, kind="stable")[:, :k]  # keep rank order of survivors
        out_scores, out_ids = _pad(np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), k)
        short = np.flatnonzero((out_ids < 0).any(axis=1))
        if len(short) and not self.is_exact:
            # An approximate search can come back short under heavy filtering: ask the oracle.
            s, i = exact_search(self._ids, self.stored_vectors(), queries[short], k, excl.take(short), blocked)
            out_scores[short], out_ids[short] = s, i
        return out_scores, out_ids

    def tune(self, queries: np.ndarray | None = None, k: int | None = None) -> TuneReport:
        """Tune search parameters to ``config.target_recall`` at ``k`` (default ``config.tune_k``).

        ``queries`` default to a seeded sample of the indexed vectors themselves.
        """
        if self._index is None:
            raise ValueError("tune: add vectors before tuning the index")
        cfg = self.config
        if queries is None:
            rng = np.random.default_rng(cfg.seed)
            pick = np.sort(rng.choice(len(self), min(cfg.tune_queries, len(self)), replace=False))
            queries = self.stored_vectors()[pick].copy()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.tuning = tune(self, queries, k or cfg.tune_k, cfg.target_recall)
        return self.tuning

    def save(self, directory: str | Path) -> Path:
        """Write ``faiss.index``, ids and removals, and a JSON of the config and tuned parameters."""
        import faiss

        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            faiss.write_index(self._index, str(root / "faiss.index"))
        np.savez(root / "faiss_ids.npz", ids=self._ids, blocked=self._blocked)
        meta = {
            "dim": self.dim,
            "config": asdict(self.config),
            "kind": self.kind,
            "params": self.params,
            "tuning": self.tuning.to_dict() if self.tuning else None,
        }
        (root / "faiss_config.json").write_text(json.dumps(meta, indent=2))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> FaissIndex:
        import faiss

        root = Path(directory)
        meta = json.loads((root / "faiss_config.json").read_text())
        if "config" not in meta:  # layout before tuning: {"dim", **config}, parameters from the config
            dim, config = meta.pop("dim"), IndexConfig(**meta)
            meta = {"dim": dim, "config": asdict(config), "kind": config.kind, "tuning": None}
            meta["params"] = {"ef_search": config.ef_search} if config.kind == "hnsw" else {}
        index = cls(meta["dim"], IndexConfig(**meta["config"]))
        index.kind, index.params = meta["kind"], meta["params"]
        index.tuning = TuneReport.from_dict(meta["tuning"]) if meta["tuning"] else None
        if (root / "faiss.index").exists():
            index._index = faiss.read_index(str(root / "faiss.index"))
        data = np.load(root / "faiss_ids.npz")
        index._ids, index._blocked = data["ids"], data["blocked"]
        index._removed = np.isin(index._ids, index._blocked)
        return index


def build_index(
    dim: int,
    config: IndexConfig | None = None,
    exact: bool = False,
    ids: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    queries: np.ndarray | None = None,
) -> TopKIndex:
    """Backend factory: the numpy oracle when ``exact``, else FAISS as configured.

    Given ``ids`` and ``vectors`` it also adds them and, for an approximate structure with a
    positive ``target_recall``, tunes the search parameters on ``queries`` (default: a sample
    of the vectors). The report is on ``index.tuning``.
    """
    index: TopKIndex = ExactIndex() if exact else FaissIndex(dim, config)
    if ids is None or vectors is None:
        return index
    index.add(ids, vectors)
    if isinstance(index, FaissIndex) and not index.is_exact and index.config.target_recall > 0:
        index.tune(queries)
    return index


def load_index(directory: str | Path) -> TopKIndex:
    """Load whichever index was saved in ``directory``."""
    root = Path(directory)
    return ExactIndex.load(root) if (root / "exact_index.npz").exists() else FaissIndex.load(root)
