"""The Python API as a user meets it: ``from vidrec import Recommender``, train from a path,
``observe`` refusing what ingestion refuses."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import polars as pl
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec import DataError, Recommender, __version__
from vidrec.data.dataset import write_dataset
from vidrec.errors import VidrecError


def test_import_vidrec_is_light_and_names_the_api() -> None:
    code = "import sys, vidrec; assert 'torch' not in sys.modules; print(vidrec.Recommender.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "vidrec.recommender"
    version = subprocess.run([sys.executable, "-m", "vidrec", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"vidrec {__version__}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Trained from a data directory holding one invalid event."""
    ds = two_audiences()
    bad = ds.events.head(1).with_columns(event=pl.lit("wtach"))
    root = write_dataset(type(ds)(pl.concat([ds.events, bad]), ds.videos, ds.users), tmp_path_factory.mktemp("d"))
    with pytest.warns(UserWarning, match="1 invalid rows set aside"):
        rec = Recommender.train(root, small_config(), log=lambda m: None)
    yield rec, ds
    rec.close()


def test_train_takes_a_data_directory_and_sets_invalid_rows_aside(trained) -> None:
    rec, ds = trained
    assert rec.training_events is not None and rec.training_events.height == ds.events.height
    assert len(rec.recommend("u1", k=5)) == 5


def test_a_model_trained_without_a_store_saves_the_same_model(trained, tmp_path) -> None:
    rec, ds = trained
    quiet = Recommender.train(ds, small_config(), log=lambda m: None, serve=False)
    assert quiet.store is None and quiet.now == rec.now
    with pytest.raises(VidrecError, match="no online store"):
        quiet.recommend("u1", k=5)
    a, b = Recommender.load(rec.save(tmp_path / "a")), Recommender.load(quiet.save(tmp_path / "b"))
    assert all(a.recommend(u, k=5).equals(b.recommend(u, k=5)) for u in ("u1", "u7"))
    a.close(), b.close()


def test_train_on_a_directory_without_valid_events_is_one_data_error(tmp_path) -> None:
    ds = two_audiences()
    root = write_dataset(type(ds)(ds.events.with_columns(event=pl.lit("wtach")), ds.videos, ds.users), tmp_path)
    with pytest.raises(DataError, match="no valid events to train on"):
        Recommender.train(root, small_config(), log=lambda m: None)


@pytest.mark.parametrize(
    ("event", "seconds", "field", "reason"),
    [("wtach", None, "event", "unknown_event"), ("watch", -3.0, "watch_seconds", "invalid_watch_seconds"),
     ("watch", 1e308, "watch_seconds", "invalid_watch_seconds"), ("like", 5.0, "watch_seconds",
     "unexpected_watch_seconds")],
)  # fmt: skip
def test_observe_refuses_what_ingestion_refuses_and_stores_nothing(trained, event, seconds, field, reason) -> None:
    rec, _ = trained
    before = rec.log.last() if rec.log is not None else None
    good = {"user_id": "u1", "video_id": "v1", "ts": datetime(2025, 6, 1, tzinfo=UTC), "event": "like",
            "watch_seconds": None}  # fmt: skip
    bad = {**good, "event": event, "watch_seconds": seconds}
    frame = pl.DataFrame([good, bad], schema_overrides={"watch_seconds": pl.Float64})
    with pytest.raises(DataError) as caught:
        rec.observe(frame)
    assert f"row 2, field {field!r}" in caught.value.message and reason in caught.value.message
    assert "none was taken" in caught.value.message
    assert (rec.log.last() if rec.log is not None else None) == before


def test_unknown_users_are_flagged_and_warned_about(trained, caplog) -> None:
    rec, _ = trained
    with caplog.at_level("WARNING", logger="vidrec.recommender"):
        out = rec.recommend_batch(["u1", "no-such-user"], k=3)
    flags = dict(out.group_by("user_id").agg(pl.col("known_user").first()).rows())
    assert flags == {"u1": True, "no-such-user": False}
    assert "1 of 2 users are unknown" in caplog.text and "'no-such-user'" in caplog.text


@pytest.mark.parametrize("stage", ["candidates", "scored", "final"])
def test_a_batch_gives_each_user_what_they_get_alone(trained, stage) -> None:
    rec, _ = trained
    users = [f"u{i}" for i in range(0, 40, 3)] + ["cold-1"]
    cols = ["user_id", "rank", "video_id", "score"]
    together = rec.recommend_batch(users, k=6, stage=stage).select(cols)
    alone = pl.concat([rec.recommend(u, k=6, stage=stage).select(cols) for u in users])
    assert together.drop("score").equals(alone.drop("score"))  # the same videos in the same order
    assert (together["score"] - alone["score"]).abs().max() < 1e-5  # float32 products batched differently
