"""Benchmark: examples per second of the two-tower's gradient steps alone, on a data directory,
for a thread count with or without torch's deterministic kernels (the training loop's
``deterministic`` setting), and whether two runs of 40 steps give the same weights.

    .venv/bin/python benchmarks/two_tower_steps.py runs/scale/2m/data --threads 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np
import torch

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import (
    NegativeSampler,
    Vocabulary,
    build_examples,
    catalogue_features,
    iterate_batches,
)
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.tasks import make_task
from vidrec.candidates.two_tower.train import deterministic_kernels
from vidrec.data.dataset import read_dataset


def steps(ds, vocab, ex, config: TwoTowerConfig, n: int, deterministic: bool) -> tuple[float, str]:
    """(examples/s over ``n`` steps after 10 warm-up steps, digest of the weights after them)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = TwoTowerModel(config, vocab)
    model.set_catalogue(catalogue_features(vocab, ds.videos, config))
    sampler = NegativeSampler(len(vocab.videos), ex.video.numpy(), ex.interacted_keys,
                              config.popularity_negative_share, config.popularity_exponent, rng)  # fmt: skip
    task = make_task(config, ex, len(vocab.videos), rng)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    neg, valid = sampler.sample(ex.user, 0)
    batches = iterate_batches(ex, neg, valid, config.batch_size, order=torch.from_numpy(rng.permutation(len(ex))))
    model.train()
    with deterministic_kernels(deterministic):
        for i in range(10 + n):
            if i == 10:
                start = time.perf_counter()
            loss, _ = task.loss(model, next(batches))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    rate = n * config.batch_size / (time.perf_counter() - start)
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest()[:12]
    return rate, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="a data directory (for example runs/scale/2m/data)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    ds = read_dataset(args.data)
    config = TwoTowerConfig()
    vocab = Vocabulary.from_videos(ds.videos)
    ex = build_examples(ds.events, ds.videos, vocab, config.history_len, config.user_hash_buckets,
                        config.user_hash_functions, config=config)  # fmt: skip
    print(f"{len(ex):,} examples, {len(vocab.videos):,} videos")
    print("| threads | deterministic kernels | examples/s | same weights twice |\n|---:|---|---:|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for det in (True, False):
            rate, a = steps(ds, vocab, ex, config, args.steps, det)
            _, b = steps(ds, vocab, ex, config, 30, det)
            _, c = steps(ds, vocab, ex, config, 30, det)
            print(f"| {threads} | {det} | {rate:,.0f} | {b == c} |", flush=True)


if __name__ == "__main__":
    main()
