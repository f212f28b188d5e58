"""The two-tower retriever: config, model, training data, objectives (binary, sampled softmax with
log-Q correction, hard negatives), training loop and embedding export."""

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import Vocabulary, hash_ids
from vidrec.candidates.two_tower.export import (
    load_video_embeddings,
    save_video_embeddings,
    serving_user_inputs,
    user_embeddings,
    video_embeddings,
)
from vidrec.candidates.two_tower.hard_negatives import HardNegativeMiner
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.objectives import CountFrequency, StreamingFrequency, sampled_softmax_loss
from vidrec.candidates.two_tower.train import TrainReport, fit_two_tower

__all__ = [
    "CountFrequency",
    "HardNegativeMiner",
    "StreamingFrequency",
    "TrainReport",
    "TwoTowerConfig",
    "TwoTowerModel",
    "Vocabulary",
    "fit_two_tower",
    "hash_ids",
    "load_video_embeddings",
    "sampled_softmax_loss",
    "save_video_embeddings",
    "serving_user_inputs",
    "user_embeddings",
    "video_embeddings",
]
