"""Training objectives of the two-tower model and the sampling-frequency estimates they need.

* Binary: sigmoid cross-entropy of each positive against sampled negatives.
* Sampled softmax (Yi et al. 2019, "Sampling-bias-corrected neural modeling"): each positive
  competes with the batch's other positives, optional uniform samples shared by the batch and
  optional hard negatives. In-batch negatives are drawn in proportion to popularity, so an
  uncorrected model learns to push popular videos down; subtracting log q_j (q_j: how often
  video j is drawn as a candidate) turns the sampled softmax back into an estimate of the
  full softmax, whose scores follow the users' true preferences.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

MASKED = -1e9  # logit of a masked candidate (finite, so an all-masked row cannot produce NaN)


class StreamingFrequency:
    """Yi et al.'s streaming estimate of how many times each video appears per batch.

    For each hashed video it keeps the step it was last seen and a moving average of the gap
    (in steps) between sightings; the expected count per batch is 1 / gap. A video seen c times
    in one batch counts as a gap of (steps since last sighting) / c, so very popular videos
    (several per batch) are not capped at one per step. Nothing but the stream is needed,
    so the same code works on an unbounded, drifting corpus.
    """

    def __init__(self, buckets: int, ema: float) -> None:
        self.buckets, self.ema, self.step = buckets, ema, 0
        self.last = torch.full((buckets,), -1, dtype=torch.long)  # step of the last sighting
        self.gap = torch.zeros(buckets)  # moving-average steps between sightings; 0 = never seen

    def update(self, videos: torch.Tensor) -> None:
        """Record one training step's positives (shifted indices, any shape)."""
        h, counts = torch.unique(videos.reshape(-1) % self.buckets, return_counts=True)
        seen = self.last[h] >= 0
        observed = (self.step - self.last[h]).float() / counts  # (U,)
        first = float(self.step + 1) / counts
        self.gap[h] = torch.where(seen, (1 - self.ema) * self.gap[h] + self.ema * observed, first)
        self.last[h] = self.step
        self.step += 1

    def expected_count(self, videos: torch.Tensor) -> torch.Tensor:
        """Expected appearances per batch of each video; never-seen videos get 1 / (steps so far)."""
        gap = self.gap[videos % self.buckets]
        return 1.0 / torch.where(gap > 0, gap, float(max(self.step, 1)))


class CountFrequency:
    """The exact baseline: expected appearances per batch from the training-set counts."""

    def __init__(self, positive_videos: np.ndarray, n_videos: int, batch_size: int) -> None:
        counts = np.bincount(positive_videos, minlength=n_videos + 1).astype(np.float32)
        rate = counts * (batch_size / max(len(positive_videos), 1))
        floor = batch_size / max(len(positive_videos), 1)  # unseen videos: as if seen once
        self.rate = torch.from_numpy(np.maximum(rate, floor))

    def update(self, videos: torch.Tensor) -> None:
        """Counts are fixed in advance; nothing to learn from the stream."""

    def expected_count(self, videos: torch.Tensor) -> torch.Tensor:
        """Expected appearances per batch of each video."""
        return self.rate[videos]


def binary_loss(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sigmoid cross-entropy; column 0 of ``logits`` (B, 1 + n) is the positive."""
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    per = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (per * weights).sum() / weights.sum()


def sampled_softmax_loss(
    logits: torch.Tensor, log_q: torch.Tensor, mask: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the corrected logits ``logits - log_q`` with masked candidates removed.

    Args:
        logits: (B, C) scores s(u_i, v_c) of every row against every candidate.
        log_q: (C,) or (B, C) log expected count of each candidate among the sampled ones.
        mask: (B, C) True where the candidate must not act as a negative (e.g. the same video).
        target: (B,) column of each row's positive (never masked).
    """
    corrected = (logits - log_q).masked_fill(mask, MASKED)
    return F.cross_entropy(corrected, target)


def in_batch_mask(videos: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    """(B, B) True off the diagonal where column j is the same video as row i's positive or
    another positive of row i's user: neither is a negative for row i."""
    same = (videos[:, None] == videos[None, :]) | (users[:, None] == users[None, :])
    return same & ~torch.eye(len(videos), dtype=torch.bool)
