"""Stage 1, candidate generation: retrieve a few hundred videos per user from the whole corpus.

Generators (two-tower behind a top-K index, trending) share one interface; their outputs
are merged per user with every source kept for explanation.
"""

from vidrec.candidates.base import CANDIDATE_SCHEMA, CandidateGenerator
from vidrec.candidates.generators import TrendingConfig, TrendingGenerator, TwoTowerGenerator
from vidrec.candidates.index import ExactIndex, Exclusions, FaissIndex, IndexConfig, TopKIndex, build_index
from vidrec.candidates.merge import merge_candidates

__all__ = [
    "CANDIDATE_SCHEMA",
    "CandidateGenerator",
    "ExactIndex",
    "Exclusions",
    "FaissIndex",
    "IndexConfig",
    "TopKIndex",
    "TrendingConfig",
    "TrendingGenerator",
    "TwoTowerGenerator",
    "build_index",
    "merge_candidates",
]
