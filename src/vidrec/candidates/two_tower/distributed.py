"""Scale-out training of the two-tower model: the same loop as ``fit_two_tower``, one process
per rank under ``torchrun``, gradients averaged by DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 -m vidrec.candidates.two_tower.distributed \\
        --data DATA_DIR --out MODEL_DIR [--set epochs=20 batch_size=512 ...]

How the work is split (all ranks hold the whole event log; it is small next to the model):

* Each epoch's examples are shuffled by a generator seeded with (seed, epoch), the same on
  every rank; the loop cuts that order into global batches of ``world_size * batch_size``
  and rank r trains on rows r, r + N, ... of each, so the ranks cover disjoint 1/N shards.
  ``batch_size`` is therefore per rank. A last global batch smaller than N is skipped.
* The loss runs inside ``_StepModule.forward``, so DDP's hooks see every tower call the task
  makes (``logits``, ``user_tower``, ``catalogue_tower``) and all-reduce the gradients in
  buckets while backward runs. DDP only syncs what runs under the wrapped ``forward``;
  calling the towers directly on the bare model would silently train N diverging models.
* Sampled softmax stays per rank: a positive competes with the other positives of its own
  rank's batch (plus that rank's uniform and hard negatives), and the log-Q estimate is of
  the per-rank stream, so the correction matches the negatives actually used. With N ranks
  the in-batch negatives are those of a ``batch_size`` batch, not of the global batch.
* Validation users are split across ranks; the (recall sum, user count) pairs are gathered
  and summed in rank order, so every rank gets the bit-identical recall and takes the same
  early-stopping decision. Only rank 0 logs and writes the model and report.

Backend: gloo for CPU tensors; with CUDA present the group is ``cpu:gloo,cuda:nccl`` so CUDA
tensors would go through NCCL (the training loop itself runs on CPU today).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.tasks import Batch, Task
from vidrec.candidates.two_tower.train import Parallel, TrainReport, fit_two_tower, recall_at_k
from vidrec.data.dataset import Dataset, read_dataset, write_dataset
from vidrec.errors import VidrecError

REPORT_FILE = "train_report.json"

_log = logging.getLogger(__name__)


def backend() -> str:
    """gloo on CPU; NCCL for CUDA tensors when a GPU is present."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def under_torchrun() -> bool:
    """Whether torchrun (or any launcher setting the env:// variables) started this process."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def shard_rows(batch: Batch, rank: int, world_size: int) -> Batch:
    """Rows rank, rank + N, ... of every tensor of a global batch (the rank's disjoint part)."""
    return {key: value[rank::world_size] for key, value in batch.items()}


def shard_users(
    state: pl.DataFrame, truth: pl.DataFrame, rank: int, world_size: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rank's validation users (every N-th row of ``state``) and their truth pairs."""
    mine = state.gather_every(world_size, offset=rank) if rank < state.height else state.clear()
    return mine, truth.join(mine.select("user_id"), on="user_id", how="semi")


def parameter_checksum(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer in name order: equal iff the ranks agree bit for bit."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _StepModule(nn.Module):
    """The task's loss as a ``forward``, so DDP hooks every tower call made for the step."""

    def __init__(self, model: TwoTowerModel, task: Task) -> None:
        super().__init__()
        self.model = model
        self.task = task  # a plain object, not a submodule: it holds no parameters

    def forward(self, batch: Batch) -> tuple[torch.Tensor, float]:
        return self.task.loss(self.model, batch)


class DistributedParallel(Parallel):
    """The training loop's hooks for one rank of an initialised process group.

    Args:
        seed: seeds the per-epoch shuffle shared by all ranks (pass the config's seed).
        find_unused_parameters: let DDP tolerate parameters a step does not use (one extra
            autograd-graph walk per step); today every parameter is used at every step.
    """

    def __init__(self, seed: int = 0, find_unused_parameters: bool = False) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DistributedParallel needs a process group: call init_from_env() first")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.seed, self.find_unused_parameters = seed, find_unused_parameters

    def order_rng(self, rng: np.random.Generator, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def shard(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            if len(next(iter(batch.values()))) >= self.world_size:  # every rank gets a row
                yield shard_rows(batch, self.rank, self.world_size)

    def step(self, model: TwoTowerModel, task: Task) -> Callable[[Batch], tuple[torch.Tensor, float]]:
        # Buffers (the catalogue's features) are identical on all ranks: synced once at init
        # with the parameters, never per step.
        wrapped = DistributedDataParallel(
            _StepModule(model, task),
            forward_sync_buffers=False,
            find_unused_parameters=self.find_unused_parameters,
        )
        # The ranks start from rank 0's weights (DDP broadcast them above); from here each
        # rank draws its own id-dropout masks, as one process would over the whole batch.
        torch.manual_seed(self.seed * 1_000_003 + self.rank + 1)
        return wrapped

    def total(self, loss_sum: float, weight: float) -> tuple[float, float]:
        both = torch.tensor([loss_sum, weight], dtype=torch.float64)
        dist.all_reduce(both)
        return float(both[0]), float(both[1])

    def recall(self, model: TwoTowerModel, state: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
        mine, mine_truth = shard_users(state, truth, self.rank, self.world_size)
        local = recall_at_k(model, mine, mine_truth, k) * mine.height if mine.height else 0.0
        parts = gather((local, mine.height))
        return sum(p[0] for p in parts) / max(sum(p[1] for p in parts), 1)


def gather(value: object) -> list:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def init_from_env() -> DistributedParallel | None:
    """Join the process group torchrun describes in the environment; None when not under torchrun."""
    if not under_torchrun():
        return None
    if not dist.is_initialized():
        if torch.cuda.is_available():  # one GPU per local rank, for NCCL's collectives
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group(backend())
    return DistributedParallel()  # seed 0; fit_distributed builds its own with the config's seed


def fit_distributed(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    config: TwoTowerConfig,
    log: Callable[[str], None] = _log.info,
    find_unused_parameters: bool = False,
    users: pl.DataFrame | None = None,
    checkpoints: str | Path | None = None,
    epochs: float | None = None,
) -> tuple[TwoTowerModel, TrainReport, list[str]]:
    """``fit_two_tower`` on this rank's shard; also returns every rank's parameter checksum.

    Without torchrun it is the single-process ``fit_two_tower`` (one checksum).
    """
    if not under_torchrun():
        model, report = fit_two_tower(events, videos, config, log, users=users, checkpoints=checkpoints,
                                      epochs=epochs)  # fmt: skip
        return model, report, [parameter_checksum(model)]
    init_from_env()
    parallel = DistributedParallel(config.seed, find_unused_parameters)
    quiet = log if parallel.rank == 0 else (lambda _: None)
    model, report = fit_two_tower(events, videos, config, quiet, parallel, users=users, checkpoints=checkpoints,
                                  epochs=epochs)  # fmt: skip
    return model, report, gather(parameter_checksum(model))


def fit_processes(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    config: TwoTowerConfig,
    log: Callable[[str], None] = _log.info,
    users: pl.DataFrame | None = None,
    checkpoints: str | Path | None = None,
    epochs: float | None = None,
) -> tuple[TwoTowerModel, TrainReport]:
    """``fit_two_tower`` on ``config.processes`` local ranks under ``torchrun``: the tables go to
    a temporary data directory the ranks read, rank 0's model and report come back. What
    ``fit_two_tower`` calls when ``config.processes > 1`` outside torchrun."""
    with tempfile.TemporaryDirectory(prefix="vidrec-two-tower-") as tmp:
        root = Path(tmp)
        users = users if users is not None else pl.DataFrame({"user_id": events["user_id"].unique()})
        write_dataset(Dataset(events, videos, users), root / "data")
        config.save(root / "config.json")
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        env.setdefault("OMP_NUM_THREADS", "1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={config.processes}",
               "-m", __name__, "--data", str(root / "data"), "--out", str(root / "model"),
               "--config", str(root / "config.json")]  # fmt: skip
        cmd += [] if checkpoints is None else ["--checkpoints", str(checkpoints)]
        cmd += [] if epochs is None else ["--epochs", repr(float(epochs))]
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            tail: list[str] = []
            for line in proc.stdout:  # rank 0's epoch lines, as they come
                line = line.rstrip("\n")
                tail = (tail + [line])[-40:]
                if line.startswith(("epoch", "early stop", "refit")):
                    log(line)
        if proc.returncode != 0:
            raise VidrecError(f"two-tower training on {config.processes} processes failed:\n" + "\n".join(tail),
                              "set two_tower.processes = 1 to train in this process")  # fmt: skip
        model = TwoTowerModel.load(root / "model")
        return model, read_report(root / "model")


def read_report(directory: Path) -> TrainReport:
    """The :class:`TrainReport` a ``train-two-tower`` run wrote beside its model."""
    saved = json.loads((directory / REPORT_FILE).read_text())
    return TrainReport(saved["epochs"], saved["best_epoch"], saved["best_recall"], saved["train_seconds"],
                       saved["refit_seconds"], saved["search"])  # fmt: skip


def parse_overrides(pairs: Sequence[str]) -> dict[str, object]:
    """``key=value`` config overrides; values are JSON where they parse, else strings."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"config override {pair!r} is not key=value (for example epochs=10)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _write(
    out: Path, model: TwoTowerModel, report: TrainReport, checksums: list[str], seconds: float
) -> None:
    """Rank 0's artifacts: the model (with its resolved config) and the training report."""
    model.save(out)
    summary = {
        "world_size": len(checksums),
        "backend": backend() if len(checksums) > 1 else "none",
        "parameter_checksums": checksums,
        "ranks_agree": len(set(checksums)) == 1,
        "best_epoch": report.best_epoch,
        "best_recall": report.best_recall,
        "train_seconds": report.seconds,
        "refit_seconds": report.refit_seconds,
        "wall_seconds": seconds,
        "epochs": report.epochs,
        "search": report.search,
    }
    (out / REPORT_FILE).write_text(json.dumps(summary, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Train on a data directory and save the model; run it under torchrun to scale out."""
    ap = argparse.ArgumentParser(
        prog="python -m vidrec.candidates.two_tower.distributed", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--data", type=Path, required=True, help="a vidrec data directory (events/videos/users.parquet)")
    ap.add_argument("--out", type=Path, required=True, help="where rank 0 writes the model and train_report.json")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TwoTowerConfig overrides")
    ap.add_argument("--find-unused-parameters", action="store_true", help="see DistributedParallel")
    ap.add_argument("--config", type=Path, help="a TwoTowerConfig JSON file (the --set overrides apply on top)")
    ap.add_argument("--checkpoints", type=Path, help="a folder for per-round checkpoints; a rerun resumes from them")
    ap.add_argument("--epochs", type=float, help="train exactly this many epochs (fractions allowed), no validation")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    try:
        base = json.loads(args.config.read_text()) if args.config else {}
        config = TwoTowerConfig.from_dict(base | parse_overrides(args.set))
        config = replace(config, processes=1)  # each rank trains in its own process
        ds = read_dataset(args.data)
        model, report, checksums = fit_distributed(
            ds.events, ds.videos, config, lambda m: print(m, flush=True),
            find_unused_parameters=args.find_unused_parameters, users=ds.users,
            checkpoints=args.checkpoints, epochs=args.epochs,
        )
    except (ValueError, VidrecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if dist.is_initialized():
            dist.destroy_process_group()
        return 2
    try:
        rank = dist.get_rank() if dist.is_initialized() else 0
        if rank == 0:
            _write(args.out, model, report, checksums, time.perf_counter() - start)
            print(f"saved {args.out} ({len(checksums)} process(es), ranks agree: {len(set(checksums)) == 1})")
        if dist.is_initialized():
            dist.barrier()  # no rank exits (tearing the group down) before rank 0 has written
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _exit(code: int) -> None:
    """Leave without interpreter finalisation once a rank is done.

    Gloo's background threads can abort a rank during Python's shutdown ("terminate called
    without an active exception", SIGABRT) after the group is destroyed and the model written;
    nothing is left to finalise, so the rank flushes its streams and exits with its own code.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
