"""Benchmark: the ranker's networks trained in one process vs on 2 processes under torchrun
(DDP, gloo), on the training set `vidrec train` builds for a data directory.

    .venv/bin/python benchmarks/ranker_processes.py runs/scale/2m/data [--processes 2]

The training set is the default pipeline's: the ranker's examples from the last 30% of
watches, their point-in-time features and the embeddings of a feature two-tower trained on
the earlier events (here for one epoch: the timing does not depend on its quality). Both runs
train the default ensemble (3 members) on the same standardised arrays with the same global
batch per step (2 x 1,024 rows on 2 processes, 2,048 in one), so they take the same number
of steps; printed: wall seconds, examples per second (epochs x rows / seconds) and each
member's best validation loss. The 1-minute load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
from vidrec.candidates.two_tower.train import fit_two_tower
from vidrec.catalogue import Catalogue
from vidrec.config import PipelineConfig
from vidrec.data.validation import read_valid
from vidrec.pipeline import ranker_cut
from vidrec.scoring.distributed import train_processes
from vidrec.scoring.features import Standardizer
from vidrec.scoring.ranker import MultiTaskRanker
from vidrec.scoring.train import member_configs, time_split, train_classifier


def arrays(data_dir: Path) -> tuple[dict[str, np.ndarray], PipelineConfig]:
    """The standardised arrays ``MultiTaskRanker.fit_arrays`` trains its networks on."""
    train = read_valid(data_dir).dataset
    cfg = PipelineConfig()
    cut = ranker_cut(train.events, cfg.ranker_period)
    early = train.events.filter(pl.col("ts") < cut)
    model, _ = fit_two_tower(early, train.videos, replace(cfg.two_tower, val_fraction=0.0), epochs=1.0)
    ranker = MultiTaskRanker(replace(cfg.ranker, examples_since=cut))
    data, _ = ranker.prepare(train, TwoTowerEmbeddings(model, Catalogue(train.videos)))
    split = time_split(data.ts, cfg.ranker.val_fraction)
    xs = Standardizer().fit(data.x[:split])(data.x)
    return {"x_train": xs[:split], "y_train": data.y[:split, :1], "x_val": xs[split:], "y_val": data.y[split:, :1]}, cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    a, cfg = arrays(args.data_dir)
    n = len(a["x_train"])
    print(f"{n:,} training rows x {a['x_train'].shape[1]} features, {len(a['x_val']):,} validation rows")
    one_cfg = replace(cfg.ranker, batch_size=cfg.ranker.batch_size)
    many_cfg = replace(cfg.ranker, batch_size=cfg.ranker.batch_size // args.processes)
    t0 = time.perf_counter()
    one = [train_classifier(a["x_train"], a["y_train"], a["x_val"], a["y_val"], c) for c in member_configs(one_cfg)]
    t1 = time.perf_counter()
    load1 = os.getloadavg()[0]
    many = train_processes(a, many_cfg, args.processes)
    t2 = time.perf_counter()
    load2 = os.getloadavg()[0]
    for name, results, secs, load in (("1 process", one, t1 - t0, load1),
                                      (f"{args.processes} processes (DDP)", many, t2 - t1, load2)):
        epochs = sum(len(r.train_loss) for r in results)
        print(f"{name:>22}: {secs:6.1f} s, {epochs} epochs, {epochs * n / secs:9,.0f} examples/s, best validation "
              f"loss {', '.join(f'{min(r.val_loss):.4f}' for r in results)} (load {load:.1f})")
    print(f"speed-up {((t1 - t0) / sum(len(r.train_loss) for r in one)) / ((t2 - t1) / sum(len(r.train_loss) for r in many)):.2f}x per epoch")


if __name__ == "__main__":
    main()
