"""Baselines for the ranker on the same features and labels: logistic regression and LightGBM.

They answer "does the multi-task network earn its keep?" in ``benchmarks/scoring.py``.
Both take the ranker's standardised matrices and 0/1 labels ``(n, tasks)``, fit one
model per task, and return uncalibrated probabilities; the benchmark calibrates them
on the same validation slice as the network. LightGBM is optional: it is imported only
when :class:`LightGBMBaseline` is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class LogisticBaseline:
    """One L2-regularised logistic regression per task, fitted with full-batch L-BFGS."""

    l2: float = 1e-4  # penalty on the weights (not the bias), per example
    max_iter: int = 200
    weights: np.ndarray | None = None  # (f, tasks)
    bias: np.ndarray | None = None  # (tasks,)

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticBaseline:
        """``x`` (n, f) standardised, ``y`` (n, tasks) 0/1; all tasks in one convex problem."""
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).double()
        yt = torch.from_numpy(np.asarray(y, dtype=np.float64).reshape(len(x), -1))
        w = torch.zeros(xt.shape[1], yt.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(yt.shape[1], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=self.max_iter, line_search_fn="strong_wolfe")
        bce = torch.nn.BCEWithLogitsLoss(reduction="sum")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = bce(xt @ w + b, yt) / len(xt) + self.l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.weights, self.bias = w.detach().numpy(), b.detach().numpy()
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, tasks) probabilities."""
        if self.weights is None or self.bias is None:
            raise ValueError("LogisticBaseline is not fitted")
        z = np.asarray(x, dtype=np.float64) @ self.weights + self.bias
        return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class LightGBMBaseline:
    """One gradient-boosted tree model per task, early-stopped on the validation slice."""

    params: dict[str, Any] = field(default_factory=lambda: {
        "objective": "binary", "learning_rate": 0.1, "num_leaves": 63, "min_data_in_leaf": 50,
        "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
        "num_threads": 1, "verbose": -1, "seed": 0,
    })  # fmt: skip
    rounds: int = 500
    early_stopping: int = 50
    boosters: list[Any] = field(default_factory=list)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> LightGBMBaseline:
        """``x`` (n, f), ``y`` (n, tasks); ``x_val, y_val`` choose each task's number of trees."""
        import lightgbm as lgb  # optional dependency of the benchmark only

        y, y_val = np.asarray(y).reshape(len(x), -1), np.asarray(y_val).reshape(len(x_val), -1)
        self.boosters = []
        for t in range(y.shape[1]):
            train = lgb.Dataset(np.ascontiguousarray(x), np.ascontiguousarray(y[:, t]), free_raw_data=False)
            val = lgb.Dataset(np.ascontiguousarray(x_val), np.ascontiguousarray(y_val[:, t]), reference=train)
            self.boosters.append(lgb.train(
                self.params, train, self.rounds, valid_sets=[val],
                callbacks=[lgb.early_stopping(self.early_stopping, verbose=False)],
            ))  # fmt: skip
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, tasks) probabilities."""
        if not self.boosters:
            raise ValueError("LightGBMBaseline is not fitted")
        return np.stack([b.predict(x, num_iteration=b.best_iteration) for b in self.boosters], axis=1)
