"""Calibration and metrics: PAV and ECE exact on tiny cases, AUC against brute force, ECE falls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vidrec.scoring.calibration import (
    STRICT,
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


def test_ranking_map_is_exact_on_a_tiny_case() -> None:
    p = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5])
    y = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    cal = Calibrator("isotonic").fit(p, y)
    # steps: {0.1} -> 0, {0.2, 0.2, 0.3} -> 1/3 centred at 0.7 / 3, {0.4, 0.5} -> 1 centred at 0.45
    np.testing.assert_allclose(cal.cx, [0.1, 0.7 / 3, 0.45])
    np.testing.assert_allclose(cal.cy, [0.0, 1 / 3, 1.0])
    g = np.array([0.05, 0.1, 0.7 / 3, 0.4, 0.45, 0.5])
    line = [0.0, 0.0, 1 / 3, 1 / 3 + (0.4 - 0.7 / 3) * (2 / 3) / (0.45 - 0.7 / 3), 1.0, 1.0]  # clipped at 0 and 1
    q = 1 + np.log(g) / -np.log(np.finfo(np.float32).tiny)
    np.testing.assert_allclose(cal.ranking(g), (1 - STRICT) * np.array(line) + STRICT * q)
    assert Calibrator.from_dict(cal.to_dict()) == cal


@st.composite
def fits_and_scores(draw):
    """A calibrator fitted on random (often tied, often flat) data, and raw scores as the network gives them."""
    method = draw(st.sampled_from(["isotonic", "isotonic", "platt", "none"]))
    n = draw(st.integers(1, 60))
    raw = st.floats(0.0, 1.0, width=32, exclude_min=True, exclude_max=True, allow_subnormal=False)
    p = np.array(draw(st.lists(raw, min_size=n, max_size=n)))
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=float)
    scores = np.array(draw(st.lists(raw, min_size=2, max_size=50, unique=True)))
    cal = Calibrator(method).fit(p, y)
    assume(method != "platt" or cal.a > 0)  # Platt fitted on noise may slope down: that map reverses the order
    return cal, scores


@settings(max_examples=200, deadline=None)
@given(fits_and_scores())
def test_ranking_map_never_ties_distinct_raw_scores_and_keeps_their_order(case) -> None:
    cal, scores = case
    ranked = cal.ranking(scores)
    assert np.unique(ranked).size == scores.size
    np.testing.assert_array_equal(np.argsort(ranked), np.argsort(scores))
    assert np.all((ranked >= 0) & (ranked <= 1))
    # it never reverses two distinct calibrated probabilities
    stepped = cal(scores)
    up = stepped[:, None] < stepped[None, :]
    assert not np.any(up & (ranked[:, None] > ranked[None, :]))


def test_ranking_map_stays_calibrated_on_held_out_data() -> None:
    """Seeded synthetic cases: the untied map's ECE and log loss are no worse than the isotonic steps'."""
    steps, lines, loss_steps, loss_lines = [], [], [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        truth = rng.uniform(0.02, 0.98, 40_000)
        y = (rng.random(truth.size) < truth).astype(float)
        raw = (truth**3).astype(np.float32).astype(np.float64)  # miscalibrated, as a network's output
        cal = Calibrator("isotonic").fit(raw[:20_000], y[:20_000])
        held, yh = raw[20_000:], y[20_000:]
        steps.append(expected_calibration_error(cal(held), yh))
        lines.append(expected_calibration_error(cal.ranking(held), yh))
        loss_steps.append(log_loss(cal(held), yh))
        loss_lines.append(log_loss(cal.ranking(held), yh))
        assert np.unique(cal.ranking(held)).size == np.unique(held).size > 10 * np.unique(cal(held)).size
    assert np.mean(lines) <= np.mean(steps) and max(lines) < 0.02
    assert np.mean(loss_lines) <= np.mean(loss_steps)


def test_a_calibrator_saved_without_step_centres_ranks_from_its_knots() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(500)
    cal = Calibrator("isotonic").fit(p, (rng.random(p.size) < p).astype(float))
    old = Calibrator.from_dict({k: v for k, v in cal.to_dict().items() if k not in ("cx", "cy")})
    grid = np.sort(rng.random(300))
    assert np.all(np.diff(old.ranking(grid)) > 0)
    assert np.abs(old.ranking(grid) - cal(grid)).mean() < 0.05
