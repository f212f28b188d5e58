"""The richer two-tower inputs: shapes with every feature group on/off, unit norms, cold
videos from content, dislikes strictly before the example, pooling modes, config, save/load."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import torch

from tests.candidates.conftest import cluster_of
from vidrec.candidates.two_tower import (
    TwoTowerConfig,
    TwoTowerModel,
    Vocabulary,
    fit_two_tower,
    user_embeddings,
    video_embeddings,
)
from vidrec.candidates.two_tower.data import build_examples, padded_indices
from vidrec.candidates.two_tower.export import serving_user_inputs
from vidrec.candidates.two_tower.inputs import duration_bucket, example_age_bucket, time_context
from vidrec.candidates.two_tower.model import HistoryPooling, masked_mean
from vidrec.data.ids import IdMap
from vidrec.data.schema import TIMESTAMP
from vidrec.features import build_user_state
from vidrec.features.user_state import empty_user_state

torch.set_num_threads(1)
SMALL = dict(embedding_dim=8, user_hidden=(16,), video_hidden=(16,), user_hash_buckets=64, history_len=6, threads=1)
ALL = dict(dislike_len=4, user_demographics=True, request_context=True, example_age=True,
           video_duration=True, video_language=True, video_id_dropout=0.3)
GROUPS = [{}, {"dislike_len": 4}, {"user_demographics": True}, {"request_context": True}, {"example_age": True},
          {"video_duration": True}, {"video_language": True}, {"history_pooling": "weighted"},
          {"history_pooling": "attention"}, {"history_pooling": "transformer"}, ALL]


def with_profile(ds) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Videos with a language and users with an age bucket (by parity, like the clusters)."""
    even = pl.int_range(pl.len()) % 2 == 0
    videos = ds.videos.with_columns(language=pl.when(even).then(pl.lit("en")).otherwise(pl.lit("fr")))
    users = ds.users.with_columns(age_bucket=pl.when(even).then(pl.lit("18-24")).otherwise(pl.lit("25-34")))
    return videos, users


@pytest.mark.parametrize("groups", GROUPS)
def test_tower_shapes_and_unit_norms_with_each_feature_group(clustered, groups):
    ds, now = clustered
    videos, users = with_profile(ds)
    model = TwoTowerModel(TwoTowerConfig(**SMALL, **groups), Vocabulary.from_videos(videos, users))
    model.set_catalogue(model.vocab.encode_videos(videos))
    state = build_user_state(ds.events, videos).join(users, on="user_id", how="left")
    u = user_embeddings(model, state, now=now)
    _, v = video_embeddings(model, videos)
    assert u.shape == (state.height, 8) and v.shape == (videos.height, 8)
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    model.train()  # the training path (id dropouts) keeps the shapes and norms
    cat = model.catalogue_tower(torch.arange(1, 5))
    assert cat.shape == (4, 8) and torch.allclose(cat.norm(dim=1), torch.ones(4), atol=1e-5)


def test_cold_video_is_embedded_from_its_content(clustered):
    ds, _ = clustered
    videos, users = with_profile(ds)
    model = TwoTowerModel(TwoTowerConfig(**SMALL, **ALL), Vocabulary.from_videos(videos, users))
    new = videos.head(2).with_columns(
        video_id=pl.Series(["new-a", "new-b"]), category=pl.Series(["even", "odd"]),
        tags=pl.Series([["t_even"], ["t_odd"]]), duration_seconds=pl.Series([30.0, 3000.0]),
    )
    _, vec = video_embeddings(model, new)
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vec[0], vec[1], atol=1e-3)  # different content, different embedding
    assert model.vocab.video_index(new["video_id"]).tolist() == [0, 0]  # the id is really unknown


