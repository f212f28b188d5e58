"""The ranker on seeded synthetic logs: it learns a known signal, is calibrated, saves and serves."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import torch

from tests.scoring.scoring_synth import T0, FixedEmbeddings, split_by_time, synthetic_log
from vidrec.catalogue import Catalogue
from vidrec.data.schema import TIMESTAMP, epoch_us
from vidrec.errors import VidrecError
from vidrec.features.live import LiveCounts
from vidrec.features.point_in_time import EventTables, point_in_time_features
from vidrec.features.user_state import build_user_state
from vidrec.request import Request
from vidrec.scoring import EmbeddingSource, MLPRanker, Ranker, RankerConfig, ValueModel, build_examples
from vidrec.scoring.calibration import expected_calibration_error, log_loss, roc_auc
from vidrec.scoring.model import Ensemble

CUT = T0 + timedelta(days=16)
NOW = T0 + timedelta(days=16, hours=1)
FAST = RankerConfig(  # the multi-task network: every head is learnt
    architecture="mmoe", loss_weights=(1.0, 0.5, 0.5, 0.5), value=ValueModel(like=0.2, dislike=1.0),
    max_epochs=6, patience=1, batch_size=2048,
)


@pytest.fixture(scope="module")
def world():
    ds = synthetic_log(users=300, videos=500, impressions=30_000, seed=0)
    train, _ = split_by_time(ds, CUT)
    return ds, train


@pytest.fixture(scope="module")
def ranker(world) -> MLPRanker:
    return MLPRanker(FAST).fit(world[1], None)


@pytest.fixture(scope="module")
def emb_ranker(world) -> tuple[MLPRanker, FixedEmbeddings]:
    emb = FixedEmbeddings(world[0].videos["video_id"], dim=8)
    return MLPRanker(FAST).fit(world[1], emb), emb


def future_examples(world, with_history: bool) -> tuple[pl.DataFrame, np.ndarray]:
    """Examples after the training cut, with features from the full log (still point in time)."""
    ds, _ = world
    ex = build_examples(ds.events, ds.videos).filter(pl.col("ts") >= pl.lit(CUT).cast(TIMESTAMP))
    feats = point_in_time_features(ex, EventTables.build(ds.events, ds.videos), ds.videos, with_history)
    return feats, ex["label"].to_numpy()


def test_learns_category_affinity_and_is_calibrated_on_future_examples(world, ranker) -> None:
    feats, y = future_examples(world, with_history=True)
    p = ranker.predict(feats)
    assert roc_auc(p, y) > 0.8
    assert log_loss(p, y) < 0.85 * log_loss(np.full_like(p, y.mean()), y)
    assert expected_calibration_error(p, y) < 0.05
    report = ranker.report
    assert report["val_auc"] > 0.8 and report["val_ece"] < 0.06
    assert report["train_examples"] + report["validation_examples"] == report["examples"]


def test_embeddings_path_learns_too(world, emb_ranker) -> None:
    ranker, _ = emb_ranker
    feats, y = future_examples(world, with_history=True)
    assert roc_auc(ranker.predict(feats), y) > 0.8
    assert ranker.embedding_dim == 8 and isinstance(emb_ranker[1], EmbeddingSource)


def candidates_for(world, user: str, n: int) -> pl.DataFrame:
    vids = world[0].videos["video_id"].head(n)
    return pl.DataFrame({
        "user_id": [user] * n, "video_id": vids, "sources": [["two_tower"]] * n,
        "retrieval_score": pl.Series([None] * n, dtype=pl.Float64), "rank_two_tower": np.arange(n),
    })  # fmt: skip


def state(world) -> pl.DataFrame:
    return build_user_state(world[1].events, world[1].videos)


def test_scores_500_candidates_for_one_user(world, ranker, emb_ranker) -> None:
    cands = candidates_for(world, "u7", 500)
    for r in (ranker, emb_ranker[0]):
        out = r.score(cands, state(world), world[0].videos, NOW)
        added = ["p_complete", "p_interact", "p_like", "p_dislike", "p_raw", "score"]  # every head is trained
        assert out.height == 500 and out.columns == [*cands.columns, *added]
        assert out.select(pl.exclude(added)).equals(cands)
        for c in added[:4]:
            p = out[c].to_numpy()
            assert np.all((p >= 0) & (p <= 1)) and not np.isnan(p).any() and p.std() > 0, c
        # score is the value model of the heads' strictly increasing calibrations, close to the probabilities
        v = r.value
        value = out["p_complete"] + v.interact * out["p_interact"] + v.like * out["p_like"] - v.dislike * out["p_dislike"]
        assert np.abs(out["score"].to_numpy() - value.to_numpy()).mean() < 0.05
        assert out["score"].n_unique() >= out["p_raw"].n_unique() > out["p_complete"].n_unique()  # no steps


@pytest.fixture(scope="module")
def single_head(world) -> MLPRanker:
    return MLPRanker(RankerConfig(max_epochs=3, max_examples=8_000)).fit(world[1], None)


def test_default_single_head_ranker_reports_its_one_head_and_orders_by_the_raw_output(world, single_head) -> None:
    ranker = single_head
    assert ranker.config.tasks == ("label",) and ranker.config.architecture == "mlp"
    cands = candidates_for(world, "u7", 300)
    out = ranker.score(cands, state(world), world[0].videos, NOW)
    assert out.columns == [*cands.columns, "p_complete", "p_raw", "score"]  # no constant for an untrained head
    # calibration's steps tie many candidates; the ranking score never does: it follows the network
    assert out["p_complete"].n_unique() < out["p_raw"].n_unique() == out["score"].n_unique()
    by_score = out.sort("score", descending=True)["video_id"]
    assert by_score.equals(out.sort("p_raw", descending=True)["video_id"])
    assert by_score.equals(out.sort("p_complete", "p_raw", descending=True)["video_id"])  # and p_complete's order
    assert np.abs(out["score"] - out["p_complete"]).max() < 0.1  # a probability still


def test_request_scores_follow_the_raw_output_without_ties(world, single_head) -> None:
    ranker = single_head
    catalogue = Catalogue(world[0].videos)
    ranker.bind(catalogue, LiveCounts(catalogue))  # no live counts: the features of a quiet platform
    rows = catalogue.rows(world[0].videos["video_id"].head(400).to_list())
    out = ranker.score_request(Request("u7", epoch_us(NOW), 10), rows)
    assert sorted(out) == ["p_complete", "p_raw", "score"]
    raw, score = out["p_raw"], out["score"]
    distinct = np.unique(raw).size
    assert np.unique(score).size == distinct and np.unique(out["p_complete"]).size < distinct
    np.testing.assert_array_equal(np.argsort(-score, kind="stable"), np.argsort(-raw, kind="stable"))


def test_unknown_users_and_videos_get_prior_scores(world, ranker) -> None:
    videos = pl.concat([world[0].videos, world[0].videos.head(1).with_columns(video_id=pl.lit("brand_new"))])
    cands = pl.DataFrame({"user_id": ["nobody", "u1"], "video_id": ["v1", "brand_new"]})
    out = ranker.score(cands, state(world), videos, NOW)
    assert out["p_complete"].is_between(0, 1).all()


def test_save_load_gives_identical_scores(tmp_path, world, ranker, emb_ranker) -> None:
    cands = pl.concat([candidates_for(world, "u3", 50), candidates_for(world, "u11", 50)])
    users = state(world)
    for r, emb in ((ranker, None), emb_ranker):
        path = r.save(tmp_path / f"r{emb is not None}")
        loaded = MLPRanker.load(path, embeddings=emb)
        assert loaded.config == r.config
        a = r.score(cands, users, world[0].videos, NOW)
        assert a.equals(loaded.score(cands, users, world[0].videos, NOW))


def test_a_ranker_with_other_features_is_refused_readably(tmp_path, ranker) -> None:
    path = ranker.save(tmp_path / "old")
    meta = json.loads((path / "ranker.json").read_text())
    meta["features"] = meta["features"][:-1]  # as a ranker saved before a feature was added
    (path / "ranker.json").write_text(json.dumps(meta))
    with pytest.raises(VidrecError, match="older vidrec") as err:
        MLPRanker.load(path)
    assert "vidrec train" in str(err.value)


def test_a_ranker_saved_before_ensembles_and_title_words_scores_as_trained(tmp_path, world) -> None:
    cfg = replace(FAST, ensemble=1, features=replace(FAST.features, title_words=False), max_examples=5_000)
    videos = world[0].videos.with_columns(title=pl.lit("shared title words"))
    old = MLPRanker(cfg).fit(replace(world[1], videos=videos), None)
    path = old.save(tmp_path / "old")
    meta = json.loads((path / "ranker.json").read_text())  # as the previous version wrote them
    del meta["config"]["ensemble"], meta["config"]["features"]["title_words"]
    (path / "ranker.json").write_text(json.dumps(meta))
    tables = json.loads((path / "tables" / "tables.json").read_text())
    del tables["config"]["title_words"]
    (path / "tables" / "tables.json").write_text(json.dumps(tables))
    loaded = MLPRanker.load(path)
    assert loaded.config.ensemble == 1 and not loaded.config.features.title_words
    assert not loaded.tables.config.title_words
    cands = candidates_for(world, "u3", 50)
    assert loaded.score(cands, state(world), videos, NOW).equals(old.score(cands, state(world), videos, NOW))


def test_embedding_ranker_needs_its_embeddings(tmp_path, world, emb_ranker) -> None:
    path = emb_ranker[0].save(tmp_path / "e")
    with pytest.raises(VidrecError, match="8-d two-tower embeddings"):
        MLPRanker.load(path).score(candidates_for(world, "u1", 3), state(world), world[0].videos, NOW)
    with pytest.raises(VidrecError, match="source given has 4"):
        MLPRanker.load(path, embeddings=FixedEmbeddings(world[0].videos["video_id"], dim=4))


def test_serving_history_comes_from_the_user_state(world, emb_ranker) -> None:
    ranker, _ = emb_ranker
    cands = candidates_for(world, "u5", 20)
    users = state(world)
    base = ranker.score(cands, users, world[0].videos, NOW)["p_complete"]
    emptied = users.with_columns(recent_completed=pl.lit([], dtype=pl.List(pl.String())))
    changed = ranker.score(cands, emptied, world[0].videos, NOW)["p_complete"]
    assert not base.equals(changed)


def test_scoring_before_the_training_log_ends_is_refused(world, ranker) -> None:
    with pytest.raises(ValueError, match="compacted"):
        ranker.score(candidates_for(world, "u1", 3), state(world), world[0].videos, T0)


def test_fit_is_seeded(world) -> None:
    cfg = replace(FAST, max_epochs=1, max_examples=3_000)
    a = MLPRanker(cfg).fit(world[1], None)
    b = MLPRanker(cfg).fit(world[1], None)
    assert a.report == b.report


def test_features_built_in_blocks_equal_one_block(world) -> None:
    emb = FixedEmbeddings(world[0].videos["video_id"], dim=4)
    whole, _ = MLPRanker(FAST).prepare(world[1], emb)
    blocks, _ = MLPRanker(replace(FAST, feature_block=997)).prepare(world[1], emb)  # a prime: a ragged last block
    assert whole.x.shape[0] > 3 * 997 and whole.x.dtype == np.float32
    np.testing.assert_array_equal(blocks.x, whole.x)
    with pytest.raises(ValueError, match="feature_block"):
        RankerConfig(feature_block=0)


def test_the_standardiser_matches_numpy_and_works_in_place() -> None:
    from vidrec.scoring.features import Standardizer

    rng = np.random.default_rng(0)
    x = (rng.normal(3.0, 2.0, (300_000, 5)) * [1, 10, 0, 1e3, 1]).astype(np.float32)  # > one block of rows
    scaler = Standardizer().fit(x)
    np.testing.assert_allclose(scaler.mean, x.mean(axis=0, dtype=np.float64), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scaler.std, np.where(x.std(axis=0, dtype=np.float64) > 1e-8,
                                                    x.std(axis=0, dtype=np.float64), 1.0), rtol=1e-9)  # fmt: skip
    copy = scaler(x)
    same = scaler(x, out=x)
    assert same is x and copy is not x
    np.testing.assert_array_equal(copy, x)


def test_an_ensemble_averages_its_members_and_survives_save_load(tmp_path, world) -> None:
    cfg = replace(FAST, architecture="mlp", loss_weights=(1.0, 0.0, 0.0, 0.0), max_epochs=2, max_examples=5_000)
    ens = MLPRanker(replace(cfg, ensemble=3)).fit(world[1], None)
    assert isinstance(ens.model, Ensemble) and len(ens.model.members) == 3
    assert ens.report["ensemble"] == 3 and len(ens.report["member_best_epochs"]) == 3
    singles = [MLPRanker(replace(cfg, seed=seed, ensemble=1)).fit(world[1], None) for seed in range(3)]
    x = torch.randn(64, len(ens.scaler.mean))
    members = torch.stack([s.model.predict_proba(x) for s in singles])  # member i is the single fit of seed i
    torch.testing.assert_close(ens.model.predict_proba(x), members.mean(dim=0))
    assert not torch.allclose(members[0], members[1])  # the seeds differ, so averaging means something
    cands = candidates_for(world, "u3", 50)
    loaded = MLPRanker.load(ens.save(tmp_path / "ens"))
    users, videos = state(world), world[0].videos
    assert loaded.score(cands, users, videos, NOW).equals(ens.score(cands, users, videos, NOW))


def test_unfitted_and_untrainable_rankers_speak_to_the_user(world) -> None:
    with pytest.raises(VidrecError, match="not fitted"):
        MLPRanker().score(candidates_for(world, "u1", 2), state(world), world[0].videos, NOW)
    ds = world[1]
    only_positive = replace(ds, events=ds.events.filter(pl.col("event") == "impression").head(5))
    with pytest.raises(VidrecError, match="cannot train"):
        MLPRanker(FAST).fit(only_positive, None)
    assert issubclass(MLPRanker, Ranker)


def test_config_round_trips_and_rejects_bad_values() -> None:
    cfg = RankerConfig(examples_since=datetime(2025, 1, 3, tzinfo=T0.tzinfo), hidden=(32,))
    assert RankerConfig.from_dict(cfg.to_dict()) == cfg
    saved_before_title_words = cfg.to_dict()
    del saved_before_title_words["features"]["title_words"]
    assert RankerConfig.from_dict(saved_before_title_words).features.title_words is False  # as it was trained
    assert RankerConfig.from_dict({}).features.title_words is True  # a new config gets today's default
    assert RankerConfig.from_dict({"features": {"history_len": 20}}).features.title_words is True
    saved_before_ensembles = cfg.to_dict()
    del saved_before_ensembles["ensemble"]
    assert RankerConfig.from_dict(saved_before_ensembles).ensemble == 1
    assert RankerConfig.from_dict({"hidden": [16]}).ensemble == RankerConfig().ensemble
    for bad in ({"hidden": ()}, {"dropout": 1.0}, {"lr": 0.0}, {"batch_size": 0}, {"val_fraction": 0.6},
                {"calibration": "beta"}, {"threads": 0}, {"examples_since": datetime(2025, 1, 1)},
                {"architecture": "moe"}, {"loss_weights": (0.0, 1.0, 1.0, 1.0)}, {"loss_weights": (1.0, 1.0)},
                {"experts": 0}, {"cross_layers": -1}, {"expert_hidden": ()}, {"ensemble": 0}):  # fmt: skip
        with pytest.raises(ValueError, match="RankerConfig"):
            RankerConfig(**bad)
