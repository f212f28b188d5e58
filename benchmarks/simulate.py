"""Benchmark: time and peak memory of the simulator at 10M and 100M events.

Each size runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own. The
budgets it is compared with: 10M events (100k users x 100k videos) in under 5 minutes
and 4 GiB; at 1M x 1M, memory bounded by the daily chunk, not by the total, so peak
RSS must not grow with the number of days.

    .venv/bin/python benchmarks/simulate.py                 # (a) 10M, (b) 1M x 1M chunk scaling
    .venv/bin/python benchmarks/simulate.py --full-large    # (b) also the full 28 days (~100M)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

DAYS = 28
TIME_BUDGET_S = 300.0
MEMORY_BUDGET_MIB = 4096.0


def child(users: int, videos: int, days: int, events_full: int, out: str) -> None:
    """Run one simulation and print its figures as JSON (called in a subprocess)."""
    from vidrec.data.simulator import SimulatorConfig, simulate

    # The impression rate of the full-length run, so a shortened run has the same daily chunk.
    full = SimulatorConfig.for_target_events(users, videos, DAYS, events_full)
    cfg = SimulatorConfig(users=users, videos=videos, days=days, impressions_per_user_day=full.impressions_per_user_day)
    start = time.perf_counter()
    result = simulate(cfg, out)
    seconds = time.perf_counter() - start
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
    print(json.dumps({"users": users, "videos": videos, "days": days, "events": result["summary"]["events"],
                      "seconds": seconds, "peak_rss_mib": rss_mib}))


def run(name: str, users: int, videos: int, days: int, events_full: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vidrec-bench-") as out:
        cmd = [sys.executable, __file__, "--child", str(users), str(videos), str(days), str(events_full), out]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["name"] = name
    print(f"{name:<28} {row['users']:>9,} {row['videos']:>9,} {row['days']:>4} {row['events']:>12,} "
          f"{row['seconds']:>8.1f} {row['events'] / row['seconds']:>12,.0f} {row['peak_rss_mib']:>9,.0f}",
          flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--full-large", action="store_true", help="also run 1M x 1M for all 28 days")
    args = parser.parse_args()
    if args.child:
        users, videos, days, events_full, out = args.child
        child(int(users), int(videos), int(days), int(events_full), out)
        return
    print(f"{'run':<28} {'users':>9} {'videos':>9} {'days':>4} {'events':>12} {'seconds':>8} "
          f"{'events/s':>12} {'peak MiB':>9}")
    rows = [run("default (demo data set)", 3_000, 2_000, DAYS, 3_000 * DAYS * 4 * 123 // 100)]
    rows.append(run("(a) 100k x 100k, 10M", 100_000, 100_000, DAYS, 10_000_000))
    scaling = [run(f"(b) 1M x 1M, {d} days", 1_000_000, 1_000_000, d, 100_000_000) for d in (2, 4)]
    if args.full_large:
        scaling.append(run("(b) 1M x 1M, 28 days, 100M", 1_000_000, 1_000_000, DAYS, 100_000_000))
    a = rows[1]
    print(f"\n(a) budget: < {TIME_BUDGET_S:.0f} s and < {MEMORY_BUDGET_MIB:,.0f} MiB -> "
          f"{'within' if a['seconds'] < TIME_BUDGET_S and a['peak_rss_mib'] < MEMORY_BUDGET_MIB else 'OVER'}")
    s2, s4 = scaling[0], scaling[1]
    per_day = (s4["seconds"] - s2["seconds"]) / 2
    fixed = s2["seconds"] - 2 * per_day
    print(f"(b) per simulated day: {per_day:.1f} s, {(s4['events'] - s2['events']) / 2:,.0f} events; "
          f"setup {fixed:.1f} s; extrapolated 28 days: {fixed + DAYS * per_day:.0f} s; "
          f"peak RSS 2 days {s2['peak_rss_mib']:,.0f} MiB vs 4 days {s4['peak_rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()
