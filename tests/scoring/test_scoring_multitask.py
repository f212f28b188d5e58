"""The multi-task network, its heads and the value model: exact layer algebra, learnt heads, re-weighting."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import torch

from tests.scoring.scoring_synth import T0, split_by_time, synthetic_log
from vidrec.data.schema import TIMESTAMP
from vidrec.features.point_in_time import EventTables, point_in_time_features
from vidrec.features.user_state import build_user_state
from vidrec.scoring import MultiTaskRanker, RankerConfig, ValueModel, build_examples
from vidrec.scoring.calibration import roc_auc
from vidrec.scoring.features import feature_matrix
from vidrec.scoring.model import CrossNetwork, MultiTaskNet

torch.set_num_threads(1)
CUT = T0 + timedelta(days=16)
NOW = T0 + timedelta(days=16, hours=1)
FAST = RankerConfig(  # the multi-task network: every head is learnt
    architecture="mmoe", loss_weights=(1.0, 0.5, 0.5, 0.5), value=ValueModel(like=0.2, dislike=1.0),
    max_epochs=6, patience=1, batch_size=2048,
)


def test_cross_layer_is_x0_times_affine_plus_x() -> None:
    torch.manual_seed(0)
    net = CrossNetwork(5, 2)
    x0 = torch.randn(7, 5)
    x1 = x0 * (x0 @ net.layers[0].weight.T + net.layers[0].bias) + x0
    x2 = x0 * (x1 @ net.layers[1].weight.T + net.layers[1].bias) + x1
    assert torch.allclose(net(x0), x2, atol=1e-6)
    assert torch.equal(CrossNetwork(5, 0)(x0), x0)


@pytest.mark.parametrize("architecture", ["mmoe", "shared_bottom", "mlp"])
def test_every_architecture_gives_one_logit_per_task(architecture: str) -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(6, 3, architecture, hidden=(8,), experts=3, expert_hidden=(8,), tower_hidden=(4,))
    x = torch.randn(10, 6)
    assert net(x).shape == (10, 3) and net.predict_proba(x).shape == (10, 3)
    assert ((net.predict_proba(x) > 0) & (net.predict_proba(x) < 1)).all()
    # tasks are separate outputs: a gradient of task 0 leaves task 2's head alone
    net(x)[:, 0].sum().backward()
    assert net.heads[2].weight.grad is None or not net.heads[2].weight.grad.any()


def test_mmoe_gates_mix_experts_per_task() -> None:
    torch.manual_seed(0)
    net = MultiTaskNet(4, 2, "mmoe", experts=3, expert_hidden=(5,), tower_hidden=())
    with torch.no_grad():  # gate 0 picks expert 0 only, gate 1 expert 2 only
        for gate, pick in zip(net.gates, (0, 2)):
            gate.weight.zero_()
            gate.bias.copy_(torch.tensor([-1e4, -1e4, -1e4]).index_fill(0, torch.tensor(pick), 1e4))
    net.eval()
    x = torch.randn(6, 4)
    z = net.cross(x)
    expect = torch.stack([h(net.experts[e](z)).squeeze(-1) for h, e in zip(net.heads, (0, 2))], dim=1)
    assert torch.allclose(net(x), expect, atol=1e-5)


@pytest.fixture(scope="module")
def world():
    ds = synthetic_log(users=300, videos=500, impressions=30_000, seed=1)
    train, _ = split_by_time(ds, CUT)
    ex = build_examples(ds.events, ds.videos).filter(pl.col("ts") >= pl.lit(CUT).cast(TIMESTAMP))
    feats = point_in_time_features(ex, EventTables.build(ds.events, ds.videos), ds.videos, True)
    return ds, train, feats, ex


@pytest.mark.parametrize("architecture", ["mmoe", "shared_bottom"])
def test_heads_learn_their_labels_on_future_examples(world, architecture: str) -> None:
    ds, train, feats, ex = world
    ranker = MultiTaskRanker(replace(FAST, architecture=architecture)).fit(train, None)
    probs = ranker.predict_matrix(feature_matrix(feats, None, ranker.cooc, ranker.config.similarity_recent))
    # the synthetic log likes 20% of completions; dislikes 10% of abandoned watches at random
    # (~1.5% of examples, barely predictable: it is checked for calibration only)
    floors = {"label": ("p_complete", 0.85), "interacted": ("p_interact", 0.74), "liked": ("p_like", 0.74)}
    for label, (column, floor) in floors.items():
        assert roc_auc(probs[column], ex[label].to_numpy()) > floor, (architecture, column)
    rate = ex["disliked"].mean()
    assert abs(probs["p_dislike"].mean() - rate) < 0.3 * rate
    assert ranker.report["val_auc_liked"] > 0.7 and ranker.report["val_ece_liked"] < 0.05


def test_a_task_without_weight_has_no_head_and_is_not_reported(world) -> None:
    ds, train, *_ = world
    cfg = replace(FAST, architecture="mlp", loss_weights=(1.0, 0.0, 0.0, 1.0), max_examples=8_000)
    ranker = MultiTaskRanker(cfg).fit(train, None)
    assert ranker.config.tasks == ("label", "disliked")
    assert all(len(member.heads) == 2 for member in ranker.model.members)
    cands = pl.DataFrame({"user_id": ["u3"] * 40, "video_id": ds.videos["video_id"].head(40)})
    out = ranker.score(cands, build_user_state(train.events, train.videos), ds.videos, NOW)
    assert [c for c in out.columns if c.startswith("p_")] == ["p_complete", "p_dislike", "p_raw"]
    assert out["p_dislike"].n_unique() > 1
    # the value model still counts the untrained tasks, at their base rates (a shift common to all)
    assert set(ranker.base_rates) == {"interacted", "liked"}
    shift = ranker.base_rates["interacted"] + 2.0 * ranker.base_rates["liked"]
    ranker.with_value(replace(cfg.value, interact=cfg.value.interact + 1.0, like=cfg.value.like + 2.0))
    again = ranker.score(cands, build_user_state(train.events, train.videos), ds.videos, NOW)
    np.testing.assert_allclose(again["score"] - out["score"], shift, atol=1e-12)


def test_value_weights_change_the_order_without_retraining(tmp_path, world) -> None:
    ds, train, *_ = world
    ranker = MultiTaskRanker(replace(FAST, max_examples=8_000)).fit(train, None)
    users = build_user_state(train.events, train.videos)
    cands = pl.DataFrame({"user_id": ["u9"] * 200, "video_id": ds.videos["video_id"].head(200)})
    base = ranker.score(cands, users, ds.videos, NOW)
    dislikes_only = ValueModel(interact=0.0, like=0.0, dislike=1000.0)
    loaded = MultiTaskRanker.load(ranker.save(tmp_path / "r"), value=dislikes_only)
    out = loaded.score(cands, users, ds.videos, NOW)
    probs = [c for c in base.columns if c.startswith("p_")]
    assert out.select(probs).equals(base.select(probs))  # same model
    assert loaded.value == dislikes_only and ranker.value == FAST.value
    top = out.sort("score", descending=True)["p_dislike"].head(20).to_numpy()
    assert top.max() <= np.quantile(out["p_dislike"].to_numpy(), 0.2) + 1e-12  # least disliked first


@pytest.mark.parametrize("bad", [{"like": -0.1}, {"dislike": float("nan")}, {"interact": float("inf")}])
def test_value_model_rejects_bad_weights(bad: dict) -> None:
    with pytest.raises(ValueError, match="ValueModel"):
        ValueModel(**bad)
