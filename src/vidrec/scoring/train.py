"""The training loop of the ranker: weighted sum of per-task BCE, Adam, early stopping, seeded."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidrec.checkpoint import Checkpoint, input_key
from vidrec.errors import VidrecError
from vidrec.progress import EpochClock, bar
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.model import Ensemble, MultiTaskNet


@dataclass
class TrainResult:
    """The best model by validation log loss and the per-epoch losses that chose it."""

    model: MultiTaskNet
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


def build_net(in_dim: int, config: RankerConfig) -> MultiTaskNet:
    """The network ``config`` describes, one head per task with a positive loss weight."""
    return MultiTaskNet(
        in_dim, len(config.tasks), config.architecture, config.hidden, config.cross_layers,
        config.experts, config.expert_hidden, config.tower_hidden, config.dropout,
    )  # fmt: skip


def build_model(in_dim: int, config: RankerConfig) -> MultiTaskNet | Ensemble:
    """The (untrained) model ``config`` describes: one network, or an ensemble of ``config.ensemble``."""
    if config.ensemble == 1:
        return build_net(in_dim, config)
    return Ensemble([build_net(in_dim, config) for _ in range(config.ensemble)])


def member_configs(config: RankerConfig) -> list[RankerConfig]:
    """One config per ensemble member, the same but for the seed: ``seed * n + i`` for member
    ``i`` of ``n``, so ensembles of neighbouring seeds share no member (and n = 1 keeps ``seed``)."""
    n = config.ensemble
    return [replace(config, seed=config.seed * n + i) for i in range(n)]


class Shards:
    """How the loop splits its work over processes; this default (one process) splits nothing.
    ``vidrec.scoring.distributed`` overrides it for ranks under torchrun."""

    rank, world_size = 0, 1

    def wrap(self, model: nn.Module, seed: int) -> nn.Module:
        """The module the steps call (under torchrun: wrapped for gradient averaging)."""
        return model

    def part(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's rows of a batch of ``world_size * batch_size``."""
        return rows


def train_classifier(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, config: RankerConfig,
    checkpoint: str | Path | None = None, log: Callable[[str], None] | None = None, shards: Shards | None = None,
) -> TrainResult:
    """Fit the network on standardised float32 features and 0/1 labels ``(n, tasks)``.

    The loss is ``sum_t w_t * BCE_t`` with the positive ``config.loss_weights``; training
    stops when that loss on the validation rows stalls and keeps the best epoch.
    ``checkpoint``: a file the loop saves its state to after every epoch and resumes from.
    ``shards``: under torchrun each rank steps on its part of every batch (same order on
    every rank), gradients averaged; every rank computes the same validation loss.
    """
    shards = shards or Shards()
    device = training_device(config.device, shards.rank)
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError("training needs non-empty training and validation sets")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32).reshape(len(x_train), -1))
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val.astype(np.float32).reshape(len(x_val), -1))
    weights = torch.tensor([w for w in config.loss_weights if w > 0], dtype=torch.float32)  # (tasks,)
    if yt.shape[1] != len(weights):
        raise ValueError(f"labels have {yt.shape[1]} tasks, the config {len(weights)}")
    model = build_net(x_train.shape[1], config).to(device)
    xt, yt, xv, yv, weights = (t.to(device) for t in (xt, yt, xv, yv, weights))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    bce = nn.BCEWithLogitsLoss(reduction="none")

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (bce(logits, y).mean(0) * weights).sum()

    result = TrainResult(model, 0)
    loop = {"epoch": 0, "best": float("inf"), "best_state": copy.deepcopy(model.state_dict()), "stale": 0,
            "stopped": False}  # fmt: skip
    key = input_key(asdict(config) | {"world_size": shards.world_size}, x_train, y_train, x_val, y_val)
    if checkpoint is not None and shards.world_size > 1:
        checkpoint = Path(checkpoint).with_suffix(f".rank{shards.rank}.pt")
    saved = Checkpoint(checkpoint, key)
    state = saved.load()
    if state is not None:
        loop = state["loop"]
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        result.train_loss, result.val_loss, result.best_epoch = state["train_loss"], state["val_loss"], state["best"]
    step_model = shards.wrap(model, config.seed)
    if state is not None:
        torch.set_rng_state(state["torch_rng"])  # after ``wrap``: under torchrun it reseeds each rank
        if state.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    clock = EpochClock(config.max_epochs)
    batch = config.batch_size * shards.world_size
    steps = -(-len(xt) // batch)
    for epoch in range(loop["epoch"], config.max_epochs):
        if loop["stopped"]:
            break
        clock.start()
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        total, rows_seen = 0.0, 0
        for s in bar(range(0, len(xt), batch), steps, f"ranker (seed {config.seed}) epoch {epoch + 1}"):
            rows = order[s : s + batch]
            if len(rows) < shards.world_size:  # the same on every rank: all skip it
                continue
            idx = shards.part(rows).to(device)
            loss = loss_fn(step_model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            rows_seen += len(idx)
        result.train_loss.append(total / max(rows_seen, 1))  # this process's rows (its share under torchrun)
        with torch.no_grad():
            model.eval()
            val = float(loss_fn(torch.cat([model(xv[s : s + 65_536]) for s in range(0, len(xv), 65_536)]), yv))
        result.val_loss.append(val)
        clock.stop(epoch + 1)
        if val < loop["best"] - 1e-5:
            loop |= {"best": val, "best_state": copy.deepcopy(model.state_dict()), "stale": 0}
            result.best_epoch = epoch
        else:
            loop["stale"] += 1
            loop["stopped"] = loop["stale"] > config.patience
        loop["epoch"] = epoch + 1
        if log is not None:
            log(f"ranker (seed {config.seed}) epoch {epoch + 1:2d}/{config.max_epochs}  train loss "
                f"{result.train_loss[-1]:.4f}  validation loss {val:.4f}" + clock.left())  # fmt: skip
        saved.save({"loop": loop, "model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(), "train_loss": result.train_loss,
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "val_loss": result.val_loss, "best": result.best_epoch})  # fmt: skip
    model.load_state_dict(loop["best_state"])
    model.cpu().eval()  # served on the CPU
    return result


def training_device(name: str, rank: int = 0) -> torch.device:
    """The device ``name`` means here: "auto" is a CUDA GPU when present (one per local rank
    under torchrun), else the CPU; asking for CUDA without one is a clear error."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise VidrecError(f"device {name!r} asked for, but torch sees no CUDA GPU here",
                          "set device = \"auto\" or \"cpu\", or install a CUDA build of torch on a GPU machine")
    if name.startswith("cuda:"):
        return torch.device(name)
    local = int(os.environ.get("LOCAL_RANK", rank))
    return torch.device("cuda", local % torch.cuda.device_count())
