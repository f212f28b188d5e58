"""Uploads and removals reach the generators of a fitted system without a retraining."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.candidates.conftest import cluster_of, make_clustered
from vidrec.candidates import TwoTowerGenerator
from vidrec.candidates.base import requests_of
from vidrec.candidates.creators import CreatorsGenerator
from vidrec.candidates.fresh import FreshGenerator
from vidrec.candidates.generators import TrendingGenerator
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.candidates.two_tower.inputs import demographic_indices, join_demographics
from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import TIMESTAMP, epoch_us
from vidrec.features import build_user_state

CFG = TwoTowerConfig(embedding_dim=8, user_hidden=(16,), video_hidden=(16,), user_hash_buckets=256,
                     batch_size=64, epochs=6, val_fraction=0.0, seed=1, threads=1)  # fmt: skip
OWN_BLOCK = 16  # 15 unseen videos of the user's own cluster + the upload of that cluster


def uploads(now, ids=("new-even", "new-odd")) -> pl.DataFrame:
    """One upload per cluster, described only by content the clusters are known by."""
    return pl.DataFrame(
        {
            "video_id": list(ids),
            "creator_id": ["c0", "c1"],
            "category": ["even", "odd"],
            "tags": [["t_even", "t1"], ["t_odd", "t1"]],
            "duration_seconds": [100.0, 100.0],
            "uploaded_at": [now - timedelta(hours=1)] * 2,
            "available": [True, True],
        }
    ).with_columns(pl.col("uploaded_at").cast(TIMESTAMP))


@pytest.fixture()
def fitted():
    ds, now = make_clustered()
    return TwoTowerGenerator(CFG, log=lambda _: None).fit(ds, now), ds, now


def own_upload(out: pl.DataFrame) -> pl.DataFrame:
    """Rows of uploads, with whether the upload is of the user's own cluster."""
    new = out.filter(pl.col("video_id").str.starts_with("new"))
    mine = np.where(cluster_of(new["user_id"]) == 0, "new-even", "new-odd")
    return new.with_columns(own=pl.col("video_id") == pl.Series(mine))


def test_upload_is_retrieved_for_the_users_who_love_its_content_right_after_add(fitted):
    gen, ds, now = fitted
    state = build_user_state(ds.events, ds.videos)
    assert not gen.generate(state, 100, now)["video_id"].str.starts_with("new").any()  # not before
    gen.catalogue.add(uploads(now))
    top = own_upload(gen.generate(state, OWN_BLOCK, now))
    assert top["own"].all()  # the other cluster's upload never makes a user's own block
    assert top.height == ds.users.height  # every user gets the upload of their cluster


def test_removed_and_unavailable_uploads_never_return(fitted):
    gen, ds, now = fitted
    state = build_user_state(ds.events, ds.videos)
    gen.catalogue.add(uploads(now).with_columns(available=pl.Series([True, False])))
    gen.catalogue.remove(gen.catalogue.rows(["new-even", "v4"]))
    out = gen.generate(state, 100, now)
    assert not out["video_id"].is_in(["new-even", "new-odd", "v4"]).any()


def test_upload_not_yet_online_is_held_back(fitted):
    gen, ds, now = fitted
    state = build_user_state(ds.events, ds.videos)
    gen.catalogue.add(uploads(now).with_columns(uploaded_at=pl.lit(now + timedelta(days=1)).cast(TIMESTAMP)))
    assert not gen.generate(state, 100, now)["video_id"].str.starts_with("new").any()
    assert gen.generate(state, 100, now + timedelta(days=2))["video_id"].str.starts_with("new").any()


def test_save_load_keeps_uploads(fitted, tmp_path):
    gen, ds, now = fitted
    state = build_user_state(ds.events, ds.videos)
    gen.catalogue.add(uploads(now))
    gen.save(tmp_path / "tt")
    again = TwoTowerGenerator.load(tmp_path / "tt").bind(Catalogue(gen.catalogue.frame))
    assert again.generate(state, OWN_BLOCK, now).equals(gen.generate(state, OWN_BLOCK, now))
    vocab_key = 1 + gen.model.vocab.videos.to_index(["v0"])[0]
    assert again.catalogue_keys.keys(["v0", "new-even", "new-odd"]).tolist() == [vocab_key, 61, 62]


def test_fresh_and_creators_shelve_uploads_and_drop_removals():
    ds, now = make_clustered()
    state = build_user_state(ds.events, ds.videos)
    for gen in (FreshGenerator().fit(ds, now), CreatorsGenerator().fit(ds, now)):
        assert not gen.generate(state, 50, now)["video_id"].str.starts_with("new").any()
        gen.catalogue.add(uploads(now))
        top = own_upload(gen.generate(state, 50, now))
        assert top.filter(pl.col("own")).height == ds.users.height, gen.name
        gen.catalogue.remove(gen.catalogue.rows(["new-even", "new-odd"]))
        assert not gen.generate(state, 50, now)["video_id"].str.starts_with("new").any(), gen.name


def test_trending_drops_removed_videos():
    ds, now = make_clustered()
    gen = TrendingGenerator().fit(ds, now)
    state = build_user_state(ds.events, ds.videos).head(3)
    best = gen.generate(state, 1, now)["video_id"][0]
    gen.catalogue.remove(gen.catalogue.rows([best]))
    assert best not in gen.generate(state, 60, now)["video_id"].to_list()


def test_demographics_reach_the_user_tower_at_serving_as_in_training():
    ds, now = make_clustered()
    users = ds.users.with_columns(
        age_bucket=pl.Series(np.where(cluster_of(ds.users["user_id"]) == 0, "18-24", "45-49")),
        country=pl.lit("FR"),
    )
    ds = Dataset(ds.events, ds.videos, users)
    gen = TwoTowerGenerator(replace(CFG, user_demographics=True), log=lambda _: None)
    gen.fit(ds, now)
    state = build_user_state(ds.events, ds.videos)
    fields = gen.model.vocab.user_fields
    assert set(fields) == {"age_bucket", "country"}
    served = gen._inputs(requests_of(gen.serving_state(state), gen.catalogue, epoch_us(now), 10))["demographics"]
    trained = demographic_indices(join_demographics(state.select("user_id"), users, fields), fields)
    assert (served.numpy() > 0).all() and np.array_equal(served.numpy(), trained)
    cold = gen._inputs(requests_of(state.head(1).with_columns(user_id=pl.lit("new")), gen.catalogue, epoch_us(now), 10))
    assert (cold["demographics"].numpy() == 0).all()  # unknown users: demographics missing
    assert not gen.generate(state, 10, now).is_empty()
