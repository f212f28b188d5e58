import numpy as np
import polars as pl
import pytest
import torch

from tests.candidates.conftest import cluster_of
from vidrec.candidates.two_tower import (
    TwoTowerConfig,
    TwoTowerModel,
    fit_two_tower,
    load_video_embeddings,
    save_video_embeddings,
    user_embeddings,
    video_embeddings,
)
from vidrec.features import build_user_state
from vidrec.features.user_state import empty_user_state

FAST = dict(embedding_dim=16, user_hidden=(32,), video_hidden=(32,), user_hash_buckets=512,
            batch_size=64, epochs=25, lr=1e-2, val_fraction=0.0, seed=3, threads=1)


@pytest.fixture(scope="module")
def trained(clustered):
    ds, _ = clustered
    model, report = fit_two_tower(ds.events, ds.videos, TwoTowerConfig(**FAST), log=lambda _: None)
    return ds, model, report


def test_learns_the_clusters(trained):
    ds, model, report = trained
    state = build_user_state(ds.events, ds.videos)
    ids, vecs = video_embeddings(model, ds.videos)
    scores = user_embeddings(model, state) @ vecs.T  # (users, videos)
    top = np.argsort(-scores, axis=1)[:, :10]
    same = cluster_of(ids)[top] == cluster_of(state["user_id"])[:, None]
    assert same.mean() >= 0.9
    assert report.best_epoch >= 1 and report.epochs[0]["examples_per_s"] > 0
    assert report.epochs[-1]["loss"] < report.epochs[0]["loss"]


def test_cold_users_and_videos_are_embedded(trained):
    ds, model, _ = trained
    cold = user_embeddings(model, empty_user_state(["never-seen"]))
    assert cold.shape == (1, 16) and np.isclose(np.linalg.norm(cold), 1.0, atol=1e-5)
    new = ds.videos.head(1).with_columns(video_id=pl.lit("brand-new"))
    _, vec = video_embeddings(model, new)
    assert np.isfinite(vec).all() and np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)


def test_history_moves_a_cold_user_towards_its_cluster(trained):
    ds, model, _ = trained
    ids, vecs = video_embeddings(model, ds.videos)
    odd = ids.filter(pl.Series(cluster_of(ids) == 1)).head(8).to_list()
    state = empty_user_state(["stranger"]).with_columns(recent_completed=pl.Series([odd]))
    scores = user_embeddings(model, state) @ vecs.T
    top = np.argsort(-scores[0])[:10]
    assert (cluster_of(ids)[top] == 1).mean() >= 0.8


def test_save_load_gives_the_same_embeddings(trained, tmp_path):
    ds, model, _ = trained
    model.save(tmp_path / "m")
    again = TwoTowerModel.load(tmp_path / "m")
    assert again.config == model.config
    assert np.allclose(video_embeddings(again, ds.videos)[1], video_embeddings(model, ds.videos)[1])
    state = build_user_state(ds.events, ds.videos)
    assert np.allclose(user_embeddings(again, state), user_embeddings(model, state))


def test_embeddings_parquet_round_trip(trained, tmp_path):
    ds, model, _ = trained
    ids, vecs = video_embeddings(model, ds.videos)
    save_video_embeddings(tmp_path / "e.parquet", ids, vecs)
    ids2, vecs2 = load_video_embeddings(tmp_path / "e.parquet")
    assert ids2.to_list() == ids.to_list() and vecs2.dtype == np.float32
    assert np.array_equal(vecs, vecs2)


def test_training_is_repeatable(clustered):
    ds, _ = clustered
    cfg = TwoTowerConfig(**{**FAST, "epochs": 2, "val_fraction": 0.0})
    a, _ = fit_two_tower(ds.events, ds.videos, cfg, log=lambda _: None)
    b, _ = fit_two_tower(ds.events, ds.videos, cfg, log=lambda _: None)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


def test_the_refit_continues_from_the_search_best(clustered):
    from vidrec.candidates.two_tower.train import carve_validation, recall_at_k, validation_state

    ds, _ = clustered
    cfg = TwoTowerConfig(**{**FAST, "epochs": 6, "val_fraction": 0.2, "patience": 2, "eval_k": 10,
                            "refit_warm_epochs": 0.25})  # fmt: skip
    seen: list[str] = []
    warm, report = fit_two_tower(ds.events, ds.videos, cfg, log=seen.append)
    assert any("from the search's best" in line for line in seen) and report.refit_seconds > 0
    fit, truth = carve_validation(ds.events, cfg.val_fraction, cfg.val_min_interactions)
    state = validation_state(fit, ds.videos, truth, cfg.history_len).with_columns(request_ts=fit["ts"].max())
    fresh, _ = fit_two_tower(ds.events, ds.videos, cfg, log=lambda _: None, epochs=0.25)
    # a quarter of a pass keeps what the search learnt; the same quarter from scratch has not learnt it
    assert recall_at_k(warm, state, truth, 10) >= 0.9 * report.best_recall
    assert recall_at_k(fresh, state, truth, 10) < 0.6 * report.best_recall


def test_early_stopping_and_refit_report(clustered):
    ds, _ = clustered
    cfg = TwoTowerConfig(**{**FAST, "epochs": 4, "val_fraction": 0.2, "patience": 1, "eval_k": 10})
    seen: list[str] = []
    _, report = fit_two_tower(ds.events, ds.videos, cfg, log=seen.append)
    assert all("val_recall" in row for row in report.epochs)
    assert 1 <= report.best_epoch <= len(report.epochs) <= 4
    assert report.best_recall == max(r["val_recall"] for r in report.epochs)
    assert any(line.startswith("refit") for line in seen) and report.refit_seconds > 0
