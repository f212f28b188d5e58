"""Tasks own the loss of one training step: which candidates each positive competes with,
how they are masked and corrected. The training loop only calls ``task.loss(model, batch)``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import Examples, interacted_block, user_offsets
from vidrec.candidates.two_tower.hard_negatives import HardNegativeMiner
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.objectives import (
    CountFrequency,
    StreamingFrequency,
    binary_loss,
    in_batch_mask,
    sampled_softmax_loss,
)

Batch = dict[str, torch.Tensor]


class Task:
    """Shared part: optional hard negatives from a miner refreshed by the training loop."""

    def __init__(
        self, config: TwoTowerConfig, examples: Examples, n_videos: int, rng: np.random.Generator
    ) -> None:
        self.config, self.examples, self.n_videos, self.rng = config, examples, n_videos, rng
        self.miner = (
            HardNegativeMiner(examples, n_videos, config.hard_negative_pool, rng) if config.hard_negatives else None
        )

    def hard_active(self) -> bool:
        """Hard negatives are drawn once the miner has been refreshed at least once."""
        return self.miner is not None and self.miner.refreshes > 0

    def hard(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard negatives (B, h) of the batch's users and their validity mask."""
        neg, valid = self.miner.sample(batch["user"].numpy(), self.config.hard_negatives)
        return torch.from_numpy(neg), torch.from_numpy(valid)

    def loss(self, model: TwoTowerModel, batch: Batch) -> tuple[torch.Tensor, float]:
        """(mean loss of the step, number of terms it averages)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What the task learnt while training (a checkpoint saves it; the rng is the loop's)."""
        miner = self.miner
        return {"miner": None if miner is None else (miner.pool, miner.refreshes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        if self.miner is not None and state["miner"] is not None:
            self.miner.pool, self.miner.refreshes = state["miner"]


class BinaryTask(Task):
    """Sigmoid cross-entropy: the positive vs the epoch's sampled negatives (+ hard negatives)."""

    def loss(self, model: TwoTowerModel, batch: Batch) -> tuple[torch.Tensor, float]:
        if self.hard_active():
            neg, valid = self.hard(batch)
            batch = {
                **batch,
                "negatives": torch.cat([batch["negatives"], neg], dim=1),
                "neg_valid": torch.cat([batch["neg_valid"], valid], dim=1),
            }
        logits = model.logits(batch)  # (B, 1 + n_neg)
        w = torch.cat([torch.ones_like(logits[:, :1]), batch["neg_valid"].float()], dim=1)
        return binary_loss(logits, w), float(w.sum())


class SoftmaxTask(Task):
    """Sampled softmax over the batch's other positives, optional shared uniform samples and
    hard negatives, every logit corrected by log of the candidate's expected count per batch."""

    def __init__(
        self, config: TwoTowerConfig, examples: Examples, n_videos: int, rng: np.random.Generator
    ) -> None:
        super().__init__(config, examples, n_videos, rng)
        if config.logq_correction == "streaming":
            self.frequency = StreamingFrequency(config.logq_buckets, config.logq_ema)
        elif config.logq_correction == "counts":
            self.frequency = CountFrequency(examples.video.numpy(), n_videos, config.batch_size)
        else:
            self.frequency = None
        self.offsets = user_offsets(examples.interacted_keys, n_videos)  # each user's interacted pairs

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"frequency": vars(self.frequency) if self.frequency is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.frequency is not None and state["frequency"] is not None:
            vars(self.frequency).update(state["frequency"])

    def log_q(self, videos: torch.Tensor) -> torch.Tensor:
        """log expected count of each candidate per batch under the mixed sampler
        (in-batch positives + ``uniform_negatives`` uniform draws); zeros when uncorrected."""
        if self.frequency is None:
            return torch.zeros(videos.shape)
        count = self.frequency.expected_count(videos) + self.config.uniform_negatives / self.n_videos
        return torch.log(count)

    def loss(self, model: TwoTowerModel, batch: Batch) -> tuple[torch.Tensor, float]:
        video, user = batch["video"], batch["user"]  # (B,), (B,)
        b, m = len(video), self.config.uniform_negatives
        if self.frequency is not None:
            self.frequency.update(video)
        uniform = torch.from_numpy(self.rng.integers(1, self.n_videos + 1, size=m))  # (M,)
        hard, hard_valid = (
            self.hard(batch) if self.hard_active() else (torch.zeros(b, 0, dtype=torch.long),) * 2
        )
        candidates = torch.cat([video, uniform, hard.reshape(-1)])
        uniq, inverse = torch.unique(candidates, return_inverse=True)
        v = model.catalogue_tower(uniq)  # (U, d)
        u = model.embed_users(batch)  # (B, d)
        v_shared, v_hard = v[inverse[: b + m]], v[inverse[b + m :]].reshape(b, -1, v.shape[1])
        logits = torch.cat([u @ v_shared.T, torch.einsum("bd,bhd->bh", u, v_hard)], dim=1)
        logits = logits / self.config.temperature  # (B, B + M + H)
        shared = torch.cat([video, uniform])
        log_q = torch.cat([self.log_q(shared).expand(b, -1), self.log_q(hard)], dim=1)
        mask = torch.cat([in_batch_mask(video, user), self._uniform_mask(video, user, uniform),
                          ~hard_valid.bool()], dim=1)
        return sampled_softmax_loss(logits, log_q, mask, torch.arange(b)), float(b)

    def _uniform_mask(self, video: torch.Tensor, user: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """(B, M) True where a uniform sample is the row's positive or any video its user interacted with."""
        keys = self.examples.interacted_keys
        hit = interacted_block(keys, self.offsets, self.n_videos, user.numpy(), uniform.numpy())
        return torch.from_numpy(hit) | (uniform[None, :] == video[:, None])


def make_task(config: TwoTowerConfig, examples: Examples, n_videos: int, rng: np.random.Generator) -> Task:
    """The task of ``config.objective``."""
    cls = BinaryTask if config.objective == "binary" else SoftmaxTask
    return cls(config, examples, n_videos, rng)
