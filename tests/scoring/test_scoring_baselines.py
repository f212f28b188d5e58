"""The ranker's baselines recover known logistic signals on seeded data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidrec.scoring.baselines import LightGBMBaseline, LogisticBaseline
from vidrec.scoring.calibration import roc_auc

torch.set_num_threads(1)


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    true_w = np.array([[2.0, 0.0], [-1.0, 0.0], [0.0, 1.5], [0.0, 0.0]])
    p = 1.0 / (1.0 + np.exp(-(x @ true_w + np.array([-1.0, 0.5]))))
    return x, (rng.random(p.shape) < p).astype(np.float32), true_w


def test_logistic_regression_recovers_the_weights() -> None:
    x, y, true_w = data(8_000, 0)
    model = LogisticBaseline(l2=0.0).fit(x, y)
    assert np.abs(model.weights - true_w).max() < 0.15
    assert np.abs(model.bias - np.array([-1.0, 0.5])).max() < 0.15
    assert model.predict_proba(x[:5]).shape == (5, 2)


def test_lightgbm_learns_each_task() -> None:
    pytest.importorskip("lightgbm")
    x, y, _ = data(6_000, 1)
    xv, yv, _ = data(2_000, 2)
    model = LightGBMBaseline(rounds=100).fit(x, y, xv, yv)
    p = model.predict_proba(xv)
    assert p.shape == (2_000, 2) and roc_auc(p[:, 0], yv[:, 0]) > 0.8 and roc_auc(p[:, 1], yv[:, 1]) > 0.7
