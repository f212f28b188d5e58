"""Stage 3, re-ranking: hard filters, freshness, creator diversity, explanations."""

from vidrec.reranking.base import REMOVED_REASONS, ReRanker
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.reranker import DefaultReRanker

__all__ = ["DefaultReRanker", "REMOVED_REASONS", "ReRankConfig", "ReRanker"]
