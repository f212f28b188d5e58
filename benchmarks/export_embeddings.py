"""Offline export of every video's two-tower embedding at a million videos.

    .venv/bin/python benchmarks/export_embeddings.py [--videos 1000000] [--threads 2]

Builds a catalogue of the given size (50 categories, 2,000 tags, 50,000 creators), a
two-tower model with the default config over it, and times `video_embeddings` (the
batched export that feeds the index) plus writing the Parquet file. The model's weights
are untrained: the cost of a forward pass does not depend on their values.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import Vocabulary
from vidrec.candidates.two_tower.export import save_video_embeddings, video_embeddings
from vidrec.candidates.two_tower.model import TwoTowerModel


def catalogue(n: int, seed: int = 0) -> pl.DataFrame:
    """A synthetic videos table in the canonical schema."""
    rng = np.random.default_rng(seed)
    tags = [f"t{i}" for i in range(2000)]
    tag_lists = [[tags[j] for j in rng.integers(0, 2000, size=rng.integers(0, 6))] for _ in range(n)]
    return pl.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(n)],
            "creator_id": [f"c{i}" for i in rng.integers(0, 50_000, size=n)],
            "category": [f"cat{i}" for i in rng.integers(0, 50, size=n)],
            "tags": tag_lists,
            "duration_seconds": rng.uniform(10, 3600, size=n),
            "uploaded_at": [datetime(2025, 6, 1, tzinfo=UTC)] * n,
            "available": [True] * n,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    videos = catalogue(args.videos)
    model = TwoTowerModel(TwoTowerConfig(), Vocabulary.from_videos(videos))
    start = time.perf_counter()
    ids, vectors = video_embeddings(model, videos)
    embed = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        save_video_embeddings(Path(tmp) / "video_embeddings.parquet", ids, vectors)
        write = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.videos:,} videos x {vectors.shape[1]} dims, {args.threads} torch thread(s): "
          f"embed {embed:.1f} s ({args.videos / embed:,.0f} videos/s), write Parquet {write:.1f} s, "
          f"peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
