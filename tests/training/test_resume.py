"""Checkpoints: a training run interrupted after any epoch and run again with the same
checkpoint directory ends with the model of an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.candidates.conftest import make_clustered
from tests.tiny_platform import SMALL_CONFIG, small_config, two_audiences
from vidrec.candidates.two_tower import TwoTowerConfig, TwoTowerModel, fit_two_tower
from vidrec.candidates.two_tower.distributed import parameter_checksum
from vidrec.candidates.two_tower.train import _round_ends
from vidrec.pipeline import Pipeline
from vidrec.scoring.config import RankerConfig
from vidrec.scoring.train import train_classifier

SETTINGS = dict(epochs=6, batch_size=64, user_hash_buckets=1024, eval_k=10, uniform_negatives=32,
                threads=1, seed=3, patience=2, hard_negatives=2, lr=3e-4)  # fmt: skip


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data():
    ds, _ = make_clustered(n_users=120, n_videos=80, per_user=15, seed=1)
    return ds


def _stop_after(lines: int, prefix: str = "epoch"):
    """A log that raises at its ``lines``-th epoch line, as a kill would stop the run."""
    seen = []

    def log(message: str) -> None:
        if message.startswith(prefix):
            seen.append(message)
            if len(seen) == lines:
                raise Interrupted
    return log


@pytest.mark.parametrize("during", ["search", "refit", "refit from scratch", "inside an epoch"])
def test_two_tower_resumes_to_the_same_model(data, tmp_path: Path, during: str) -> None:
    # "inside an epoch": three validation rounds per epoch, stopped after the second;
    # "refit": two passes from the search's best, stopped in the second
    extra = {"inside an epoch": {"eval_every": 600}, "refit": {"refit_warm_epochs": 2},
             "refit from scratch": {"refit_warm_epochs": 0}}.get(during, {})  # fmt: skip
    config = TwoTowerConfig(**SETTINGS | extra)
    whole_lines: list[str] = []
    whole, whole_report = fit_two_tower(data.events, data.videos, config, log=whole_lines.append)
    assert whole_report.best_epoch > 1 and len(whole_report.epochs) >= 3  # a refit after the first round
    interrupt_at = len(whole_report.epochs) + 2 if during.startswith("refit") else 2
    with pytest.raises(Interrupted):
        fit_two_tower(data.events, data.videos, config, log=_stop_after(interrupt_at), checkpoints=tmp_path)
    assert list(tmp_path.glob("*.pt"))
    lines: list[str] = []
    resumed, report = fit_two_tower(data.events, data.videos, config, log=lines.append, checkpoints=tmp_path)
    assert parameter_checksum(resumed) == parameter_checksum(whole)
    assert report.best_epoch == whole_report.best_epoch
    assert [r["val_recall"] for r in report.epochs] == [r["val_recall"] for r in whole_report.epochs]
    rounds = [sum(line.startswith("epoch") for line in ls) for ls in (lines, whole_lines)]
    assert rounds[0] < rounds[1]  # the resumed run did not train the finished rounds again


def test_a_checkpoint_of_other_settings_is_not_resumed(data, tmp_path: Path) -> None:
    config = TwoTowerConfig(**SETTINGS)
    with pytest.raises(Interrupted):
        fit_two_tower(data.events, data.videos, config, log=_stop_after(2), checkpoints=tmp_path)
    other = TwoTowerConfig(**SETTINGS | {"lr": 1e-3})
    fresh, _ = fit_two_tower(data.events, data.videos, other, log=lambda m: None)
    lines: list[str] = []
    model, _ = fit_two_tower(data.events, data.videos, other, log=lines.append, checkpoints=tmp_path)
    assert parameter_checksum(model) == parameter_checksum(fresh)
    assert lines[0].split()[:2] == ["epoch", "1/6"]


def test_ranker_network_resumes_to_the_same_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    y = (x[:, :2] + rng.normal(size=(3000, 2)) > 0).astype(np.float32)
    config = RankerConfig(hidden=(16,), max_epochs=6, patience=1, batch_size=128,
                          loss_weights=(1.0, 0.5, 0.0, 0.0), dropout=0.1, ensemble=1)  # fmt: skip
    whole = train_classifier(x[:2400], y[:2400], x[2400:], y[2400:], config)
    path = tmp_path / "member0.pt"
    with pytest.raises(Interrupted):
        train_classifier(x[:2400], y[:2400], x[2400:], y[2400:], config, path, _stop_after(3, "ranker"))
    resumed = train_classifier(x[:2400], y[:2400], x[2400:], y[2400:], config, path)
    assert parameter_checksum(resumed.model) == parameter_checksum(whole.model)
    assert (resumed.val_loss, resumed.best_epoch) == (whole.val_loss, whole.best_epoch)


def test_pipeline_resumes_to_the_same_recommendations(tmp_path: Path) -> None:
    data = two_audiences(seed=2)
    config = small_config()
    whole = Pipeline.fit(data, config, log=lambda m: None)
    with pytest.raises(Interrupted):
        Pipeline.fit(data, config, log=_stop_after(2, "ranker"), checkpoints=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"candidates.two_tower", "scoring.ranker"}
    lines: list[str] = []
    resumed = Pipeline.fit(data, config, log=lines.append, checkpoints=tmp_path)
    assert any("resuming" in line for line in lines) or not [line for line in lines if line.startswith("epoch")]
    for a, b in zip([whole.feature_model, *whole.generators[:1]], [resumed.feature_model, *resumed.generators[:1]]):
        model_a, model_b = getattr(a, "model", a), getattr(b, "model", b)
        assert parameter_checksum(model_a) == parameter_checksum(model_b)
    assert parameter_checksum(resumed.ranker.model) == parameter_checksum(whole.ranker.model)


def test_rounds_split_epochs_evenly() -> None:
    assert _round_ends(29, 1800, 600) == [10, 19, 29]
    assert _round_ends(29, 1800, 200_000) == [29]  # at least one round per epoch, at its end
    assert _round_ends(3, 1800, 100) == [1, 2, 3]  # never more rounds than batches
    assert _round_ends(100, 10_000, 100) == [25, 50, 75, 100]  # nor more than four
    assert _round_ends(29, 1800, 0) == [29]


def test_rounds_choose_a_fraction_of_an_epoch_and_the_refit_from_scratch_trains_that_long(data) -> None:
    lines: list[str] = []
    config = TwoTowerConfig(**SETTINGS | {"eval_every": 600, "refit_warm_epochs": 0})
    _, report = fit_two_tower(data.events, data.videos, config, log=lines.append)
    fractions = [r["epoch"] for r in report.epochs]
    assert fractions == sorted(set(fractions)) and any(not float(f).is_integer() for f in fractions)
    assert round(report.best_epoch, 4) in fractions
    refit = lines[next(i for i, line in enumerate(lines) if line.startswith("refit")) + 1 :]
    last = float(refit[-1].split()[1].split("/")[0])  # "epoch 1.33/2 ..."
    assert last == pytest.approx(report.best_epoch, abs=0.05)


def test_a_two_tower_trained_separately_is_used_as_is(tmp_path: Path) -> None:
    from vidrec.candidates.two_tower.distributed import main as train_two_tower
    from vidrec.data.dataset import write_dataset

    data = two_audiences(seed=3)
    write_dataset(data, tmp_path / "data")
    overrides = [f"{k}={json.dumps(v)}" for k, v in SMALL_CONFIG["two_tower"].items()]
    assert train_two_tower(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "tt"), "--set", *overrides]) == 0
    lines: list[str] = []
    pipe = Pipeline.fit(data, small_config(), log=lines.append, two_tower=tmp_path / "tt")
    saved = TwoTowerModel.load(tmp_path / "tt")
    assert parameter_checksum(pipe.generators[0].model) == parameter_checksum(saved)
    assert any("not trained here" in line for line in lines)
    assert pipe.feature_model is not None  # the ranker's own two-tower, as long as the saved one's early stopping
