"""Scale-out training: the sharding and validation helpers against oracles, and a real
2-process gloo run under torchrun whose ranks must end bit-identical and whose saved model
must match a 1-process run's quality on the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.candidates.conftest import make_clustered
from vidrec.candidates.two_tower import TwoTowerConfig, TwoTowerModel, fit_two_tower
from vidrec.candidates.two_tower.data import Vocabulary, build_examples, iterate_batches
from vidrec.candidates.two_tower.distributed import (
    REPORT_FILE,
    fit_distributed,
    main,
    parameter_checksum,
    shard_rows,
    shard_users,
)
from vidrec.candidates.two_tower.tasks import make_task
from vidrec.candidates.two_tower.train import (
    Parallel,
    carve_validation,
    recall_at_k,
    validation_state,
)
from vidrec.data.dataset import write_dataset

REPO = Path(__file__).resolve().parents[2]
# Small enough that 2 processes train in a few seconds; refit off so the saved model is the
# early-stopping epoch's and its validation recall can be recomputed exactly.
SETTINGS = dict(
    epochs=8, batch_size=64, user_hash_buckets=1024, eval_k=10, refit_full=False,
    uniform_negatives=32, threads=1, seed=3,
)


@pytest.fixture(scope="module")
def data():
    ds, _ = make_clustered(n_users=120, n_videos=80, per_user=15, seed=1)
    return ds


def quiet(_: str) -> None:
    pass


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 50), world=st.integers(1, 4))
def test_rank_shards_partition_the_batch(n: int, world: int) -> None:
    batch = {"video": torch.arange(n), "history": torch.arange(2 * n).reshape(n, 2)}
    parts = [shard_rows(batch, r, world) for r in range(world)]
    got = torch.cat([p["video"] for p in parts]).sort().values
    assert torch.equal(got, batch["video"])  # disjoint and complete
    assert max(len(p["video"]) for p in parts) - min(len(p["video"]) for p in parts) <= 1
    for p in parts:  # rows stay aligned across tensors
        assert torch.equal(p["history"][:, 0], 2 * p["video"])


def test_sharded_validation_recall_equals_whole(data) -> None:
    """The oracle: user-weighted recall over 3 shards is recall_at_k over all users."""
    config = TwoTowerConfig(**{**SETTINGS, "epochs": 1, "val_fraction": 0.0})
    model, _ = fit_two_tower(data.events, data.videos, config, quiet)
    fit, truth = carve_validation(data.events, 0.2, 5)
    state = validation_state(fit, data.videos, truth, config.history_len)
    whole = recall_at_k(model, state, truth, 10)
    total, users = 0.0, 0
    for rank in range(3):
        mine, mine_truth = shard_users(state, truth, rank, 3)
        total += recall_at_k(model, mine, mine_truth, 10) * mine.height
        users += mine.height
    assert users == state.height
    assert total / users == pytest.approx(whole, abs=1e-12)
    empty, empty_truth = shard_users(state.head(2), truth, 2, 3)  # more ranks than users
    assert empty.height == 0 and empty_truth.height == 0


@pytest.mark.parametrize("objective", ["sampled_softmax", "binary"])
def test_every_parameter_takes_part_in_a_step(data, objective: str) -> None:
    """DDP (find_unused_parameters=False) relies on it: a parameter left out of a step's graph
    would stall the gradient all-reduce."""
    config = TwoTowerConfig(**{**SETTINGS, "objective": objective})
    vocab = Vocabulary.from_videos(data.videos)
    model = TwoTowerModel(config, vocab)
    model.set_catalogue(vocab.encode_videos(data.videos))
    ex = build_examples(data.events, data.videos, vocab, config.history_len, 1024, 2)
    rng = np.random.default_rng(0)
    task = make_task(config, ex, len(vocab.videos), rng)
    neg = rng.integers(1, len(vocab.videos) + 1, size=(len(ex), 4))
    batch = next(iterate_batches(ex, neg, np.ones_like(neg, dtype=bool), 64, rng))
    loss, _ = task.loss(model, batch)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_single_process_hooks_change_nothing(data) -> None:
    config = TwoTowerConfig(**{**SETTINGS, "epochs": 2})
    plain, report = fit_two_tower(data.events, data.videos, config, quiet)
    hooked, report_h = fit_two_tower(data.events, data.videos, config, quiet, Parallel())
    assert parameter_checksum(plain) == parameter_checksum(hooked)
    assert report.epochs[-1]["val_recall"] == report_h.epochs[-1]["val_recall"]
    assert report.epochs[-1]["loss"] == report_h.epochs[-1]["loss"]


def test_bad_override_is_a_user_error(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "m"), "--set", "epochz=3"]) == 2
    assert "unknown fields ['epochz']" in capsys.readouterr().err


def _torchrun(data_dir: Path, out: Path, nproc: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    overrides = [f"{k}={json.dumps(v)}" for k, v in SETTINGS.items()]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "vidrec.candidates.two_tower.distributed", "--data", str(data_dir), "--out", str(out),
        "--set", *overrides,
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_agree_and_match_one(data, tmp_path: Path) -> None:
    """2 gloo ranks under torchrun: identical parameters on both ranks, a loadable model equal
    to theirs, and validation recall within 0.1 of a 1-process run on the same data.

    Why 0.1 and not equality: with 2 ranks each step averages two per-rank batches (global
    batch 2 x 64, half the steps per epoch) and each positive meets only its own rank's
    in-batch negatives, so the runs take different paths. On this data recall@10 is capped
    near 0.4 (10 of the ~25 unseen videos of the user's own cluster) and chance is ~0.15;
    0.1 separates "learned the clusters" from "did not" while allowing path noise.
    """
    write_dataset(data, tmp_path / "data")
    _torchrun(tmp_path / "data", tmp_path / "ddp", nproc=2)
    report = json.loads((tmp_path / "ddp" / REPORT_FILE).read_text())
    assert report["world_size"] == 2
    first, second = report["parameter_checksums"]
    assert first == second

    model = TwoTowerModel.load(tmp_path / "ddp")
    assert parameter_checksum(model) == first  # the saved model is the ranks' model
    config = TwoTowerConfig(**SETTINGS)
    single, _, checksums = fit_distributed(data.events, data.videos, config, quiet, users=data.users)
    assert checksums == [parameter_checksum(single)]
    # Both models scored by the same function on the same validation carve they stopped on.
    fit, truth = carve_validation(data.events, config.val_fraction, config.val_min_interactions)
    state = validation_state(fit, data.videos, truth, config.history_len)
    recall_1 = recall_at_k(single, state, truth, config.eval_k)
    recall_2 = recall_at_k(model, state, truth, config.eval_k)
    assert min(recall_1, recall_2) >= 0.3
    assert abs(recall_2 - recall_1) <= 0.1


def test_processes_setting_trains_under_torchrun_from_one_call(data, tmp_path: Path) -> None:
    """``processes = 2`` runs the 2 ranks itself (what ``vidrec train`` does with that setting):
    the model comes back with its report, and a rerun with the checkpoints resumes to it."""
    config = TwoTowerConfig(**SETTINGS, processes=2)
    lines: list[str] = []
    model, report = fit_two_tower(data.events, data.videos, config, lines.append, checkpoints=tmp_path / "ck")
    assert report.best_epoch >= 1 and any(line.startswith("epoch") for line in lines)
    assert list((tmp_path / "ck").glob("*.rank1.pt"))  # each rank kept its own checkpoint
    again, _ = fit_two_tower(data.events, data.videos, config, quiet, checkpoints=tmp_path / "ck")
    assert parameter_checksum(again) == parameter_checksum(model)
    fit, truth = carve_validation(data.events, config.val_fraction, config.val_min_interactions)
    state = validation_state(fit, data.videos, truth, config.history_len)
    single, _ = fit_two_tower(data.events, data.videos, TwoTowerConfig(**SETTINGS), quiet)
    assert recall_at_k(model, state, truth, config.eval_k) > recall_at_k(single, state, truth, config.eval_k) - 0.1
