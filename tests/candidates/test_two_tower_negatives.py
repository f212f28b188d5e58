import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.candidates.conftest import cluster_of
from vidrec.candidates.two_tower import (
    TwoTowerConfig,
    TwoTowerModel,
    Vocabulary,
    fit_two_tower,
    user_embeddings,
    video_embeddings,
)
from vidrec.candidates.two_tower.data import build_examples, interacted_block, is_interacted, user_offsets
from vidrec.candidates.two_tower.hard_negatives import HardNegativeMiner, latest_rows
from vidrec.candidates.two_tower.tasks import SoftmaxTask
from vidrec.features import build_user_state

torch.set_num_threads(1)
FAST = dict(embedding_dim=16, user_hidden=(32,), video_hidden=(32,), user_hash_buckets=512,
            batch_size=64, epochs=12, lr=1e-2, val_fraction=0.0, seed=3, threads=1)


@pytest.fixture(scope="module")
def setup(clustered):
    ds, _ = clustered
    cfg = TwoTowerConfig(**FAST)
    vocab = Vocabulary.from_videos(ds.videos)
    ex = build_examples(ds.events, ds.videos, vocab, cfg.history_len, cfg.user_hash_buckets, cfg.user_hash_functions)
    torch.manual_seed(0)
    model = TwoTowerModel(cfg, vocab)
    model.set_catalogue(vocab.encode_videos(ds.videos))
    return ds, cfg, vocab, ex, model


def test_latest_rows_picks_each_users_last_example():
    assert latest_rows(np.array([0, 0, 0, 1, 2, 2])).tolist() == [2, 3, 5]


def test_miner_pool_is_the_brute_force_top_of_non_interacted_videos(setup):
    ds, cfg, vocab, ex, model = setup
    n = len(vocab.videos)
    miner = HardNegativeMiner(ex, n, pool=5, rng=np.random.default_rng(0))
    model.train()
    miner.refresh(model, chunk=7)  # chunks smaller than the user count
    assert model.training and miner.refreshes == 1
    with torch.no_grad():
        model.eval()
        rows = latest_rows(ex.user)
        u = model.user_tower(ex.user_buckets[rows], ex.history[rows]).numpy()
        v = model.catalogue_tower(torch.arange(1, n + 1)).numpy()
    scores = u @ v.T  # oracle: numpy brute force
    users = np.arange(len(rows))
    seen = is_interacted(ex.interacted_keys, n, users[:, None], np.arange(1, n + 1)[None, :])
    want = np.argsort(-np.where(seen, -np.inf, scores), axis=1, kind="stable")[:, :5] + 1
    assert np.array_equal(np.sort(miner.pool, axis=1), np.sort(want, axis=1))
    assert not is_interacted(ex.interacted_keys, n, users[:, None], miner.pool).any()
    neg, valid = miner.sample(ex.user, 3)
    assert neg.shape == (len(ex), 3) and valid.all()
    assert all(set(neg[i]) <= set(miner.pool[ex.user[i]]) for i in range(0, len(ex), 37))


def test_softmax_task_masks_interacted_uniform_samples_and_corrects_by_popularity(setup):
    ds, cfg, vocab, ex, model = setup
    n = len(vocab.videos)
    cfg = TwoTowerConfig(**{**FAST, "objective": "sampled_softmax", "logq_correction": "counts",
                            "uniform_negatives": 8})
    task = SoftmaxTask(cfg, ex, n, np.random.default_rng(0))
    counts = np.bincount(ex.video.numpy(), minlength=n + 1)
    popular, rare = int(np.argmax(counts)), int(np.argmin(np.where(counts[1:] > 0, counts[1:], 10**9))) + 1
    lq = task.log_q(torch.tensor([popular, rare]))
    assert lq[0] > lq[1]  # the popular video is subtracted more: the correction's sign
    expected = np.log(counts[popular] * cfg.batch_size / len(ex) + 8 / n)
    assert lq[0].item() == pytest.approx(expected, rel=1e-5)
    user = torch.tensor([ex.user[0], ex.user[0]])
    own = ex.video[:2]
    uniform = torch.cat([own, torch.tensor([own[0].item()])])
    mask = task._uniform_mask(own, user, uniform).numpy()
    assert mask.all()  # every one of them was interacted by the user
    loss, terms = task.loss(model, {"user": torch.tensor(ex.user[:6]), "user_buckets": ex.user_buckets[:6],
                                    "history": ex.history[:6], "video": ex.video[:6]})
    assert torch.isfinite(loss) and terms == 6.0


