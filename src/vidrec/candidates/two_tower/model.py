"""The two-tower retriever: a user tower and a video tower whose normalised outputs meet in a
dot product, so retrieving O(hundreds) candidates from O(millions) is one inner-product search.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import Vocabulary


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class TwoTowerModel(nn.Module):
    """User tower: hashed user id + masked mean of completed-history videos -> MLP -> L2 norm.
    Video tower: id + category + mean of tags + creator -> MLP -> L2 norm.

    Row 0 of every id table is "unknown/padding" and stays zero, so cold videos are
    embedded from their content and cold users from their history alone.
    """

    def __init__(self, config: TwoTowerConfig, vocab: Vocabulary, max_tags: int = 16) -> None:
        super().__init__()
        self.config, self.vocab = config, vocab
        d = config.embedding_dim
        self.user_hash = nn.Embedding(config.user_hash_buckets, d)
        self.history = nn.Embedding(len(vocab.videos) + 1, d, padding_idx=0)
        self.video_id = nn.Embedding(len(vocab.videos) + 1, d, padding_idx=0)
        self.category = nn.Embedding(len(vocab.categories) + 1, d, padding_idx=0)
        self.tags = nn.EmbeddingBag(len(vocab.tags) + 1, d, mode="mean", padding_idx=0)
        self.creator = nn.Embedding(len(vocab.creators) + 1, d, padding_idx=0)
        self.user_mlp = _mlp(2 * d, config.user_hidden, d, config.dropout)
        self.video_mlp = _mlp(4 * d, config.video_hidden, d, config.dropout)
        for table in (self.user_hash, self.history, self.video_id, self.category, self.creator):
            nn.init.normal_(table.weight, std=0.05)
        nn.init.normal_(self.tags.weight, std=0.05)
        with torch.no_grad():
            for table in (self.history, self.video_id, self.category, self.tags, self.creator):
                table.weight[0].zero_()
        # Per-video features of the catalogue, gathered by index during training.
        n = len(vocab.videos) + 1
        self.register_buffer("video_category", torch.zeros(n, dtype=torch.long))
        self.register_buffer("video_creator", torch.zeros(n, dtype=torch.long))
        self.register_buffer("video_tags", torch.zeros(n, max_tags, dtype=torch.long))

    def set_catalogue(self, features: dict[str, torch.Tensor]) -> None:
        """Store each known video's category/creator/tags (from ``Vocabulary.encode_videos``)."""
        known = features["video"] > 0
        idx = features["video"][known]
        self.video_category[idx] = features["category"][known]
        self.video_creator[idx] = features["creator"][known]
        self.video_tags[idx] = features["tags"][known][:, : self.video_tags.shape[1]]

    def user_tower(self, user_buckets: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """(B, n_hash), (B, H) -> (B, d) unit vectors."""
        u = self.user_hash(user_buckets).sum(dim=1)  # (B, d)
        if self.training and self.config.user_id_dropout > 0:
            keep = torch.rand(u.shape[0], 1) >= self.config.user_id_dropout  # (B, 1)
            u = u * keep
        mask = (history > 0).unsqueeze(-1).float()  # (B, H, 1)
        pooled = (self.history(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, d)
        return F.normalize(self.user_mlp(torch.cat([u, pooled], dim=-1)), dim=-1)

    def video_tower(
        self, video: torch.Tensor, category: torch.Tensor, tags: torch.Tensor, creator: torch.Tensor
    ) -> torch.Tensor:
        """(B,), (B,), (B, T), (B,) -> (B, d) unit vectors."""
        x = torch.cat(
            [self.video_id(video), self.category(category), self.tags(tags), self.creator(creator)],
            dim=-1,
        )  # (B, 4d)
        return F.normalize(self.video_mlp(x), dim=-1)

    def catalogue_tower(self, video: torch.Tensor) -> torch.Tensor:
        """Video-tower output for known videos by shifted index (features from the catalogue)."""
        return self.video_tower(
            video, self.video_category[video], self.video_tags[video], self.video_creator[video]
        )

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, 1 + n_neg): column 0 the positive, the rest the sampled negatives.

        The video tower runs once per distinct video in the batch.
        """
        u = self.user_tower(batch["user_buckets"], batch["history"])  # (B, d)
        videos = torch.cat([batch["video"].unsqueeze(1), batch["negatives"]], dim=1)  # (B, 1+n)
        uniq, inverse = torch.unique(videos, return_inverse=True)
        v = self.catalogue_tower(uniq)[inverse]  # (B, 1+n, d)
        return torch.einsum("bd,bnd->bn", u, v) / self.config.temperature

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state dict), ``config.json`` and the vocabularies into ``directory``."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), root / "model.pt")
        self.config.save(root / "config.json")
        self.vocab.save(root)
        return root

    @classmethod
    def load(cls, directory: str | Path) -> "TwoTowerModel":
        """Rebuild a model written by :meth:`save`."""
        root = Path(directory)
        if not (root / "model.pt").exists():
            raise FileNotFoundError(f"{root}: no two-tower model (model.pt) found there")
        state = torch.load(root / "model.pt", map_location="cpu", weights_only=True)
        model = cls(
            TwoTowerConfig.load(root / "config.json"),
            Vocabulary.load(root),
            max_tags=state["video_tags"].shape[1],
        )
        model.load_state_dict(state)
        model.eval()
        return model
