"""Stage 2, scoring: calibrated per-task probabilities and a value score for each (user, candidate video) pair."""

from vidrec.scoring.base import EmbeddingSource, Ranker
from vidrec.scoring.calibration import Calibrator, expected_calibration_error, log_loss, roc_auc
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.examples import LABELS, ExampleConfig, build_examples
from vidrec.scoring.similarity import SIMILARITY_FEATURES, CoOccurrence, similarity_features
from vidrec.scoring.value import PROBABILITY_COLUMNS, ValueModel

__all__ = [
    "Calibrator",
    "CoOccurrence",
    "EmbeddingSource",
    "ExampleConfig",
    "LABELS",
    "MLPRanker",
    "MultiTaskRanker",
    "PROBABILITY_COLUMNS",
    "Ranker",
    "RankerConfig",
    "SIMILARITY_FEATURES",
    "ValueModel",
    "build_examples",
    "expected_calibration_error",
    "log_loss",
    "roc_auc",
    "similarity_features",
]


def __getattr__(name: str):  # torch is imported only when the model is asked for
    if name in ("MLPRanker", "MultiTaskRanker"):
        from vidrec.scoring import ranker

        return getattr(ranker, name)
    raise AttributeError(f"module 'vidrec.scoring' has no attribute {name!r}")
