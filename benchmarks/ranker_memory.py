"""Benchmark: seconds and peak resident memory of each step of the ranker's training data
(event tables, examples, co-occurrence, feature matrix, compaction) on a trained model's log.

    .venv/bin/python benchmarks/ranker_memory.py runs/scale/10m/data runs/scale/10m/model
    .venv/bin/python benchmarks/ranker_memory.py runs/scale/2m/data runs/scale/2m/model --block 250000

Each step's peak is its own: the kernel's high-water mark (``VmHWM``) is reset before it
(``/proc/self/clear_refs``, Linux only), so a row says what that step needed on top of what
the steps before it left resident. The model folder gives the feature two-tower and the
config (``vidrec train`` wrote it); the steps are those of ``MultiTaskRanker.prepare``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

STATUS = Path("/proc/self/status")


def _gib(field: str) -> float:
    line = next(x for x in STATUS.read_text().splitlines() if x.startswith(field))
    return int(line.split()[1]) / 2**20


class Steps:
    """Prints one line per step: seconds, resident memory after it, its own peak."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def done(self, label: str) -> None:
        print(f"| {label} | {time.perf_counter() - self.t0:.1f} s | {_gib('VmRSS:'):.2f} GiB | "
              f"{_gib('VmHWM:'):.2f} GiB |", flush=True)  # fmt: skip
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
        self.t0 = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("model", type=Path, help="a `vidrec train` output folder for this data")
    ap.add_argument("--block", type=int, help="examples per feature block (default: the model's config)")
    args = ap.parse_args()
    print("| step | seconds | resident after | step's peak |\n|---|---:|---:|---:|")
    steps = Steps()
    from vidrec.candidates.two_tower.source import TwoTowerEmbeddings
    from vidrec.catalogue import Catalogue
    from vidrec.data.validation import read_valid
    from vidrec.features.point_in_time import EventTables
    from vidrec.pipeline import Pipeline, ranker_cut
    from vidrec.scoring.ranker import MultiTaskRanker
    from vidrec.versions import resolve_version

    train = read_valid(args.data).dataset
    steps.done(f"read and validate ({train.events.height:,} events)")
    pipe = Pipeline.load(resolve_version(args.model))
    assert pipe.feature_model is not None, "the model has no feature two-tower"
    cut = ranker_cut(train.events, pipe.config.ranker_period)
    embeddings = TwoTowerEmbeddings(pipe.feature_model, Catalogue(train.videos))
    config = replace(pipe.config.ranker, examples_since=cut)
    ranker = MultiTaskRanker(config if args.block is None else replace(config, feature_block=args.block))
    steps.done("load the feature two-tower")
    tables = EventTables.build(train.events, train.videos, ranker.config.features, since=cut)
    steps.done(f"event tables ({sum(t.height for t in tables.tables.values()):,} rows)")
    examples = ranker._examples(train, tables, embeddings)
    ranker.embeddings, ranker.embedding_dim = embeddings, int(embeddings.dim)
    steps.done(f"examples ({examples.height:,})")
    ranker.cooc = ranker._cooccurrence(train)
    steps.done("co-occurrence and item regression")
    x = ranker._feature_blocks(examples, tables, train.videos, embeddings)
    steps.done(f"feature matrix {x.shape[0]:,} x {x.shape[1]} ({x.nbytes / 2**30:.2f} GiB, "
               f"blocks of {ranker.config.feature_block:,})")  # fmt: skip
    compact = tables.compact()
    del tables
    steps.done(f"compacted tables ({sum(t.height for t in compact.tables.values()):,} rows)")


if __name__ == "__main__":
    main()
