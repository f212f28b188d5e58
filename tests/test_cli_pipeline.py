"""train / recommend / evaluate from the command line on a tiny platform."""

from __future__ import annotations

import json

import polars as pl

from tests.tiny_platform import SMALL_CONFIG, two_audiences
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.cli import main
from vidrec.data.dataset import write_dataset


def test_train_recommend_evaluate(tmp_path, capsys) -> None:
    write_dataset(two_audiences(), tmp_path / "data")
    (tmp_path / "config.json").write_text(json.dumps(SMALL_CONFIG))
    assert main(["split", str(tmp_path / "data"), "--out", str(tmp_path / "split")]) == 0
    args = ["train", str(tmp_path / "split" / "train"), "--out", str(tmp_path / "model"),
            "--config", str(tmp_path / "config.json")]  # fmt: skip
    assert main(args) == 0
    version = (tmp_path / "model" / "LATEST").read_text().strip()
    printed = capsys.readouterr().out.strip().splitlines()
    last = printed[-1]
    assert last.startswith("train: trained on ") and f"wrote {tmp_path / 'model' / version}" in last
    assert any(line.startswith("peak memory after each stage (GiB): data ") for line in printed)
    peaks = json.loads((tmp_path / "model" / version / "memory.json").read_text())["peak_gib_after"]
    assert list(peaks)[-3:] == ["scoring.ranker", "reranking.budget", "serving_state"]
    assert 0 < peaks["data"] and list(peaks.values()) == sorted(peaks.values())  # a running peak only grows
    resolved = json.loads((tmp_path / "model" / version / "config.json").read_text())
    assert resolved["two_tower"]["embedding_dim"] == 16  # the resolved config is saved
    (tmp_path / "users.txt").write_text("u0\nu1\n\nnew-user\n")
    for stage in ("candidates", "scored", "final"):
        out = tmp_path / f"{stage}.parquet"
        args = ["recommend", str(tmp_path / "model"), "--users", str(tmp_path / "users.txt"),
                "--k", "5", "--stage", stage, "--out", str(out)]  # fmt: skip
        assert main(args) == 0
        recs = pl.read_parquet(out)
        assert recs.columns[:5] == ["user_id", "rank", "video_id", "score", "source"]
        assert sorted(recs["user_id"].unique()) == ["new-user", "u0", "u1"]
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert last.startswith(f"recommend: wrote {recs.height} recommendations ({stage} stage) for 3 users to {out}")
    assert main(["evaluate", str(tmp_path / "model"), "--split", str(tmp_path / "split")]) == 0
    printed = capsys.readouterr().out
    for name in ("most-popular", "EASE", "iALS", "vidrec candidates", "vidrec final"):
        assert name in printed
    assert printed.strip().splitlines()[-1].startswith("evaluate: judged 6 models on ")
    results = json.loads((tmp_path / "model" / version / "evaluation.json").read_text())["results"]
    assert {r["model"] for r in results} >= {"EASE", "vidrec final"}


def test_readable_errors(tmp_path, capsys) -> None:
    assert main(["recommend", str(tmp_path), "--users", "x", "--out", "y"]) == 2
    assert "no trained model here" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("[two_tower]\nembedding_dim = -3\n")
    write_dataset(two_audiences(n_users=4), tmp_path / "d")
    assert main(["train", str(tmp_path / "d"), "--out", str(tmp_path / "m"), "--config", str(tmp_path / "bad.toml")]) == 2
    assert "embedding_dim" in capsys.readouterr().err


def test_train_two_tower_alone(tmp_path, capsys) -> None:
    write_dataset(two_audiences(), tmp_path / "data")
    args = ["train-two-tower", str(tmp_path / "data"), "--out", str(tmp_path / "tt"),
            "--set", "embedding_dim=8", "user_hash_buckets=64", "epochs=2", "threads=1", "eval_k=5"]  # fmt: skip
    assert main(args) == 0
    model = TwoTowerModel.load(tmp_path / "tt")  # loadable, with the overrides resolved into its config
    assert model.config.embedding_dim == 8 and model.config.epochs == 2
    assert main(["train-two-tower", str(tmp_path / "data"), "--out", str(tmp_path / "x"), "--set", "epochs=-1"]) == 2
    assert "epochs" in capsys.readouterr().err
