"""What a report reads: a trained model, the split it is judged on, and (simulated platforms) the ground truth.

Paths are checked before any work, so a wrong directory is one readable message, not a traceback
half-way through the evaluation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from vidrec.data.dataset import conform_table, read_table
from vidrec.data.simulator import GroundTruth
from vidrec.errors import DataError
from vidrec.evaluation.protocol import EvaluationData
from vidrec.evaluation.system import StageRun, evaluate_all, run_stages
from vidrec.recommender import Recommender
from vidrec.versions import resolve_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """The evaluation a report draws from: the table, the pass it judged, and every model's lists."""

    table: pl.DataFrame
    run: StageRun
    recommendations: dict[str, np.ndarray]  # model name -> (n_users, depth) judged index matrix


@dataclass
class ReportInputs:
    """Everything one report needs; ``evaluation`` is filled by :func:`evaluate` unless given (the demo's)."""

    rec: Recommender
    model_path: Path  # the version folder
    data: EvaluationData
    test_events: pl.DataFrame
    sources: dict[str, str] = field(default_factory=dict)  # what was read from where, for the header
    truth: GroundTruth | None = None
    evaluation: Evaluation | None = None


def evaluate(rec: Recommender, data: EvaluationData, baselines: bool = True) -> Evaluation:
    """Run :func:`evaluate_all` once, keeping its pass and the lists it judged."""
    start = time.perf_counter()
    run = run_stages(rec, data)
    recommendations: dict[str, np.ndarray] = {}
    table, _ = evaluate_all(rec, data, baselines=baselines, run=run, recommendations=recommendations)
    log.info("evaluated %d users in %.1f s", len(run.results), time.perf_counter() - start)
    return Evaluation(table, run, recommendations)


def is_split(path: Path) -> bool:
    """Whether ``path`` looks like a directory written by ``vidrec split``."""
    return (path / "test" / "events.parquet").is_file() and (path / "train").is_dir()


def read_test_events(split: str | Path) -> pl.DataFrame:
    """The split's test events in the canonical schema."""
    return conform_table(read_table(Path(split) / "test" / "events.parquet", "events"), "events")


def check_truth(truth: GroundTruth, data: EvaluationData, where: Path) -> None:
    """Refuse a ground truth that does not describe the split's users (another simulation)."""
    unknown = int((truth.user_ids.to_index(data.users.ids) < 0).sum())
    if unknown:
        raise DataError(f"{where}: its ground truth does not know {unknown:,} of the split's {len(data.users):,} "
                        "users: it is another platform's",
                        "pass as --data the simulated platform the split was made from")  # fmt: skip


def load_inputs(model_dir: str | Path, data_dir: str | Path, split_dir: str | Path | None = None) -> ReportInputs:
    """Read the model, the split and, when ``data_dir`` is a simulated platform, its ground truth.

    ``data_dir`` is either the split directory itself or the data directory the split was made
    from (then ``split_dir`` names the split); a ``ground_truth/`` folder in it adds the oracle.
    """
    data_root = Path(data_dir)
    if not data_root.is_dir():
        raise DataError(f"--data {data_root}: no such directory",
                        "pass a split directory (from `vidrec split`) or the data directory it was made from")
    split = Path(split_dir) if split_dir is not None else data_root
    if not is_split(split):
        hint = ("pass --split SPLIT_DIR (from `vidrec split`)" if split_dir is None
                else "pass --split a directory made by `vidrec split`")  # fmt: skip
        raise DataError(f"{split}: not a split directory (no train/ and test/events.parquet)", hint)
    version = resolve_version(model_dir)  # a missing or broken model fails here, before the data is read
    truth = GroundTruth.load(data_root) if (data_root / "ground_truth").is_dir() else None
    rec = Recommender.load(version)
    data = EvaluationData.from_split(split)
    if truth is not None:
        check_truth(truth, data, data_root)
    test = read_test_events(split)
    sources = {"model": str(version), "split": str(split)}
    if truth is not None:
        sources["ground truth"] = str(data_root / "ground_truth")
    return ReportInputs(rec, version, data, test, sources, truth)
