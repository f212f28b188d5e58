"""The command line: readable errors, exit codes, and the data commands end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from vidrec.cli import main
from vidrec.data.dataset import Dataset, write_dataset
from vidrec.errors import DataError
from vidrec.recommender import Recommender

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def tiny_dataset(bad_rows: int = 0) -> Dataset:
    n = 30
    videos = pl.DataFrame(
        {
            "video_id": ["v0", "v1", "v2"],
            "creator_id": ["c0", "c1", "c1"],
            "category": ["music", "news", "news"],
            "tags": [["a"], [], ["b"]],
            "duration_seconds": [100.0, 200.0, 300.0],
            "uploaded_at": [T0, T0, T0],
            "available": [True, True, True],
        }
    )
    users = pl.DataFrame({"user_id": ["u0", "u1"]})
    events = pl.DataFrame(
        {
            "user_id": [f"u{i % 2}" for i in range(n)],
            "video_id": [f"v{i % 3}" for i in range(n)],
            "ts": [T0 + timedelta(hours=i + 1) for i in range(n)],
            "event": ["watch"] * n,
            "watch_seconds": [50.0] * (n - bad_rows) + [-1.0] * bad_rows,
        }
    )
    return Dataset(events, videos, users)


def test_ingest_canonical_quarantines_and_split(tmp_path, capsys) -> None:
    write_dataset(tiny_dataset(bad_rows=2), tmp_path / "raw")
    assert main(["ingest", "canonical", str(tmp_path / "raw"), "--out", str(tmp_path / "clean")]) == 0
    out = capsys.readouterr().out
    assert "invalid_watch_seconds" in out
    q = pl.read_parquet(tmp_path / "clean" / "quarantine.parquet")
    assert q["source_row"].to_list() == [29, 30]
    assert main(["split", str(tmp_path / "clean"), "--out", str(tmp_path / "split")]) == 0
    assert (tmp_path / "split" / "train" / "events.parquet").exists()
    assert main(["stats", str(tmp_path / "clean")]) == 0


def test_strict_fails_readably(tmp_path, capsys) -> None:
    write_dataset(tiny_dataset(bad_rows=1), tmp_path / "raw")
    code = main(["ingest", "canonical", str(tmp_path / "raw"), "--out", str(tmp_path / "c"), "--strict"])
    err = capsys.readouterr().err
    assert code == 2
    assert "row 30, field 'watch_seconds', value '-1.0'" in err
    assert "what to do" in err and "Traceback" not in err


def test_missing_and_unreadable_files_are_one_message(tmp_path, capsys) -> None:
    assert main(["split", str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "events.parquet").write_text("user,video\nu,v\n")
    write_dataset(tiny_dataset(), tmp_path / "ok")
    for name in ("videos", "users"):
        (tmp_path / "d" / f"{name}.parquet").write_bytes((tmp_path / "ok" / f"{name}.parquet").read_bytes())
    assert main(["ingest", "canonical", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "cannot be read as Parquet" in err and "events.parquet" in err


def test_split_refuses_invalid_data(tmp_path, capsys) -> None:
    write_dataset(tiny_dataset(bad_rows=1), tmp_path / "raw")
    assert main(["split", str(tmp_path / "raw"), "--out", str(tmp_path / "s")]) == 2
    assert "vidrec ingest canonical" in capsys.readouterr().err


def test_train_without_a_valid_event_says_why(tmp_path, capsys) -> None:
    write_dataset(tiny_dataset(bad_rows=30), tmp_path / "raw")
    assert main(["train", str(tmp_path / "raw"), "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert "no valid events to train on" in err and "invalid_watch_seconds" in err and "row 1," in err
    assert "Traceback" not in err and not (tmp_path / "model").exists()


def test_training_on_no_events_is_a_data_error() -> None:
    data = tiny_dataset()
    with pytest.raises(DataError, match="no events to train on"):
        Recommender.train(Dataset(data.events.clear(), data.videos, data.users))


def test_out_into_a_missing_folder_is_made_and_a_bad_one_refused_before_work(tmp_path, capsys) -> None:
    from vidrec.cli import main

    (tmp_path / "afile").write_text("")
    code = main(["simulate", "--out", str(tmp_path / "afile" / "data"), "--users", "10"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the folder" in err and "Traceback" not in err
    out = tmp_path / "deep" / "er" / "sim"
    assert main(["simulate", "--out", str(out), "--users", "10", "--videos", "20", "--days", "2"]) == 0
    assert (out / "events.parquet").exists()
