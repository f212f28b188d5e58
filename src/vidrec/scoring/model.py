"""The completion model: an MLP from standardised dense features to one logit."""

from __future__ import annotations

import torch
from torch import nn


class CompletionMLP(nn.Module):
    """``in_dim -> hidden... -> 1`` with ReLU and dropout; outputs the logit of P(completed)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (128, 64), dropout: float = 0.1) -> None:
        super().__init__()
        if in_dim < 1:
            raise ValueError(f"CompletionMLP needs at least one input feature, got {in_dim}")
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (batch, in_dim) -> logits (batch,)."""
        return self.net(x).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 65_536) -> torch.Tensor:
        """Uncalibrated probabilities (n,) in eval mode, in chunks to bound memory."""
        was_training = self.training
        self.eval()
        out = torch.cat([torch.sigmoid(self(x[s : s + batch_size])) for s in range(0, len(x), batch_size)])
        self.train(was_training)
        return out if len(x) else torch.zeros(0)
