"""Benchmark: `vidrec train` on simulated platforms of growing size -- wall time, seconds per
stage and peak memory (from ``/usr/bin/time -v``), one row per platform.

    .venv/bin/python benchmarks/train_scale.py default 2m        # 0.4M and 2M events
    .venv/bin/python benchmarks/train_scale.py 10m               # 100,000 users x 100,000 videos
    .venv/bin/python benchmarks/train_scale.py 2m --config benchmarks/two_processes.toml   # both models on 2 processes

Each platform is simulated once under ``runs/scale/<name>/data`` (reused when there) and
trained with the default settings into ``runs/scale/<name>/model`` by the command a user runs
(``vidrec train DATA --out MODEL``), in its own process, so the peak resident memory is the
whole training's. The per-stage seconds are the model's ``timings.json``: each candidate
generator's fit, and ``scoring`` (the ranker's feature two-tower, examples, features and
networks). Validation and saving are the rest of the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path("runs/scale")
PLATFORMS = {  # name -> (users, videos, days)
    "default": (3_000, 2_000, 28),
    "2m": (15_000, 10_000, 28),
    "10m": (100_000, 100_000, 28),
    "100m": (1_000_000, 1_000_000, 28),
}
VIDREC = str(Path(sys.executable).with_name("vidrec"))
LOADS: list[float] = []  # 1-minute load averages sampled while a command runs (2 cores: 2.0 is a full machine)


def _timed(cmd: list[str], log: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of ``cmd`` under /usr/bin/time -v; its output goes to ``log``."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            LOADS.append(os.getloadavg()[0])
            time.sleep(10)
    done = proc
    wall = time.perf_counter() - start
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))  # type: ignore[union-attr]
    return wall, peak_kb / 2**20


def _events(data: Path) -> int:
    import polars as pl

    return int(pl.scan_parquet(data / "events.parquet").select(pl.len()).collect().item())


def run(name: str, config: Path | None = None) -> dict:
    users, videos, days = PLATFORMS[name]
    root = ROOT / name
    data, model = root / "data", root / ("model" if config is None else f"model-{config.stem}")
    root.mkdir(parents=True, exist_ok=True)
    if not (data / "events.parquet").exists():
        cmd = [VIDREC, "simulate", "--users", str(users), "--videos", str(videos), "--days", str(days), "--out", str(data)]
        _timed(cmd, root / "simulate.log")
    LOADS.clear()
    extra = [] if config is None else ["--config", str(config)]
    log = root / ("train.log" if config is None else f"train-{config.stem}.log")
    wall, peak = _timed([VIDREC, "train", str(data), "--out", str(model), *extra], log)
    load = sum(LOADS) / max(len(LOADS), 1)
    latest = model / (model / "LATEST").read_text().strip()
    timings = json.loads((latest / "timings.json").read_text())
    memory = latest / "memory.json"  # peak resident GiB after each stage: the stage that set the peak
    peaks = json.loads(memory.read_text())["peak_gib_after"] if memory.exists() else {}
    return {"platform": name if config is None else f"{name} ({config.stem})", "users": users, "videos": videos, "events": _events(data), "wall_s": wall,
            "peak_gib": peak, "mean_load": round(load, 2), **{f"{k}_s": v for k, v in timings.items()},
            **{f"{k}_peak_gib": round(v, 2) for k, v in peaks.items()}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("platforms", nargs="+", choices=list(PLATFORMS))
    ap.add_argument("--config", type=Path, help="a vidrec TOML config for `vidrec train` (default: the defaults)")
    args = ap.parse_args()
    rows = []
    for name in args.platforms:
        row = run(name, args.config)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| platform | users x videos | events | wall | two-tower retrieval | co-watch | feature two-tower | "
          "ranker | budget | peak RSS | peak set by | mean load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['platform']} | {r['users']:,} x {r['videos']:,} | {r['events']:,} | {r['wall_s'] / 60:.1f} min | "
              f"{r.get('candidates.two_tower_s', 0):.0f} s | {r.get('candidates.cowatch_s', 0):.0f} s | "
              f"{r.get('scoring.two_tower_features_s', 0):.0f} s | {r.get('scoring.ranker_s', 0):.0f} s | "
              f"{r.get('reranking.budget_s', 0):.0f} s | {r['peak_gib']:.2f} GiB | {_peak_stage(r)} | "
              f"{r['mean_load']:.1f} |")


def _peak_stage(row: dict) -> str:
    """The first stage after which the process's peak memory was its final peak (memory.json)."""
    peaks = [(k.removesuffix("_peak_gib"), v) for k, v in row.items() if k.endswith("_peak_gib")]
    top = max((v for _, v in peaks), default=None)
    return next((k for k, v in peaks if v == top), "-")

if __name__ == "__main__":
    main()
