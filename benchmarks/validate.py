"""Validation throughput: rows per second and peak memory of `ingest` on a large log.

    .venv/bin/python benchmarks/validate.py [--users 100000 --videos 100000 --events 10000000]

Simulates a platform of the given size (the simulator's own time is not counted), then
times `validate` on it and reports peak RSS of the process. A copy with 1% of event rows
mangled is validated too, so the quarantine path is measured as well.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.data.dataset import read_dataset
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.data.validation import validate


def mangle(events: pl.DataFrame, share: float, seed: int = 0) -> pl.DataFrame:
    """Break ``share`` of the rows: unknown kinds, negative seconds, duplicates."""
    rng = np.random.default_rng(seed)
    bad = pl.Series(rng.random(events.height) < share)
    kind = pl.when(bad & (pl.int_range(pl.len()) % 2 == 0)).then(pl.lit("share")).otherwise(pl.col("event"))
    return pl.concat([events.with_columns(event=kind), events.filter(bad).head(1000)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SimulatorConfig.for_target_events(args.users, args.videos, 28, args.events)
        simulate(cfg, Path(tmp))
        ds = read_dataset(tmp)
    for name, events in (("clean", ds.events), ("1% mangled", mangle(ds.events, 0.01))):
        start = time.perf_counter()
        result = validate(events, ds.videos, ds.users)
        seconds = time.perf_counter() - start
        print(f"{name:<11} {events.height:>12,} events  {seconds:6.1f} s  "
              f"{events.height / seconds:>12,.0f} rows/s  quarantined {result.quarantine.height:,}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
