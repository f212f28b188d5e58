"""Stage 1, candidate generation: retrieve a few hundred videos per user from the whole corpus.

Generators (two-tower behind a top-K index, co-watched, trending, fresh uploads, the
user's creators, popular in the user's demographic) share one interface; their outputs
are merged per user with quotas and every source kept for explanation.
"""

from vidrec.candidates.base import CANDIDATE_SCHEMA, CandidateGenerator
from vidrec.candidates.cowatch import CoWatchConfig, CoWatchGenerator
from vidrec.candidates.creators import CreatorsConfig, CreatorsGenerator
from vidrec.candidates.demographic import DemographicConfig, DemographicGenerator
from vidrec.candidates.fresh import FreshConfig, FreshGenerator
from vidrec.candidates.generators import TrendingConfig, TrendingGenerator, TwoTowerGenerator
from vidrec.candidates.index import ExactIndex, Exclusions, FaissIndex, IndexConfig, TopKIndex, build_index
from vidrec.candidates.merge import merge_candidates

__all__ = [
    "CANDIDATE_SCHEMA",
    "CandidateGenerator",
    "CoWatchConfig",
    "CoWatchGenerator",
    "CreatorsConfig",
    "CreatorsGenerator",
    "DemographicConfig",
    "DemographicGenerator",
    "ExactIndex",
    "Exclusions",
    "FaissIndex",
    "FreshConfig",
    "FreshGenerator",
    "IndexConfig",
    "TopKIndex",
    "TrendingConfig",
    "TrendingGenerator",
    "TwoTowerGenerator",
    "build_index",
    "merge_candidates",
]
