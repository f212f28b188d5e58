"""Calibration and metrics: PAV and ECE exact on tiny cases, AUC against brute force, ECE falls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.scoring.calibration import (
    Calibrator,
    cross_fitted,
    expected_calibration_error,
    log_loss,
    pool_adjacent_violators,
    roc_auc,
)


def test_pav_exact_on_tiny_cases() -> None:
    np.testing.assert_allclose(pool_adjacent_violators(np.array([1.0, 3, 2, 4, 3, 5])), [1, 2.5, 2.5, 3.5, 3.5, 5])
    np.testing.assert_allclose(pool_adjacent_violators(np.array([3.0, 2, 1])), [2, 2, 2])
    # weights: (3 * 1 + 1 * 0) / 4 = 0.75 for the pooled pair
    np.testing.assert_allclose(pool_adjacent_violators(np.array([1.0, 0.0]), np.array([3.0, 1.0])), [0.75, 0.75])
    np.testing.assert_allclose(pool_adjacent_violators(np.array([0.0, 1.0, 1.0])), [0, 1, 1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40))
def test_pav_is_monotone_and_keeps_the_weighted_mean(values: list[float]) -> None:
    y = np.array(values)
    fit = pool_adjacent_violators(y)
    assert np.all(np.diff(fit) >= -1e-9)
    assert fit.mean() == pytest.approx(y.mean(), abs=1e-9)


def test_isotonic_calibrator_exact_on_a_tiny_case() -> None:
    p = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5])
    y = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    cal = Calibrator("isotonic").fit(p, y)
    # knot means: 0.1 -> 0, 0.2 -> 0.5, 0.3 -> 0 (violates) -> 0.2 and 0.3 pool to 1/3
    assert cal.x == [0.1, 0.2, 0.3, 0.4, 0.5]  # every knot ends a flat block here
    np.testing.assert_allclose(cal.y, [0.0, 1 / 3, 1 / 3, 1.0, 1.0])
    np.testing.assert_allclose(cal(np.array([0.0, 0.15, 0.35, 0.9])), [0.0, 1 / 6, 2 / 3, 1.0])
    assert Calibrator.from_dict(cal.to_dict()) == cal


def test_isotonic_keeps_only_block_ends_and_interpolates_the_same() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(2_000)
    y = (rng.random(p.size) < p).astype(float)
    cal = Calibrator("isotonic").fit(p, y)
    assert len(cal.x) < p.size
    knots = np.unique(p)
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    full = pool_adjacent_violators(np.bincount(inverse, weights=y) / counts, counts)
    grid = np.linspace(0, 1, 5_001)
    np.testing.assert_allclose(cal(grid), np.interp(grid, knots, full), atol=1e-12)


def test_platt_recovers_a_known_sigmoid() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 200_000)
    p_raw = 1 / (1 + np.exp(-z))
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(float)
    cal = Calibrator("platt").fit(p_raw, y)
    assert cal.a == pytest.approx(0.5, abs=0.02) and cal.b == pytest.approx(-1.0, abs=0.02)


def test_ece_exact_on_a_tiny_case() -> None:
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    # bins of width 0.5: |0.2 - 1| / 4 + |1.8 - 2| / 4 = 0.25
    assert expected_calibration_error(p, y, bins=2) == pytest.approx(0.25)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1.0, 0.0]), bins=10) == 0.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auc_matches_pair_counting(pairs: list[tuple[int, bool]]) -> None:
    s = np.array([p for p, _ in pairs], dtype=float)
    y = np.array([lab for _, lab in pairs], dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        assert np.isnan(roc_auc(s, y))
        return
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert roc_auc(s, y) == pytest.approx(brute)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_reduces_ece_of_a_miscalibrated_model(method: str) -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.02, 0.98, 40_000)
    y = (rng.random(truth.size) < truth).astype(float)
    raw = truth**3  # over-confident about negatives, same ranking
    fit, held = slice(0, 20_000), slice(20_000, None)
    cal = Calibrator(method).fit(raw[fit], y[fit])
    before = expected_calibration_error(raw[held], y[held])
    after = expected_calibration_error(cal(raw[held]), y[held])
    assert before > 0.15 and after < 0.03
    assert log_loss(cal(raw[held]), y[held]) < log_loss(raw[held], y[held])
    assert roc_auc(cal(raw[held]), y[held]) == pytest.approx(roc_auc(raw[held], y[held]), abs=0.01)
    honest = cross_fitted(raw, y, method)
    assert expected_calibration_error(honest, y) < 0.03


def test_calibrator_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="calibration method"):
        Calibrator("beta")
    with pytest.raises(ValueError, match="equally long"):
        Calibrator().fit(np.array([0.1, 0.2]), np.array([1.0]))
