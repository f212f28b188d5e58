"""Scale-out training of the ranker's networks: one process per rank under ``torchrun``,
gradients averaged by DistributedDataParallel.

    torchrun --standalone --nproc_per_node=2 -m vidrec.scoring.distributed --arrays DIR --out DIR

``DIR`` holds what :func:`write_arrays` writes: the standardised training and validation
arrays and the ranker config. Every rank trains every ensemble member: each epoch's order
comes from the member's seeded generator, the same on every rank; the loop cuts it into
global batches of ``world_size * batch_size`` and rank r steps on rows r, r + N, ... of
each (``batch_size`` is per rank). Every rank computes the whole validation loss with the
same parameters, so all take the same early-stopping decision. Rank 0 writes each member's
weights and a report with every rank's parameter checksum. ``MultiTaskRanker`` runs this
itself when ``RankerConfig.processes > 1``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidrec.candidates.two_tower.distributed import backend, gather, parameter_checksum, under_torchrun
from vidrec.errors import VidrecError
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.train import Shards, TrainResult, build_net, member_configs, train_classifier

REPORT_FILE = "report.json"
ARRAYS = ("x_train", "y_train", "x_val", "y_val")
_log = logging.getLogger(__name__)


class DistributedShards(Shards):
    """The ranker loop's hooks for one rank of an initialised process group."""

    def __init__(self) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DistributedShards needs a process group (run under torchrun)")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def wrap(self, model: nn.Module, seed: int) -> nn.Module:
        wrapped = DistributedDataParallel(model)  # broadcasts rank 0's initial weights
        torch.manual_seed(seed * 1_000_003 + self.rank + 1)  # each rank its own dropout masks
        return wrapped

    def part(self, rows: torch.Tensor) -> torch.Tensor:
        return rows[self.rank :: self.world_size]


def write_arrays(directory: Path, arrays: dict[str, np.ndarray], config: RankerConfig) -> None:
    """What the ranks read: the four arrays as ``.npy`` and the config as JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        np.save(directory / f"{name}.npy", np.ascontiguousarray(arrays[name]))
    (directory / "config.json").write_text(json.dumps(config.to_dict()))


def _train_members(arrays: Path, out: Path, checkpoints: Path | None) -> list[TrainResult]:
    config = RankerConfig.from_dict(json.loads((arrays / "config.json").read_text()))
    x = {name: np.load(arrays / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    shards = DistributedShards() if dist.is_initialized() else Shards()
    log = (lambda m: print(m, flush=True)) if shards.rank == 0 else None
    results = []
    for i, member in enumerate(member_configs(config)):
        where = None if checkpoints is None else checkpoints / f"member{i}.pt"
        results.append(train_classifier(np.asarray(x["x_train"]), np.asarray(x["y_train"]), np.asarray(x["x_val"]),
                                        np.asarray(x["y_val"]), member, where, log, shards))  # fmt: skip
    return results


def train_processes(
    arrays: dict[str, np.ndarray], config: RankerConfig, processes: int, checkpoints: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[TrainResult]:
    """Train ``config``'s members under ``torchrun`` on ``processes`` local ranks and load rank 0's
    weights back: what ``MultiTaskRanker.fit_arrays`` calls when ``config.processes > 1``."""
    with tempfile.TemporaryDirectory(prefix="vidrec-ranker-") as tmp:
        root = Path(tmp)
        write_arrays(root / "arrays", arrays, config)
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        env.setdefault("OMP_NUM_THREADS", "1")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "vidrec.scoring.distributed", "--arrays", str(root / "arrays"), "--out", str(root / "out")]
        if checkpoints is not None:
            cmd += ["--checkpoints", str(checkpoints)]
        tail: list[str] = []
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # rank 0's epoch lines, as they come
                line = line.rstrip("\n")
                tail = (tail + [line])[-40:]
                if log is not None and line.startswith("ranker ("):
                    log(line)
        if proc.returncode != 0:
            raise VidrecError(f"ranker training on {processes} processes failed:\n" + "\n".join(tail),
                              "set ranker.processes = 1 to train in this process")  # fmt: skip
        return load_results(root / "out", arrays["x_train"].shape[1], config)


def load_results(out: Path, in_dim: int, config: RankerConfig) -> list[TrainResult]:
    """The members rank 0 wrote, as :class:`TrainResult` objects."""
    report = json.loads((out / REPORT_FILE).read_text())
    results = []
    for i, (member, row) in enumerate(zip(member_configs(config), report["members"])):
        net = build_net(in_dim, member)
        net.load_state_dict(torch.load(out / f"member{i}.pt", map_location="cpu"))
        net.eval()
        results.append(TrainResult(net, row["best_epoch"], row["train_loss"], row["val_loss"]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Train the ranker's members on the arrays in ``--arrays``; rank 0 writes them to ``--out``."""
    ap = argparse.ArgumentParser(prog="python -m vidrec.scoring.distributed", description=__doc__.splitlines()[0])
    ap.add_argument("--arrays", type=Path, required=True, help="a folder written by write_arrays")
    ap.add_argument("--out", type=Path, required=True, help="where rank 0 writes member*.pt and report.json")
    ap.add_argument("--checkpoints", type=Path, help="a folder for per-epoch checkpoints (a rerun resumes)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if under_torchrun() and not dist.is_initialized():
        dist.init_process_group(backend())
    try:
        results = _train_members(args.arrays, args.out, args.checkpoints)
        sums = [parameter_checksum(r.model) for r in results]
        every = gather(sums) if dist.is_initialized() else [sums]
        if not dist.is_initialized() or dist.get_rank() == 0:
            args.out.mkdir(parents=True, exist_ok=True)
            for i, r in enumerate(results):
                torch.save(r.model.state_dict(), args.out / f"member{i}.pt")
            report = {"world_size": len(every), "checksums": every, "ranks_agree": all(e == sums for e in every),
                      "seconds": time.perf_counter() - start,
                      "members": [{"best_epoch": r.best_epoch, "train_loss": r.train_loss, "val_loss": r.val_loss}
                                  for r in results]}  # fmt: skip
            (args.out / REPORT_FILE).write_text(json.dumps(report, indent=2))
        if dist.is_initialized():
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # gloo's threads can abort a clean interpreter shutdown (see two_tower.distributed)
