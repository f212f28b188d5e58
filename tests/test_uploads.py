"""Recommender.add_videos / remove_videos: uploads served at once, removals gone from every stage."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.tiny_platform import SMALL_CONFIG, two_audiences
from vidrec.candidates.two_tower.export import video_embeddings
from vidrec.config import PipelineConfig
from vidrec.data.schema import TIMESTAMP
from vidrec.errors import DataError
from vidrec.recommender import Recommender

ALL = ["two_tower", "cowatch", "ease", "trending", "fresh", "creators", "demographic"]
EVEN = [f"u{i}" for i in range(0, 40, 2)]
ODD = [f"u{i}" for i in range(1, 40, 2)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    cfg = PipelineConfig.from_dict({**SMALL_CONFIG, "candidates": {**SMALL_CONFIG["candidates"], "generators": ALL}})
    root = tmp_path_factory.mktemp("uploads")
    Recommender.train(two_audiences(), cfg, log=lambda m: None).save(root)
    return root


@pytest.fixture()
def rec(model_dir):
    return Recommender.load(model_dir)


def upload(rec: Recommender, **overrides) -> pl.DataFrame:
    """A music video (what even users love) by a music creator, uploaded at the model's clock."""
    row = {"video_id": "new-music", "creator_id": "c0", "category": "music", "tags": [["even"]],
           "duration_seconds": 100.0, "uploaded_at": rec.now, "available": True} | overrides  # fmt: skip
    return pl.DataFrame({k: v if isinstance(v, list) else [v] for k, v in row.items()}).with_columns(
        pl.col("uploaded_at").cast(TIMESTAMP)
    )


def two_tower_candidates(rec: Recommender, users: list[str], k: int) -> pl.DataFrame:
    out = rec.recommend_batch(users, k=k, stage="candidates")
    return out.filter(pl.col("sources").list.contains("two_tower"))


def test_upload_enters_the_two_tower_candidates_of_the_users_who_love_it(rec):
    assert not rec.known_video("new-music")
    assert rec.add_videos(upload(rec)).is_empty()
    assert rec.known_video("new-music") and rec.videos["video_id"].to_list()[-1] == "new-music"
    out = two_tower_candidates(rec, EVEN + ODD, k=30)
    has = out.filter(pl.col("video_id") == "new-music")["user_id"]
    assert set(has.to_list()) >= set(EVEN[:5])
    mine = rec.pipeline.generators[0].generate(rec.user_state(EVEN), 9, rec.now)  # own-kind block: 8 unseen + 1
    assert (mine.group_by("user_id").agg(pl.col("video_id").is_in(["new-music"]).any())["video_id"]).mean() >= 0.9
    ranker_vec = rec.pipeline.ranker.embeddings.video_vectors(pl.Series(["new-music", "v0"]))
    _, own = video_embeddings(rec.pipeline.feature_model, rec.videos.filter(pl.col("video_id") == "new-music"))
    assert np.allclose(ranker_vec[0], own[0]) and np.abs(ranker_vec).sum(axis=1).min() > 0  # scored from content
    row = rec.catalogue.row("new-music")
    assert (rec.now_us - rec.catalogue.uploaded_us[row]) / 86_400e6 == pytest.approx(0.0, abs=1e-6)  # fresh now
    assert rec.live.video[row].sum() == 0  # counted from zero


def test_removed_video_never_comes_back_from_any_stage(rec):
    rec.add_videos(upload(rec))
    users = EVEN + ODD
    top = rec.recommend_batch(users, k=5)
    shown = top["video_id"].value_counts().sort("count", "video_id", descending=[True, False])["video_id"]
    gone = list(dict.fromkeys(["new-music", *shown.head(4).to_list()]))[:4]
    assert rec.remove_videos(gone) == 4 and rec.remove_videos(gone[:1]) == 0
    for stage in ("candidates", "scored", "final"):
        out = rec.recommend_batch(users, k=30, stage=stage)
        assert not out["video_id"].is_in(gone).any(), stage
    state = rec.user_state(users)
    for gen in rec.pipeline.generators:  # cowatch and demographic have no hook: the pipeline filters them
        if gen.name in ("two_tower", "trending", "fresh", "creators"):
            assert not gen.generate(state, 40, rec.now)["video_id"].is_in(gone).any(), gen.name
    with pytest.raises(DataError, match="no-such"):
        rec.remove_videos(["no-such"])


def test_invalid_rows_are_quarantined_with_row_and_field_and_valid_ones_kept(rec):
    batch = pl.concat(
        [
            upload(rec, video_id="ok-1"),
            upload(rec, video_id="bad-dur", duration_seconds=0.0),
            upload(rec, video_id="v0"),  # already in the catalogue
            upload(rec, video_id="ok-2", category="news", tags=[["odd"]]),
        ]
    )
    with pytest.raises(DataError, match=r"row 2, field 'duration_seconds'.*row 3, field 'video_id'"):
        rec.add_videos(batch, strict=True)
    assert not rec.known_video("ok-1")  # strict: nothing added
    bad = rec.add_videos(batch)
    assert bad.select("source_row", "field", "reason").rows() == [
        (2, "duration_seconds", "non_positive_duration"), (3, "video_id", "duplicate_key"),
    ]  # fmt: skip
    assert rec.known_video("ok-1") and rec.known_video("ok-2") and not rec.known_video("bad-dur")
    with pytest.raises(DataError, match="category"):
        rec.add_videos(upload(rec).drop("category"))


def test_save_and_load_keep_uploads_and_removals(rec, tmp_path):
    rec.add_videos(upload(rec))
    rec.add_videos(upload(rec, video_id="new-news", category="news", tags=[["odd"]], creator_id="c1"))
    rec.remove_videos(["new-news", "v2"])
    rec.save(tmp_path)
    back = Recommender.load(tmp_path)
    assert back.known_video("new-music") and back.now == rec.now
    assert back.videos.filter(pl.col("video_id").is_in(["new-news", "v2"]))["available"].to_list() == [False, False]
    before = two_tower_candidates(rec, EVEN + ODD, k=30).select("user_id", "video_id", "rank")
    after = two_tower_candidates(back, EVEN + ODD, k=30).select("user_id", "video_id", "rank")
    assert after.equals(before) and after["video_id"].is_in(["new-music"]).any()
    assert not back.recommend_batch(EVEN + ODD, k=30, stage="candidates")["video_id"].is_in(["new-news", "v2"]).any()


def test_upload_moves_the_clock_so_it_is_recommendable_at_once(rec):
    later = rec.now + timedelta(days=3)
    rec.add_videos(upload(rec, uploaded_at=later))
    assert rec.now > later
    assert "new-music" in two_tower_candidates(rec, EVEN, k=30)["video_id"].to_list()
