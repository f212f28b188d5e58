"""The ranker's network: one shared input, one logit per task.

Three architectures share the input (standardised dense features) and differ in how
tasks share parameters:

* ``"mlp"``: one MLP, a linear output per task (the first ranker, multi-output).
* ``"shared_bottom"``: DCN-v2 cross layers, one shared MLP bottom, one MLP tower per task.
* ``"mmoe"``: DCN-v2 cross layers, then a multi-gate mixture of experts (Zhao et al.
  2019): shared expert MLPs, one softmax gate per task mixing them, one tower per task.
  Tasks that disagree (completion vs dislike) can draw on different experts instead of
  fighting over one bottom.

Cross layer (Wang et al. 2021, DCN-v2): ``x_{l+1} = x0 * (W x_l + b) + x_l``, explicit
feature crosses of growing degree at ``d^2`` parameters per layer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

ARCHITECTURES = ("mmoe", "shared_bottom", "mlp")


def mlp(in_dim: int, hidden: tuple[int, ...], dropout: float) -> tuple[nn.Sequential, int]:
    """ReLU MLP (dropout after each layer) and its output width; identity for no layers."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    return nn.Sequential(*layers), width


class CrossNetwork(nn.Module):
    """``layers`` DCN-v2 cross layers with full-rank ``W`` (d x d); shape-preserving."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        for layer in self.layers:  # start near the identity map: x_{l+1} ~ x_l
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class MultiTaskNet(nn.Module):
    """``(batch, in_dim) -> (batch, tasks)`` logits; see the module docstring for ``architecture``."""

    def __init__(
        self,
        in_dim: int,
        tasks: int,
        architecture: str = "mmoe",
        hidden: tuple[int, ...] = (128, 64),
        cross_layers: int = 2,
        experts: int = 4,
        expert_hidden: tuple[int, ...] = (64,),
        tower_hidden: tuple[int, ...] = (32,),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if in_dim < 1 or tasks < 1:
            raise ValueError(f"MultiTaskNet needs >= 1 input feature and task, got {in_dim} and {tasks}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.architecture = architecture
        self.cross = CrossNetwork(in_dim, 0 if architecture == "mlp" else cross_layers)
        if architecture == "mmoe":
            made = [mlp(in_dim, expert_hidden, dropout) for _ in range(experts)]
            self.experts = nn.ModuleList(m for m, _ in made)
            self.gates = nn.ModuleList(nn.Linear(in_dim, experts) for _ in range(tasks))
            width = made[0][1]
        else:
            self.bottom, width = mlp(in_dim, hidden, dropout)
        towers = [mlp(width, () if architecture == "mlp" else tower_hidden, dropout) for _ in range(tasks)]
        self.towers = nn.ModuleList(t for t, _ in towers)
        self.heads = nn.ModuleList(nn.Linear(w, 1) for _, w in towers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (batch, in_dim) -> logits (batch, tasks)."""
        z = self.cross(x)
        if self.architecture == "mmoe":
            expert_out = torch.stack([e(z) for e in self.experts], dim=1)  # (batch, experts, width)
            inputs = [(torch.softmax(g(z), dim=-1).unsqueeze(-1) * expert_out).sum(1) for g in self.gates]
        else:
            shared = self.bottom(z)
            inputs = [shared] * len(self.heads)
        return torch.cat([h(t(i)) for i, t, h in zip(inputs, self.towers, self.heads)], dim=1)

    def splits_input(self) -> bool:
        """Whether the input meets one linear layer first (no cross layers, no experts): then input
        columns every row shares can be multiplied once per request (:meth:`predict_proba_split`)."""
        return self.architecture != "mmoe" and len(self.cross.layers) == 0 and len(self.bottom) > 0

    @torch.no_grad()
    def predict_proba_split(
        self, rows: torch.Tensor, users: torch.Tensor, seg: torch.Tensor, videos: torch.Tensor, which: torch.Tensor,
        start: int,
    ) -> torch.Tensor:
        """:meth:`predict_proba` of inputs given in blocks: row i is ``rows[i]`` with ``users[seg[i]]``
        and then ``videos[which[i]]`` (both d wide) inserted at column ``start``. The same numbers,
        without multiplying a user's columns once per candidate or a video's once per request
        that has it (requests served together share many candidates)."""
        if self.training or not self.splits_input():
            raise ValueError("predict_proba_split needs an eval-mode network whose input meets a linear layer")
        first = self.bottom[0]
        d = users.shape[1]
        w = first.weight
        rest = torch.cat([w[:, :start], w[:, start + 2 * d :]], dim=1)  # (h, in - 2d)
        per_user = users @ w[:, start : start + d].T + first.bias  # (users, h)
        per_video = videos @ w[:, start + d : start + 2 * d].T  # (videos, h)
        # index_select, not per_user[seg]: advanced indexing is several times slower on CPU
        hidden = torch.addmm(per_user.index_select(0, seg), rows, rest.T)  # (n, h)
        hidden = hidden.add_(per_video.index_select(0, which))
        shared_out = self.bottom[1:](hidden)
        return torch.sigmoid(torch.cat([h(t(shared_out)) for t, h in zip(self.towers, self.heads)], dim=1))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 65_536) -> torch.Tensor:
        """Uncalibrated probabilities (n, tasks) in eval mode, in chunks to bound memory."""
        was_training = self.training
        if was_training:
            self.eval()
        parts = [torch.sigmoid(self(x[s : s + batch_size])) for s in range(0, len(x), batch_size)]
        if was_training:
            self.train()
        return torch.cat(parts) if parts else torch.zeros(0, len(self.heads))


class _Split(nn.Module):
    """``predict_proba_split`` at a fixed column, as a module (what ``torch.jit.trace`` takes)."""

    def __init__(self, net: nn.Module, start: int) -> None:
        super().__init__()
        self.net, self.start = net, start

    def forward(self, *blocks: torch.Tensor) -> torch.Tensor:
        return self.net.predict_proba_split(*blocks, self.start)


def traced_split(net: nn.Module, start: int, *blocks: torch.Tensor) -> Callable[..., torch.Tensor]:
    """``net.predict_proba_split`` at column ``start`` traced once (a request's forward then runs
    without Python per layer, the weights cut once); the eager module when tracing fails or disagrees."""
    module = _Split(net, start).eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                traced = torch.jit.freeze(torch.jit.trace(module, blocks, check_trace=False))
                if torch.allclose(traced(*blocks), module(*blocks), atol=1e-6):
                    return traced
    except (RuntimeError, torch.jit.Error):
        pass
    return module


class Ensemble(nn.Module):
    """Networks trained from different seeds, their probabilities averaged.

    One small network's ranking moves noticeably with its seed (initialisation, batch
    order, the epoch early stopping picks); the average of a few is steadier and better.
    """

    def __init__(self, members: list[MultiTaskNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 65_536) -> torch.Tensor:
        """Mean of the members' uncalibrated probabilities (n, tasks)."""
        return torch.stack([m.predict_proba(x, batch_size) for m in self.members]).mean(dim=0)

    def splits_input(self) -> bool:
        return all(m.splits_input() for m in self.members)

    @torch.no_grad()
    def predict_proba_split(self, *blocks: torch.Tensor | int) -> torch.Tensor:
        """Mean of the members' :meth:`MultiTaskNet.predict_proba_split`."""
        return torch.stack([m.predict_proba_split(*blocks) for m in self.members]).mean(dim=0)

