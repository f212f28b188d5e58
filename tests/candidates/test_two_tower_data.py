import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.candidates.conftest import make_clustered
from vidrec.candidates.two_tower import TwoTowerConfig
from vidrec.candidates.two_tower.data import (
    NegativeSampler,
    Vocabulary,
    build_examples,
    hash_ids,
    history_before,
    iterate_batches,
    padded_indices,
)
from vidrec.candidates.two_tower.train import carve_validation
from vidrec.data.ids import IdMap


def test_hash_is_fnv1a_and_stable():
    # FNV-1a 64 of b"a" is 0xaf63dc4c8601ec8c; of b"" the offset basis.
    got = hash_ids(["a", "", "a"], buckets=2**61, n_functions=1)[:, 0]
    assert got.tolist() == [0xAF63DC4C8601EC8C % 2**61, 0xCBF29CE484222325 % 2**61, 0xAF63DC4C8601EC8C % 2**61]
    two = hash_ids(["user-1", "user-2"], buckets=1000, n_functions=2)
    assert two.shape == (2, 2) and (two >= 0).all() and (two < 1000).all()
    assert (two[:, 0] != two[:, 1]).any()  # the functions differ


def test_padded_indices_keeps_the_tail_and_drops_unknowns():
    vocab = IdMap(["a", "b", "c"])
    got = padded_indices(pl.Series([["a", "b", "c"], ["zz", "c"], []]), vocab, width=2)
    assert got.tolist() == [[2, 3], [0, 3], [0, 0]]  # an unknown id leaves an empty slot


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30), st.integers(1, 9)), max_size=40),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30)), min_size=1, max_size=20),
    st.integers(1, 5),
)
def test_history_is_the_last_completions_strictly_before_the_example(comps, examples, width):
    hu = np.array([c[0] for c in comps], dtype=np.int64)
    ht = np.array([c[1] for c in comps], dtype=np.int64)
    hv = np.array([c[2] for c in comps], dtype=np.int64)
    eu = np.array([e[0] for e in examples], dtype=np.int64)
    et = np.array([e[1] for e in examples], dtype=np.int64)
    got = history_before(eu, et, hu, ht, hv, width)
    order = np.lexsort((ht, hu))  # the same (user, time) order, stable on ties
    for row, (u, t) in enumerate(examples):  # brute-force oracle
        before = [int(hv[i]) for i in order if hu[i] == u and ht[i] < t]
        want = [0] * (width - len(before[-width:])) + before[-width:]
        assert got[row].tolist() == want


def test_examples_history_never_holds_own_or_later_videos(clustered):
    ds, _ = clustered
    vocab = Vocabulary.from_videos(ds.videos)
    ex = build_examples(ds.events, ds.videos, vocab, history_len=50, hash_buckets=97, hash_functions=1)
    assert len(ex) == ds.events.height
    video = ex.video.numpy()
    hist = ex.history.numpy()
    assert not (hist == video[:, None]).any()
    # Each example's history is a subset of what that user completed strictly earlier.
    comp = ds.events.filter(pl.col("watch_seconds") >= 80)
    first = comp.group_by("user_id", "video_id").agg(pl.col("ts").min())
    ts_of = {(r["user_id"], r["video_id"]): r["ts"] for r in first.to_dicts()}
    pos = ds.events.group_by("user_id", "video_id").agg(pl.col("ts").min()).sort("user_id", "ts", "video_id")
    names = vocab.videos.ids.to_list()
    for i, r in enumerate(pos.head(200).to_dicts()):
        for h in hist[i][hist[i] > 0]:
            assert ts_of[(r["user_id"], names[h - 1])] < r["ts"]


def test_negatives_are_never_interacted_videos(clustered):
    ds, _ = clustered
    vocab = Vocabulary.from_videos(ds.videos)
    ex = build_examples(ds.events, ds.videos, vocab, 10, 97, 1)
    sampler = NegativeSampler(
        len(vocab.videos), ex.video.numpy(), ex.interacted_keys, 0.5, 0.75, np.random.default_rng(1)
    )
    neg, valid = sampler.sample(ex.user, 8)
    assert neg.shape == valid.shape == (len(ex), 8)
    assert valid.mean() > 0.99
    keys = set(ex.interacted_keys.tolist())
    n_v = len(vocab.videos) + 1
    bad = [(u, v) for u, row, ok in zip(ex.user, neg, valid) for v, o in zip(row, ok) if o and u * n_v + v in keys]
    assert bad == []
    assert neg.min() >= 1 and neg.max() <= len(vocab.videos)


def test_popularity_sampler_prefers_popular_videos():
    positives = np.repeat(np.arange(1, 11), [1000] + [1] * 9)  # video 1 is very popular
    sampler = NegativeSampler(10, positives, np.zeros(0, np.int64), 1.0, 0.75, np.random.default_rng(0))
    neg, _ = sampler.sample(np.zeros(5000, dtype=np.int64), 1)
    share = (neg == 1).mean()
    want = 1000**0.75 / (1000**0.75 + 9)
    assert share == pytest.approx(want, abs=0.02)


def test_batches_cover_every_example_once(clustered):
    ds, _ = clustered
    vocab = Vocabulary.from_videos(ds.videos)
    ex = build_examples(ds.events, ds.videos, vocab, 10, 97, 1)
    neg = np.ones((len(ex), 3), dtype=np.int64)
    batches = list(iterate_batches(ex, neg, neg > 0, 64, np.random.default_rng(0)))
    assert sum(len(b["video"]) for b in batches) == len(ex)
    assert batches[0]["negatives"].shape == (64, 3) and batches[0]["history"].shape == (64, 10)
    assert sorted(np.concatenate([b["video"].numpy() for b in batches])) == sorted(ex.video.numpy())


def test_validation_carve_holds_out_each_users_last_interactions():
    ds, _ = make_clustered(n_users=4, per_user=10)
    fit, truth = carve_validation(ds.events, 0.2, 5)
    assert truth.group_by("user_id").len()["len"].to_list() == [2, 2, 2, 2]
    last = ds.events.sort("ts").group_by("user_id").agg(pl.col("video_id").tail(2))
    want = last.explode("video_id").sort("user_id", "video_id")
    assert truth.sort("user_id", "video_id").equals(want)
    assert fit.height == ds.events.height - 8
    assert fit.join(truth, on=["user_id", "video_id"], how="semi").height == 0


@pytest.mark.parametrize(
    "field,value",
    [("embedding_dim", 0), ("temperature", 0.0), ("popularity_negative_share", 1.5), ("val_fraction", 1.0),
     ("negatives_per_positive", -1), ("lr", -1.0), ("user_hidden", (0,))],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        TwoTowerConfig(**{field: value})


def test_config_round_trips_through_json(tmp_path):
    cfg = TwoTowerConfig(user_hidden=(32, 16), epochs=2)
    cfg.save(tmp_path / "c.json")
    assert TwoTowerConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="unknown"):
        TwoTowerConfig.from_dict({"embeding_dim": 3})


def test_validation_recall_is_measured_on_a_bounded_seeded_sample_of_users():
    from vidrec.candidates.two_tower.train import _sample_users

    truth = pl.DataFrame({"user_id": [f"u{i % 50}" for i in range(200)], "video_id": [f"v{i}" for i in range(200)]})
    assert _sample_users(truth, 100, 0).equals(truth)  # small platforms: every carved user
    few = _sample_users(truth, 10, 0)
    assert few["user_id"].n_unique() == 10 and len(few) == 40  # each kept user keeps all its held-out rows
    assert few.equals(_sample_users(truth, 10, 0))
