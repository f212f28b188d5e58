"""Defaults that hold across the shapes real logs come in (:mod:`vidrec.evaluation.shapes`): the
whole pipeline trained on a simulated log with likes, impressions, demographics, categories,
creators or time order taken away, each judged on held-out watches against most-popular
trained on the same split."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from tests.tiny_platform import small_config
from vidrec.data.dataset import Dataset, read_dataset
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.data.splits import SplitConfig, split_events
from vidrec.evaluation.protocol import EvaluationData, default_baselines, evaluate_baselines
from vidrec.evaluation.shapes import SHAPES
from vidrec.evaluation.system import evaluate_stages
from vidrec.recommender import Recommender


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("shapes")
    simulate(SimulatorConfig(users=250, videos=150, days=10, seed=6), root)
    return read_dataset(root)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_defaults_beat_most_popular_on_every_shape(platform: Dataset, shape: str) -> None:
    ds = SHAPES[shape](platform)
    train_events, test_events = split_events(ds.events, SplitConfig())
    train = Dataset(train_events, ds.videos, ds.users)
    config = small_config()
    config = replace(config, rerank=replace(config.rerank, budget_min_users=30))  # the budget measures here too
    rec = Recommender.train(train, config, log=lambda m: None)
    data = EvaluationData.from_frames(train, test_events)
    stages, _ = evaluate_stages(rec, data, ks=(10,))
    popular = evaluate_baselines(data, ks=(10,), tune=False, baselines=default_baselines()[:1])
    final = stages.filter(pl.col("model") == "vidrec final")["final_ndcg@10"].item()
    floor = popular["final_ndcg@10"].item()
    assert final > floor, f"{shape}: vidrec final NDCG@10 {final:.4f} against most-popular {floor:.4f}"
