"""Nearest-neighbour index at a million videos: exact vs tuned HNSW vs tuned IVF-PQ (re-scored).

Synthetic clustered embeddings (a seeded Gaussian mixture, normalised, as the two-tower model
produces) with queries from the same distribution. Per index: build time (tuning included),
index size in bytes, resident-memory growth, recall@k against exact search and query time per
query in a batch at 1 and 2 FAISS threads, all measured in the same run.

    .venv/bin/python benchmarks/ann_index.py                 # 1,000,000 x 64; the HNSW build dominates
    .venv/bin/python benchmarks/ann_index.py --n 200000      # quicker look
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vidrec.candidates.index import FaissIndex, IndexConfig, build_index, recall_at_k


def clustered(n: int, dim: int, centres: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors around random mixture centres."""
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(0, spread / np.sqrt(dim), (n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def index_bytes(index: FaissIndex) -> int:
    import faiss

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "faiss.index")
        faiss.write_index(index._index, path)
        return os.path.getsize(path)


def time_search(index: FaissIndex, queries: np.ndarray, k: int, threads: int) -> tuple[float, np.ndarray]:
    """Milliseconds per query for one batch (after a small warm-up) and the ids returned."""
    import faiss

    faiss.omp_set_num_threads(threads)
    index.search(queries[:10], k)
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    return (time.perf_counter() - start) * 1000 / len(queries), ids


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--centres", type=int, default=4096)
    parser.add_argument("--spread", type=float, default=0.6, help="noise norm around a centre")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(args.centres, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(args.n, args.dim, centres, args.spread, rng)
    queries = clustered(args.queries, args.dim, centres, args.spread, rng)
    tune_queries = clustered(500, args.dim, centres, args.spread, rng)  # disjoint from the measured ones
    ids = np.arange(args.n, dtype=np.int64)
    print(f"corpus {args.n:,} x {args.dim}, {args.centres} centres, {args.queries} queries, k={args.k}")

    configs = {
        "exact (IndexFlatIP)": IndexConfig(kind="flat"),
        "HNSW (tuned)": IndexConfig(
            kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
            target_recall=args.target, tune_k=args.k,
        ),
        "IVF-PQ + re-score (tuned)": IndexConfig(kind="ivfpq", target_recall=args.target, tune_k=args.k),
        "auto (default config)": IndexConfig(target_recall=args.target, tune_k=args.k),
    }
    truth = None
    exact_ms: dict[int, float] = {}
    rows = []
    for name, config in configs.items():
        if name.startswith("auto") and config.resolve_kind(args.n) != "ivfpq":
            print(f"{name}: resolves to {config.resolve_kind(args.n)} at n={args.n:,}, measured above")
            continue
        gc.collect()
        faiss.omp_set_num_threads(2)
        rss0, start = rss_bytes(), time.perf_counter()
        index = build_index(args.dim, config, ids=ids, vectors=vectors, queries=tune_queries)
        build_s = time.perf_counter() - start
        if not isinstance(index, FaissIndex):
            raise TypeError("expected a FAISS index")
        rss_mb = (rss_bytes() - rss0) / 2**20
        size_mb = index_bytes(index) / 2**20
        ms = {}
        for threads in (1, 2):
            ms[threads], got = time_search(index, queries, args.k, threads)
        if truth is None:
            truth, exact_ms = got, ms
        recall = recall_at_k(truth, got)
        params = ", ".join(f"{k}={v}" for k, v in index.params.items()) or "-"
        tuned = f"tuned {index.tuning.seconds:.0f}s, tune recall {index.tuning.recall:.3f}" if index.tuning else ""
        rows.append(
            f"| {name} | {index.kind} | {params} | {recall:.4f} | {ms[1]:.3f} | {exact_ms[1] / ms[1]:.0f}x "
            f"| {ms[2]:.3f} | {exact_ms[2] / ms[2]:.0f}x | {build_s:.1f} | {size_mb:.0f} | {rss_mb:.0f} |"
        )
        print(rows[-1], tuned, flush=True)
        del index
    print()
    print(f"recall@{args.k} vs exact; ms/query in a batch of {args.queries}; build includes tuning; MB = MiB")
    print("| index | kind | search params | recall | ms/q 1 thr | speed-up | ms/q 2 thr | speed-up "
          "| build s | index MB | RSS +MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
