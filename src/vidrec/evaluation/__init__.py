"""Offline evaluation: metrics, strong baselines, the temporal full-ranking protocol."""

from vidrec.evaluation.baselines import EASE, IALS, Baseline, MostPopular
from vidrec.evaluation.matrix import interaction_matrix
from vidrec.evaluation.metrics import NO_ITEM, RankingMetrics, hits_matrix, ranking_metrics
from vidrec.evaluation.protocol import (
    DEFAULT_KS,
    BaselineSpec,
    EvaluationData,
    default_baselines,
    evaluate_baselines,
    evaluate_recommendations,
    label_events,
    temporal_holdout,
)
from vidrec.evaluation.report import format_table, print_report, write_json
from vidrec.evaluation.tuning import tune

__all__ = [
    "DEFAULT_KS",
    "EASE",
    "IALS",
    "NO_ITEM",
    "Baseline",
    "BaselineSpec",
    "EvaluationData",
    "MostPopular",
    "RankingMetrics",
    "default_baselines",
    "evaluate_baselines",
    "evaluate_recommendations",
    "format_table",
    "hits_matrix",
    "interaction_matrix",
    "label_events",
    "print_report",
    "ranking_metrics",
    "temporal_holdout",
    "tune",
    "write_json",
]
