"""Two-tower training throughput on ML-100K: 1 process x 1 and 2 threads vs 2 processes x 1 thread
(DDP, gloo), and the wall time to the early-stopping point of the default config.

Data: ML-100K through vidrec's movielens adapter and validation, per-user temporal 80/20 split;
the models train on the train part. Each run is its own process (torchrun for 2 ranks), so
thread settings and process groups do not leak between runs. Throughput is examples per
second of the training loop (validation excluded), median over the epochs after the first.
The 1-minute load average is printed next to every figure: on a shared machine it says how
many cores the run really had.

    .venv/bin/python benchmarks/two_tower_throughput.py [--ml100k DIR] [--epochs 4] [--skip-early-stop]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidrec.candidates.two_tower.distributed import REPORT_FILE
from vidrec.data.adapters import load_source
from vidrec.data.dataset import read_dataset
from vidrec.data.ingest import ingest_tables
from vidrec.data.splits import SplitConfig, write_split

ENTRY = "vidrec.candidates.two_tower.distributed"


def prepare(ml100k: Path, root: Path) -> Path:
    """Validated ML-100K, split per user by time; returns the train data directory."""
    raw = load_source("movielens", ml100k)
    ingest_tables(raw.events, raw.videos, raw.users, root / "data", sources=raw.sources)
    write_split(read_dataset(root / "data"), root / "split", SplitConfig())
    return root / "split" / "train"


def run(data: Path, out: Path, procs: int, threads: int, overrides: list[str]) -> tuple[dict, float, float]:
    """Train in a fresh process group; returns (rank 0's report, wall seconds, load before)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = str(threads)
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", "-m", ENTRY]
        if procs > 1 else [sys.executable, "-m", ENTRY]
    )
    cmd = [*launcher, "--data", str(data), "--out", str(out), "--set", f"threads={threads}", *overrides]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / REPORT_FILE).read_text()), wall, load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ml100k", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ml-100k")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of each throughput run")
    ap.add_argument("--skip-early-stop", action="store_true", help="only the throughput runs")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vidrec-tt-throughput-"))
    data = prepare(args.ml100k, root)
    n_events = read_dataset(data).events.height
    print(f"ML-100K train part: {n_events:,} events; cores {os.cpu_count()}; artifacts {root}")

    fixed = [f"epochs={args.epochs}", "val_fraction=0.0"]  # default model size, no validation
    print(f"\nthroughput, default model size, {args.epochs} epochs, no validation")
    print(f"{'setup':24s} {'examples/s':>11s} {'per-epoch range':>17s} {'wall s':>7s} {'load1 before':>13s}")
    for procs, threads in ((1, 1), (1, 2), (2, 1)):
        report, wall, load = run(data, root / f"tp_{procs}x{threads}", procs, threads, fixed)
        rates = [e["examples_per_s"] for e in report["epochs"]][1:] or [report["epochs"][0]["examples_per_s"]]
        print(f"{f'{procs} process x {threads} thread':24s} {statistics.median(rates):11,.0f} "
              f"{min(rates):8,.0f}-{max(rates):<8,.0f} {wall:7.1f} {load:13.2f}  (after: {os.getloadavg()[0]:.2f})")
    if args.skip_early_stop:
        return
    print("\nwall time to the early-stopping point, default config (validation carve, patience, refit)")
    for procs in (1, 2):
        report, wall, load = run(data, root / f"es_{procs}", procs, 1, [])
        print(f"{procs} process(es) x 1 thread: best epoch {report['best_epoch']} of {len(report['epochs'])} run, "
              f"val recall@100 {report['best_recall']:.4f}, search {report['train_seconds']:.1f} s + refit "
              f"{report['refit_seconds']:.1f} s, process wall {wall:.1f} s; load1 before {load:.2f}, "
              f"after {os.getloadavg()[0]:.2f}; ranks agree: {report['ranks_agree']}")


if __name__ == "__main__":
    main()
