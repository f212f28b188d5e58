"""The two-tower retriever: config, model, training data, training loop and embedding export."""

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import Vocabulary, hash_ids
from vidrec.candidates.two_tower.export import (
    load_video_embeddings,
    save_video_embeddings,
    user_embeddings,
    video_embeddings,
)
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.train import TrainReport, fit_two_tower

__all__ = [
    "TrainReport",
    "TwoTowerConfig",
    "TwoTowerModel",
    "Vocabulary",
    "fit_two_tower",
    "hash_ids",
    "load_video_embeddings",
    "save_video_embeddings",
    "user_embeddings",
    "video_embeddings",
]
