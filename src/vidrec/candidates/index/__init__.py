"""Top-K inner-product indexes over video embeddings: an exact numpy oracle and FAISS.

``IndexConfig(kind="auto")`` picks exact search, HNSW or IVF-PQ (with exact re-scoring) by
corpus size and tunes the approximate ones to a target recall against the exact oracle.
"""

from vidrec.candidates.index.base import ExactIndex, Exclusions, TopKIndex, exact_search
from vidrec.candidates.index.config import IndexConfig
from vidrec.candidates.index.faiss_index import FaissIndex, build_index, load_index
from vidrec.candidates.index.tuning import TuneReport, recall_at_k

__all__ = [
    "ExactIndex",
    "Exclusions",
    "FaissIndex",
    "IndexConfig",
    "TopKIndex",
    "TuneReport",
    "build_index",
    "exact_search",
    "load_index",
    "recall_at_k",
]
