"""vidrec: a three-stage video recommender (candidates -> scoring -> re-ranking).

    from vidrec import Recommender
    rec = Recommender.train("data/")          # a data directory, or a Dataset
    rec.save("models/mine")
    rec = Recommender.load("models/mine")
    rec.recommend("u1", k=10)

The names below are imported on first use, so ``import vidrec`` (and ``vidrec --version``)
stays fast: torch and FAISS load only with the recommender.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Recommender": "vidrec.recommender",
    "Dataset": "vidrec.data.dataset",
    "read_dataset": "vidrec.data.dataset",
    "PipelineConfig": "vidrec.config",
    "load_config": "vidrec.config",
    "DataError": "vidrec.errors",
    "VidrecError": "vidrec.errors",
}
__all__ = ["DataError", "Dataset", "PipelineConfig", "Recommender", "VidrecError", "__version__", "load_config",
           "read_dataset"]

if TYPE_CHECKING:
    from vidrec.config import PipelineConfig, load_config
    from vidrec.data.dataset import Dataset, read_dataset
    from vidrec.errors import DataError, VidrecError
    from vidrec.recommender import Recommender


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidrec' has no attribute {name!r}")
