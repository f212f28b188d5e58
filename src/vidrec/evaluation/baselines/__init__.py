"""Strong, simple baselines that every vidrec stage is measured against."""

from vidrec.evaluation.baselines.base import Baseline, top_k
from vidrec.evaluation.baselines.ease import EASE, EASEConfig
from vidrec.evaluation.baselines.ials import IALS, IALSConfig
from vidrec.evaluation.baselines.popular import MostPopular

__all__ = ["EASE", "EASEConfig", "IALS", "IALSConfig", "Baseline", "MostPopular", "top_k"]
