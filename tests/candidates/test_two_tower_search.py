"""Hyperparameters chosen on the validation carve within a time budget."""

import json
from dataclasses import replace

import pytest

from tests.candidates.test_two_tower_model import FAST
from tests.tiny_platform import small_config, two_audiences
from vidrec.candidates.two_tower import TwoTowerConfig, fit_two_tower
from vidrec.pipeline import Pipeline

SEARCHED = {**FAST, "epochs": 4, "val_fraction": 0.2, "patience": 1, "eval_k": 10, "refit_full": False}


def test_the_search_replaces_a_setting_that_learns_nothing(clustered):
    ds, _ = clustered
    # configured with a learning rate too small to learn in four epochs; the search offers a working one
    cfg = TwoTowerConfig(**{**SEARCHED, "lr": 1e-7, "search": {"lr": [1e-7, 1e-2]}, "search_seconds": 600.0})
    seen: list[str] = []
    model, report = fit_two_tower(ds.events, ds.videos, cfg, log=seen.append)
    first, second = report.search
    assert (first["setting"], second["setting"], second["value"]) == (None, "lr", 1e-2)  # the configured value: no rerun
    assert second["val_recall"] > first["val_recall"] and second["kept"]
    assert model.config.lr == 1e-2 and report.best_recall == second["val_recall"]
    assert any("chosen {'lr': 0.01}" in line for line in seen)


def test_the_search_keeps_the_configured_values_when_nothing_beats_them(clustered):
    ds, _ = clustered
    cfg = TwoTowerConfig(**{**SEARCHED, "search": {"lr": [1e-7]}, "search_seconds": 600.0})
    model, report = fit_two_tower(ds.events, ds.videos, cfg, log=lambda _: None)
    assert [r["kept"] for r in report.search] == [True, False]
    assert model.config.lr == FAST["lr"]


def test_no_trial_starts_after_the_time_budget(clustered):
    ds, _ = clustered
    cfg = TwoTowerConfig(**{**SEARCHED, "search": {"lr": [1e-3, 1e-4]}, "search_seconds": 1e-9})
    seen: list[str] = []
    _, report = fit_two_tower(ds.events, ds.videos, cfg, log=seen.append)
    assert len(report.search) == 1 and any("time budget" in line for line in seen)


@pytest.mark.parametrize("search, match", [
    ({"lrr": [1e-3]}, "not a searchable setting"),
    ({"val_fraction": [0.3]}, "not a searchable setting"),
    ({"lr": []}, "non-empty list"),
    ({"temperature": [-1.0]}, "temperature must be positive"),
])  # fmt: skip
def test_a_search_is_checked_before_any_training(search, match):
    with pytest.raises(ValueError, match=match):
        TwoTowerConfig(search=search, search_seconds=10.0)


def test_the_pipeline_trains_and_saves_the_chosen_settings(tmp_path):
    config = small_config()
    searched = replace(config.two_tower, lr=1e-7, search={"lr": [1e-2]}, search_seconds=600.0)
    config = replace(config, sections={**config.sections, "two_tower": searched})
    pipe = Pipeline.fit(two_audiences(n_users=60, n_videos=40), config, log=lambda _: None)
    # the retrieval model, the ranker's feature model and the saved config all carry the chosen rate
    assert pipe.config.two_tower.lr == 1e-2 and pipe.feature_model is not None
    assert pipe.feature_model.config.lr == 1e-2
    pipe.save(tmp_path / "model")
    assert Pipeline.load(tmp_path / "model").config.two_tower.lr == 1e-2
    saved = json.loads((tmp_path / "model" / "candidates" / "two_tower" / "generator.json").read_text())
    assert [(t["setting"], t["kept"]) for t in saved["training"]["search"]] == [(None, True), ("lr", True)]
