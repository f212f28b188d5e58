"""Tuning a baseline "a little", honestly: a small grid judged on a validation carve of
the training period, never on the test split (Dacrema et al., RecSys 2019: untuned
baselines make progress look larger than it is).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence

import polars as pl
from scipy.sparse import csr_matrix

from vidrec.evaluation.baselines.base import Baseline
from vidrec.evaluation.matrix import nonempty_rows
from vidrec.evaluation.metrics import ranking_metrics


def parse_metric(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; raises a readable ValueError otherwise."""
    name, _, k = metric.partition("@")
    if name not in ("recall", "precision", "ndcg", "hit_rate") or not k.isdigit() or int(k) < 1:
        raise ValueError(
            f"unknown tuning metric {metric!r}; use recall@k, precision@k, ndcg@k or hit_rate@k"
        )
    return name, int(k)


def expand_grid(grid: Mapping[str, Sequence[object]]) -> list[dict[str, object]]:
    """All combinations of a parameter grid, in a stable order; ``{}`` gives one empty set."""
    keys = list(grid)
    for key in keys:
        if len(grid[key]) == 0:
            raise ValueError(f"tuning grid for {key!r} is empty")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def tune(
    baseline_factory: Callable[..., Baseline],
    grid: Mapping[str, Sequence[object]],
    X_train: csr_matrix,
    X_valid: csr_matrix,
    metric: str = "ndcg@10",
) -> tuple[dict[str, object], pl.DataFrame]:
    """Fit every grid point on ``X_train`` and pick the best ``metric`` on ``X_valid``.

    Only users with both training history and validation relevance are ranked; their
    training items are excluded. Ties keep the first grid point.

    Returns:
        ``(best_params, table)``; the table has one row per grid point with its
        parameters, the validation metric and the fit time in seconds.
    """
    _, k = parse_metric(metric)
    if X_train.shape != X_valid.shape:
        raise ValueError(f"train {X_train.shape} and validation {X_valid.shape} shapes differ")
    users = nonempty_rows(X_valid)
    users = users[(X_train[users].getnnz(axis=1) > 0)]
    if users.size == 0:
        raise ValueError("the validation carve has no user with training history; cannot tune")
    rows = []
    for params in expand_grid(grid):
        start = time.perf_counter()
        model = baseline_factory(**params).fit(X_train)
        fit_seconds = time.perf_counter() - start
        recs = model.recommend(users, k, exclude=X_train)
        value = ranking_metrics(recs, X_valid[users], ks=(k,)).mean[metric]
        rows.append({**params, metric: value, "fit_seconds": fit_seconds})
    table = pl.DataFrame(rows)
    best = int(table[metric].fill_nan(-1.0).arg_max())
    return {key: rows[best][key] for key in grid}, table