def test_dislikes_are_strictly_before_the_example_time():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [  # (user, video, hour, event)
        ("u1", "a", 1, "dislike"), ("u1", "b", 1, "watch"), ("u1", "c", 2, "dislike"),
        ("u1", "a", 2, "dislike"), ("u1", "d", 3, "watch"), ("u1", "e", 3, "dislike"), ("u2", "a", 0, "watch"), ("u2", "f", 4, "dislike"),
    ]
    events = pl.DataFrame({
        "user_id": [r[0] for r in rows], "video_id": [r[1] for r in rows],
        "ts": [t0 + timedelta(hours=r[2]) for r in rows], "event": [r[3] for r in rows],
        "watch_seconds": [50.0 if r[3] == "watch" else None for r in rows],
    }).with_columns(pl.col("ts").cast(TIMESTAMP))
    videos = pl.DataFrame({
        "video_id": list("abcdef"), "creator_id": ["c"] * 6, "category": ["x"] * 6, "tags": [["t"]] * 6,
        "duration_seconds": [100.0] * 6, "uploaded_at": [t0 - timedelta(days=1)] * 6, "available": [True] * 6,
    }).with_columns(pl.col("uploaded_at").cast(TIMESTAMP))
    vocab = Vocabulary.from_videos(videos)
    cfg = TwoTowerConfig(**{**SMALL, "dislike_len": 3})
    ex = build_examples(events, videos, vocab, 6, 64, 1, config=cfg)
    idx = {v: int(vocab.video_index([v])[0]) for v in "abcdef"}
    got = ex.user_inputs["dislikes"].numpy()
    # examples sorted by user then time: u1/b at 1h (a disliked at the same time: excluded),
    # u1/d at 3h (a once, its first dislike; c before; e at the same time excluded),
    # u2/a at 0h (nothing before)
    assert got.tolist() == [[0, 0, 0], [0, idx["a"], idx["c"]], [0, 0, 0]]


def test_serving_inputs_are_right_aligned_and_read_now():
    vocab = IdMap(["a", "b", "c"])
    got = padded_indices(pl.Series([["a", "b"], [], ["a", "b", "c", "a"]]), vocab, 3)
    assert got.tolist() == [[0, 1, 2], [0, 0, 0], [2, 3, 1]]  # most recent last, like training
    wednesday = datetime(2024, 1, 3, 17, 30, tzinfo=UTC)
    hour, dow = time_context(np.array([int(wednesday.timestamp() * 1_000_000)]))
    assert (hour[0], dow[0]) == (18, 3)  # 17h -> index 18; a Wednesday -> ISO day 3
    assert duration_bucket(pl.Series([None, 10.0, 20.0, 1e6])).tolist()[:2] == [0, 1]
    assert duration_bucket(pl.Series([20.0, 1e6])).tolist() == [2, 13]
    assert example_age_bucket(np.array([0, 86_400 * 10**6 * 3])).tolist() == [1, 3]


def test_serving_demographics_unknown_to_zero(clustered):
    ds, now = clustered
    videos, users = with_profile(ds)
    model = TwoTowerModel(TwoTowerConfig(**SMALL, user_demographics=True, request_context=True, dislike_len=2),
                          Vocabulary.from_videos(videos, users))
    state = empty_user_state(["x", "y", "z"]).with_columns(age_bucket=pl.Series(["18-24", "99+", None]))
    got = serving_user_inputs(model, state, now)
    assert got["demographics"][:, 0].tolist()[1:] == [0, 0] and got["demographics"][0, 0] > 0
    assert got["dislikes"].shape == (3, 2) and "example_age" not in got
    assert set(np.unique(got["hour"])) == {now.hour + 1}


def test_pooling_modes():
    torch.manual_seed(0)
    emb = torch.randn(3, 4, 5)
    mask = torch.tensor([[False, False, True, True], [False, False, False, False], [True, True, True, True]])
    mean = HistoryPooling("mean", 4, 5)(emb, mask)
    assert torch.allclose(mean[0], emb[0, 2:].mean(0)) and torch.allclose(mean[1], torch.zeros(5))
    weighted = HistoryPooling("weighted", 4, 5)
    assert torch.allclose(weighted(emb, mask), mean, atol=1e-6)  # zero logits start as the mean
    with torch.no_grad():
        weighted.position_logit.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0]))
    assert torch.allclose(weighted(emb, mask)[2], emb[2, 3], atol=1e-5)  # all weight on the most recent
    att = HistoryPooling("attention", 4, 5)
    out = att(emb, mask)
    assert torch.allclose(out[1], torch.zeros(5))  # empty history
    one = torch.tensor([[False, False, False, True]])
    assert torch.allclose(att(emb[:1], one)[0], emb[0, 3] + att.position[3], atol=1e-6)
    # what sits in padded slots never matters
    noisy = emb.clone()
    noisy[0, :2] = 100.0
    seq = HistoryPooling("transformer", 4, 5)
    assert torch.allclose(seq(emb, mask)[1], torch.zeros(5)) and torch.isfinite(seq(emb, mask)).all()
    for pool in (weighted, att, seq):
        assert torch.allclose(pool(noisy, mask)[0], pool(emb, mask)[0], atol=1e-5)
    assert torch.allclose(masked_mean(emb, mask), mean)
    # causal: a slot reads only the videos before it, so the newest video changes no earlier slot
    later = emb.clone()
    later[2, 3] += 1.0
    x, y = (seq.encoder(e + seq.position, mask=seq.causal) for e in (emb[2:], later[2:]))
    assert torch.allclose(x[0, :3], y[0, :3], atol=1e-6) and not torch.allclose(x[0, 3], y[0, 3])


