"""Stage 2, scoring: calibrated P(completion) for each (user, candidate video) pair."""

from vidrec.scoring.base import EmbeddingSource, Ranker
from vidrec.scoring.calibration import Calibrator, expected_calibration_error, log_loss, roc_auc
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.examples import ExampleConfig, build_examples
from vidrec.scoring.similarity import SIMILARITY_FEATURES, CoOccurrence, similarity_features

__all__ = [
    "Calibrator",
    "CoOccurrence",
    "EmbeddingSource",
    "ExampleConfig",
    "MLPRanker",
    "Ranker",
    "RankerConfig",
    "SIMILARITY_FEATURES",
    "build_examples",
    "expected_calibration_error",
    "log_loss",
    "roc_auc",
    "similarity_features",
]


def __getattr__(name: str):  # torch is imported only when the model is asked for
    if name == "MLPRanker":
        from vidrec.scoring.ranker import MLPRanker

        return MLPRanker
    raise AttributeError(f"module 'vidrec.scoring' has no attribute {name!r}")
