"""The re-ranking budget: soft objectives that cost too much on validation are turned down."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import read_dataset
from vidrec.data.schema import epoch_us
from vidrec.data.simulator import GroundTruth, SimulatorConfig, simulate
from vidrec.errors import DataError
from vidrec.recommender import Recommender
from vidrec.request import Request
from vidrec.rerank_budget import truth_measure
from vidrec.reranking.budget import KNOBS, Window, changes, choose_within_budget, ladder, ndcg, neutral
from vidrec.reranking.config import ReRankConfig


def test_ndcg_exact() -> None:
    # hits at ranks 1 and 3 of 2 relevant: (1 + 1/log2(4)) / (1 + 1/log2(3))
    got = ndcg([np.array([5, 7, 9])], [np.array([5, 9])], k=3)
    assert got == pytest.approx((1 + 0.5) / (1 + 1 / np.log2(3)))
    assert ndcg([np.array([1, 2])], [np.array([3])], k=10) == 0.0


def test_ladders_end_off() -> None:
    cfg = ReRankConfig(creator_cap=3, diversity_weight=0.02, min_fresh=2, fresh_boost=0.2)
    assert ladder(cfg, "creator_cap") == [3, 6, None]
    assert ladder(cfg, "min_fresh") == [2, 1, 0]
    assert ladder(cfg, "diversity_weight") == [0.02, 0.01, 0.0]
    assert ladder(cfg, "calibration_weight") == [0.0]
    off = neutral(cfg)
    assert (off.creator_cap, off.diversity_weight, off.min_fresh, off.fresh_boost) == (None, 0.0, 0, 0.0)
    assert not off.uses_slate_greedy
    assert off.fatigue_filter_days == cfg.fatigue_filter_days  # a hard rule: never tuned


def _accuracy(cfg: ReRankConfig) -> float:
    """A validation NDCG where the creator cap costs 10 % (3 per 10) or 4 % (6 per 10), the rest ~nothing."""
    loss = {3: 0.10, 6: 0.04, None: 0.0}[cfg.creator_cap] + 0.005 * (cfg.diversity_weight > 0)
    return 0.5 * (1.0 - loss)


def test_a_knob_that_costs_too_much_is_turned_down() -> None:
    cfg = ReRankConfig()
    chosen, trace = choose_within_budget(_accuracy, cfg, budget=0.02)
    assert chosen.creator_cap is None  # 6 per 10 still costs 4.5 % > 2 %
    assert chosen.diversity_weight == cfg.diversity_weight  # cheap: kept
    assert chosen.fresh_boost == cfg.fresh_boost and chosen.min_fresh == cfg.min_fresh
    assert changes(cfg, chosen) == {"creator_cap": (3, None)}
    kept = [r for r in trace if r["kept"]]
    assert [r["knob"] for r in kept] == ["(as configured)", "creator_cap", "creator_cap"]
    assert kept[-1]["cost"] == pytest.approx(0.005)


def test_within_budget_nothing_changes() -> None:
    cfg = ReRankConfig()
    chosen, trace = choose_within_budget(_accuracy, cfg, budget=0.2)
    assert chosen == cfg and len(trace) == 2
    loose, _ = choose_within_budget(_accuracy, cfg, budget=0.05)
    assert loose.creator_cap == 6  # one step down is enough at 5 %


def test_budget_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="budget"):
        choose_within_budget(_accuracy, ReRankConfig(), budget=1.5)
    with pytest.raises(ValueError, match="budget"):
        ReRankConfig(budget=-0.1)
    assert set(KNOBS) <= set(ReRankConfig().to_dict())


def _one_channel_per_audience() -> pl.DataFrame:
    """Creators as coarse as they get: every video a user completes comes from one channel."""
    return pl.col("category").replace({"music": "channel-music", "news": "channel-news"}).alias("creator_id")


def test_training_turns_down_a_cap_that_costs_too_much(tmp_path) -> None:
    ds = two_audiences(n_users=160, n_videos=80, seed=1)
    ds = replace(ds, videos=ds.videos.with_columns(_one_channel_per_audience()))
    config = small_config()
    config = replace(config, rerank=replace(config.rerank, creator_cap=3, diversity_weight=0.0, min_fresh=0,
                                            budget_min_users=40))
    rec = Recommender.train(ds, config, log=lambda m: None)
    budget = rec.pipeline.budget
    assert budget["users"] > 20
    configured = budget["trace"][1]
    assert configured["cost"] > 0.02  # 3 per 10 from one of two channels: most of the own kind pushed down
    chosen = rec.pipeline.config.rerank
    assert chosen.creator_cap != 3 and rec.pipeline.reranker.config == chosen
    assert next(r for r in reversed(budget["trace"]) if r["kept"])["cost"] <= 0.02
    path = rec.save(tmp_path / "model")
    assert json.loads((path / "reranking" / "config.json").read_text())["creator_cap"] == chosen.creator_cap
    assert json.loads((path / "reranking" / "budget.json").read_text())["configured"]["creator_cap"] == 3
    assert Recommender.load(tmp_path / "model").pipeline.reranker.config == chosen


def test_per_user_carve_trains_again_and_measures_on_held_out_watches() -> None:
    # The carve for logs without a shared validation period: the pipeline is trained again on each
    # user's earlier watches and the budget measured on their last 20%, never seen by that training.
    ds = two_audiences(n_users=160, n_videos=80, seed=1)
    ds = replace(ds, videos=ds.videos.with_columns(_one_channel_per_audience()))
    config = small_config()
    config = replace(config, rerank=replace(config.rerank, creator_cap=3, diversity_weight=0.0, min_fresh=0,
                                            budget_min_users=40, budget_window="per-user"))
    rec = Recommender.train(ds, config, log=lambda m: None)
    budget = rec.pipeline.budget
    assert budget["window"] == "per-user" and budget["held_out"] == 0.2
    assert budget["users"] >= 40
    assert budget["trace"][1]["cost"] > 0.02
    assert rec.pipeline.config.rerank.creator_cap != 3
    assert rec.pipeline.config.rerank.budget_window == "per-user"  # the training that serves is the full one
    assert rec.pipeline.catalogue is not None and rec.pipeline.live is not None


def test_too_few_held_out_users_keep_the_objectives() -> None:
    ds = two_audiences(n_users=30, n_videos=40, seed=2)
    config = small_config()
    config = replace(config, rerank=replace(config.rerank, budget_min_users=500, budget_window="per-user"))
    rec = Recommender.train(ds, config, log=lambda m: None)
    assert rec.pipeline.budget == {"budget": 0.02, "users": 0}
    assert rec.pipeline.config.rerank == config.rerank


def test_budget_window_is_checked() -> None:
    with pytest.raises(ValueError, match="budget_window"):
        ReRankConfig(budget_window="weekly")


def test_auto_does_not_train_again_on_a_log_over_the_limit() -> None:
    ds = two_audiences(n_users=60, n_videos=40, seed=3)
    config = small_config()
    rerank = replace(config.rerank, budget_min_users=500, budget_retrain_events=10)  # no time window either
    lines: list[str] = []
    rec = Recommender.train(ds, replace(config, rerank=rerank), log=lines.append)
    assert rec.pipeline.budget == {"budget": 0.02, "users": 0}
    assert any("over budget_retrain_events" in line for line in lines)
    assert not any("measuring the budget on each user's last" in line for line in lines)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory):
    """A small simulated platform, with the ground truth the budget may measure on."""
    root = tmp_path_factory.mktemp("budget-sim")
    simulate(SimulatorConfig(users=300, videos=150, days=10, seed=4), root)
    return root


def test_truth_measure_is_the_simulators_expected_completions_per_slate(simulated) -> None:
    ds = read_dataset(simulated)
    catalogue, truth = Catalogue(ds.videos), GroundTruth.load(simulated)
    at = ds.events["ts"].max()
    users = ds.users["user_id"].head(2).to_list()
    window = Window([Request(u, epoch_us(at), 10) for u in users], [], [], [])
    slates = [np.array([0, 1, 2]), np.array([5])]
    ids = catalogue.ids
    expected = (truth.p_complete([users[0]] * 3, ids[:3], at).sum() + truth.p_complete([users[1]], [ids[5]], at)[0]) / 2
    assert truth_measure(str(simulated), window, catalogue)(slates) == pytest.approx(expected)


def test_on_a_simulated_platform_the_budget_measures_true_expected_completions(simulated) -> None:
    config = small_config()
    # a strong diversity weight: the simulator's users have no taste for variety, so it costs completions
    rerank = replace(config.rerank, diversity="dpp", diversity_weight=0.9, creator_cap=None, min_fresh=0,
                     fresh_boost=0.0, budget_min_users=30, budget_truth=str(simulated))  # fmt: skip
    lines: list[str] = []
    rec = Recommender.train(read_dataset(simulated), replace(config, rerank=rerank), log=lines.append)
    budget = rec.pipeline.budget
    assert budget["measure"] == "true expected completions per 10"
    assert any("of true expected completions per 10" in line for line in lines)
    assert budget["trace"][0]["measured"] > 1.0  # completions per slate of ten, not an NDCG
    assert budget["trace"][1]["cost"] > 0.02
    assert rec.pipeline.config.rerank.diversity_weight < 0.9
    assert next(r for r in reversed(budget["trace"]) if r["kept"])["cost"] <= 0.02


def test_a_budget_truth_without_ground_truth_fails_before_training(tmp_path) -> None:
    config = small_config()
    config = replace(config, rerank=replace(config.rerank, budget_truth=str(tmp_path)))
    with pytest.raises(DataError, match="no ground truth"):
        Recommender.train(two_audiences(), config, log=lambda m: None)