@pytest.mark.parametrize(
    "bad",
    [{"history_pooling": "max"}, {"dislike_len": -1}, {"video_id_dropout": 1.0}, {"video_id_dropout": -0.1}],
)
def test_config_rejects_bad_feature_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TwoTowerConfig(**bad)


@pytest.fixture(scope="module")
def trained_all(clustered):
    ds, _ = clustered
    videos, users = with_profile(ds)
    events = pl.concat([ds.events, ds.events.filter(pl.col("watch_seconds") < 50).with_columns(
        event=pl.lit("dislike"), watch_seconds=pl.lit(None, dtype=pl.Float64))])
    cfg = TwoTowerConfig(**{**SMALL, **ALL, "embedding_dim": 16, "batch_size": 64, "epochs": 12, "lr": 1e-2,
                            "val_fraction": 0.0, "seed": 3})
    model, _ = fit_two_tower(events, videos, cfg, log=lambda _: None, users=users)
    return ds, videos, users, model


def test_all_groups_still_learn_the_clusters_and_place_cold_videos(trained_all):
    ds, videos, users, model = trained_all
    state = build_user_state(ds.events, videos).join(users, on="user_id", how="left")
    ids, vecs = video_embeddings(model, videos)
    top = np.argsort(-(user_embeddings(model, state) @ vecs.T), axis=1)[:, :10]
    assert (cluster_of(ids)[top] == cluster_of(state["user_id"])[:, None]).mean() >= 0.9
    # a brand-new video with odd content lands among the odd users' picks
    new = videos.filter(pl.col("category") == "odd").head(1).with_columns(video_id=pl.lit("fresh"))
    _, fresh = video_embeddings(model, new)
    u = user_embeddings(model, state)
    odd_users = cluster_of(state["user_id"]) == 1
    assert (u[odd_users] @ fresh[0]).mean() > (u[~odd_users] @ fresh[0]).mean() + 0.2


def test_save_load_roundtrip_with_every_feature(trained_all, tmp_path):
    ds, videos, users, model = trained_all
    model.save(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["dislike_len"] == 4 and saved["history_pooling"] == "attention" and saved["video_language"] is True
    again = TwoTowerModel.load(tmp_path)
    state = build_user_state(ds.events, videos).join(users, on="user_id", how="left")
    now = datetime(2024, 2, 1, 9, tzinfo=UTC)
    assert np.allclose(user_embeddings(again, state, now=now), user_embeddings(model, state, now=now), atol=1e-6)
    assert np.allclose(video_embeddings(again, videos)[1], video_embeddings(model, videos)[1], atol=1e-6)
    assert list(again.vocab.user_fields) == ["age_bucket"]


def test_models_saved_before_the_new_features_still_load(clustered, tmp_path):
    ds, _ = clustered
    model = TwoTowerModel(TwoTowerConfig(**SMALL, history_pooling="mean"), Vocabulary.from_videos(ds.videos))
    model.set_catalogue(model.vocab.encode_videos(ds.videos))
    model.save(tmp_path)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    for name in ("video_duration", "video_language"):
        del state[name]
    torch.save(state, tmp_path / "model.pt")
    (tmp_path / "vocab_languages.parquet").unlink()
    cfg = json.loads((tmp_path / "config.json").read_text())
    for name in ("history_pooling", "dislike_len", "video_id_dropout", "video_duration"):
        del cfg[name]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    old = TwoTowerModel.load(tmp_path)
    assert len(old.vocab.languages) == 0 and old.config.history_pooling == "mean"
    assert np.allclose(video_embeddings(old, ds.videos)[1], video_embeddings(model, ds.videos)[1], atol=1e-6)