@pytest.mark.parametrize(
    "extra",
    [
        dict(objective="sampled_softmax"),
        dict(objective="sampled_softmax", logq_correction="counts", uniform_negatives=16, hard_negatives=2),
        dict(objective="binary", hard_negatives=2),
    ],
)
def test_objectives_learn_the_clusters(clustered, extra):
    ds, _ = clustered
    model, report = fit_two_tower(ds.events, ds.videos, TwoTowerConfig(**FAST, **extra), log=lambda _: None)
    state = build_user_state(ds.events, ds.videos)
    ids, vecs = video_embeddings(model, ds.videos)
    top = np.argsort(-(user_embeddings(model, state) @ vecs.T), axis=1)[:, :10]
    assert (cluster_of(ids)[top] == cluster_of(state["user_id"])[:, None]).mean() >= 0.9
    assert report.epochs[-1]["loss"] < report.epochs[0]["loss"]


def test_hard_negatives_are_re_mined_every_n_steps(clustered, monkeypatch):
    ds, _ = clustered
    calls: list[int] = []
    original = HardNegativeMiner.refresh
    monkeypatch.setattr(HardNegativeMiner, "refresh", lambda self, m, **kw: calls.append(1) or original(self, m, **kw))
    cfg = dict(FAST, epochs=3, hard_negatives=1, hard_negative_warmup_epochs=1)
    fit_two_tower(ds.events, ds.videos, TwoTowerConfig(**cfg), log=lambda _: None)
    assert len(calls) == 2  # once per epoch after the one warm-up epoch
    calls.clear()
    fit_two_tower(ds.events, ds.videos, TwoTowerConfig(**{**cfg, "hard_negative_refresh_steps": 2}),
                  log=lambda _: None)
    steps_per_epoch = -(-len(ds.events) // FAST["batch_size"])  # every event is a distinct positive
    assert len(calls) == pytest.approx(2 * steps_per_epoch / 2, abs=1)


@pytest.mark.parametrize(
    "bad",
    [
        dict(objective="softmax"),
        dict(logq_correction="sign-flipped"),
        dict(logq_ema=0.0),
        dict(uniform_negatives=-1),
        dict(hard_negatives=3, hard_negative_pool=2),
        dict(objective="binary", hard_negatives=2, negatives_per_positive=0),  # never alone
    ],
)
def test_config_rejects_bad_objective_settings(bad):
    with pytest.raises(ValueError):
        TwoTowerConfig(**bad)


def test_config_round_trips_the_new_fields():
    cfg = TwoTowerConfig(objective="sampled_softmax", uniform_negatives=32, hard_negatives=1)
    assert TwoTowerConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 12), st.integers(1, 9)), max_size=60),
    users=st.lists(st.integers(0, 15), min_size=1, max_size=8),
    videos=st.lists(st.integers(1, 9), min_size=1, max_size=12),
)
def test_interacted_block_is_the_outer_lookup(pairs, users, videos) -> None:
    n = 9
    keys = np.unique(np.array([u * (n + 1) + v for u, v in pairs], dtype=np.int64))
    u, v = np.array(users), np.array(videos)  # users past the last with pairs, repeated videos
    want = is_interacted(keys, n, u[:, None], v[None, :])
    assert np.array_equal(interacted_block(keys, user_offsets(keys, n), n, u, v), want)
