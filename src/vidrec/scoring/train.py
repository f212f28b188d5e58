"""The training loop of the completion model: BCE, Adam, early stopping, seeded."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from vidrec.scoring.config import RankerConfig
from vidrec.scoring.model import CompletionMLP


@dataclass
class TrainResult:
    """The best model by validation log loss and the per-epoch losses that chose it."""

    model: CompletionMLP
    best_epoch: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def time_split(ts: np.ndarray, val_fraction: float) -> int:
    """Index of the first validation row of a time-sorted array: the latest ``val_fraction``.

    Rows sharing the boundary timestamp all go to validation, so no validation
    example is older than a training one.
    """
    n = len(ts)
    cut = int(round(n * (1.0 - val_fraction)))
    if not 0 < cut < n:
        raise ValueError(f"{n} examples are too few to keep {val_fraction:.0%} for validation")
    return int(np.searchsorted(ts, ts[cut], side="left")) or cut


def train_classifier(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, config: RankerConfig
) -> TrainResult:
    """Fit a :class:`CompletionMLP` on standardised float32 features; stop when validation loss stalls."""
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError("training needs non-empty training and validation sets")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32))  # (n, f), (n,)
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val.astype(np.float32))
    model = CompletionMLP(x_train.shape[1], config.hidden, config.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    result = TrainResult(model, 0)
    best, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    for epoch in range(config.max_epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for s in range(0, len(xt), config.batch_size):
            idx = order[s : s + config.batch_size]
            loss = loss_fn(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        result.train_loss.append(total / len(xt))
        with torch.no_grad():
            model.eval()
            val = float(loss_fn(torch.cat([model(xv[s : s + 65_536]) for s in range(0, len(xv), 65_536)]), yv))
        result.val_loss.append(val)
        if val < best - 1e-5:
            best, best_state, stale, result.best_epoch = val, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            stale += 1
            if stale > config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return result
