"""MovieLens adapter: the real ML-100K end to end, exact answers on ML-1M / ML-latest fixtures."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidrec.data.adapters import load_source
from vidrec.data.adapters.base import PARSE_ERROR, SOURCE_ROW
from vidrec.data.adapters.movielens import NOMINAL_DURATION_SECONDS, load, ratings_to_events
from vidrec.data.schema import EVENTS_REQUIRED, USERS_OPTIONAL, VIDEOS_REQUIRED
from vidrec.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
ML100K = Path(os.environ.get("VIDREC_ML100K", ROOT.parent / "shared" / "data" / "ml-100k"))
FIXTURES = ROOT / "tests" / "fixtures" / "movielens"
UTC = UTC


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- the real ML-100K ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml100k():
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"ML-100K not found at {ML100K}")
    return load(ML100K)


@pytest.fixture(scope="module")
def raw_ratings() -> pl.DataFrame:
    """An independent reading of u.data, the oracle for the counts."""
    return pl.read_csv(
        ML100K / "u.data", separator="\t", has_header=False, new_columns=["user", "item", "rating", "ts"]
    )


def test_ml100k_sizes(ml100k, raw_ratings):
    events = ml100k.events
    assert events.filter(pl.col("event") == "watch").height == 100_000
    assert ml100k.users.height == 943 and ml100k.users["user_id"].n_unique() == 943
    assert ml100k.videos.height == 1_682 and ml100k.videos["video_id"].n_unique() == 1_682
    assert events.filter(pl.col("event") == "dislike").height == raw_ratings.filter(pl.col("rating") <= 2).height
    assert events.filter(pl.col("event") == "like").height == raw_ratings.filter(pl.col("rating") == 5).height
    assert events.filter(pl.col("event") == "dislike").height == 17_480
    assert events.filter(pl.col("event") == "like").height == 21_201
    assert all(PARSE_ERROR not in t.columns for t in (events, ml100k.videos, ml100k.users))  # all clean
    watches = events.filter(pl.col("event") == "watch")
    assert watches[SOURCE_ROW].to_list() == list(range(1, 100_001))


def test_ml100k_rating_distribution_matches_data_facts(ml100k):
    watches = ml100k.events.filter(pl.col("event") == "watch")
    shares = watches.group_by("rating").len().sort("rating")["len"] / watches.height * 100
    assert [round(s, 1) for s in shares.to_list()] == [6.1, 11.4, 27.1, 34.2, 21.2]


def test_ml100k_no_event_before_upload(ml100k):
    joined = ml100k.events.join(ml100k.videos.select("video_id", "uploaded_at"), on="video_id")
    assert joined.height == ml100k.events.height
    assert joined.filter(pl.col("ts") < pl.col("uploaded_at")).height == 0


def test_ml100k_notes_count_the_quirks(ml100k):
    notes = "\n".join(ml100k.notes)
    assert "231 ratings on 24 movies dated before the release date" in notes
    assert "1 movie without a release date" in notes
    # old films keep their real release dates (validation accepts uploads from 1900 on)
    assert ml100k.videos.filter(pl.col("uploaded_at") < datetime(1970, 1, 1, tzinfo=UTC)).height == 173
    assert ml100k.videos["uploaded_at"].min() == datetime(1922, 1, 1, tzinfo=UTC)
    no_date = ml100k.videos.filter(pl.col("video_id") == "267").row(0, named=True)
    first = ml100k.events.filter(pl.col("video_id") == "267")["ts"].min()
    assert no_date["uploaded_at"] == first and no_date["category"] == "unknown"


def test_ml100k_canonical_types_and_mapping(ml100k):
    for table, spec in ((ml100k.events, EVENTS_REQUIRED), (ml100k.videos, VIDEOS_REQUIRED)):
        assert {c: table.schema[c] for c in spec} == spec
    assert ml100k.users.schema["signed_up_at"] == USERS_OPTIONAL["signed_up_at"]
    toy = ml100k.videos.filter(pl.col("video_id") == "1").row(0, named=True)
    assert toy["title"] == "Toy Story (1995)"
    assert toy["tags"] == ["Animation", "Children's", "Comedy"]
    assert toy["category"] == "Animation" and toy["creator_id"] == "ml-creator-" + toy["video_id"]
    assert toy["uploaded_at"] == datetime(1995, 1, 1, tzinfo=UTC)
    assert set(ml100k.videos["duration_seconds"].unique()) == {NOMINAL_DURATION_SECONDS}
    assert ml100k.videos["available"].all()
    user1 = ml100k.users.filter(pl.col("user_id") == "1").row(0, named=True)
    assert (user1["age_bucket"], user1["gender"], user1["occupation"], user1["zip"]) == (
        "18-24", "M", "technician", "85711",
    )
    assert "country" not in ml100k.users.columns
    first = ml100k.events.group_by("user_id").agg(pl.col("ts").min())
    joined = ml100k.users.join(first, on="user_id")
    assert (joined["signed_up_at"] == joined["ts"]).all()


def test_ml100k_passes_validation_whole(ml100k):
    """The contract with validation: every one of the 100,000 ratings is kept."""
    from vidrec.data.validation import ValidationConfig, validate

    config = ValidationConfig(now=datetime(2030, 1, 1, tzinfo=UTC))
    result = validate(ml100k.events, ml100k.videos, ml100k.users, sources=ml100k.sources, config=config)
    assert result.quarantine.height == 0
    assert result.dataset.events.filter(pl.col("event") == "watch").height == 100_000


# --- exact answers on small fixtures ----------------------------------------------------


def test_ml1m_fixture_exact():
    tables = load_source("movielens", FIXTURES / "ml-1m")
    ev = tables.events
    got = list(zip(ev[SOURCE_ROW], ev["event"], ev["watch_seconds"], ev["rating"]))
    assert got == [
        (1, "watch", 6000.0, 5.0), (1, "like", None, 5.0), (2, "watch", 3600.0, 3.0),
        (3, "watch", 6000.0, 4.0), (4, "watch", 6000.0, 4.0), (5, "watch", 1800.0, 2.0),
        (5, "dislike", None, 2.0), (6, "watch", 1800.0, 1.0), (6, "dislike", None, 1.0),
        (7, "watch", 6000.0, 5.0), (7, "like", None, 5.0), (8, "watch", 3600.0, 3.0),
        (9, "watch", None, None), (10, "watch", 6000.0, 4.0), (11, "watch", 1800.0, 2.0),
        (11, "dislike", None, 2.0), (12, "watch", 6000.0, 5.0), (12, "like", None, 5.0),
        (13, "watch", 1800.0, 1.0), (13, "dislike", None, 1.0),
    ]  # fmt: skip
    bad = ev.filter(pl.col(SOURCE_ROW) == 9).row(0, named=True)
    assert bad["user_id"] is None and bad["ts"] is None
    assert bad[PARSE_ERROR] == "expected 4 fields separated by '::', found 3: '5::1::4'"
    assert ev.row(0, named=True)["ts"] == utc(978300760)

    videos = {r["video_id"]: r for r in tables.videos.iter_rows(named=True)}
    assert list(videos) == ["1", "2", "3", "4", "5", "6", "9"]
    assert videos["4"]["title"] == "Misérables, Les (1995)"  # latin-1
    assert videos["4"]["tags"] == ["Drama", "Musical"] and videos["4"]["category"] == "Drama"
    assert videos["1"]["uploaded_at"] == datetime(1995, 1, 1, tzinfo=UTC)
    assert videos["6"]["uploaded_at"] == utc(978302000)  # rated in 2000, title says 2003
    assert videos["9"]["title"] is None and videos["9"]["category"] == "unknown"
    assert videos["9"]["uploaded_at"] == utc(978309000) and videos["9"][SOURCE_ROW] is None

    users = {r["user_id"]: r for r in tables.users.iter_rows(named=True)}
    assert {u: (r["age_bucket"], r["occupation"]) for u, r in users.items()} == {
        "1": ("<18", "K-12 student"), "2": ("55+", "self-employed"), "3": ("25-34", "scientist"),
        "4": ("45-54", "executive/managerial"), "5": (None, None),
    }  # fmt: skip
    assert users["4"]["zip"] == "02460" and users["5"]["signed_up_at"] == utc(978310000)
    notes = "\n".join(tables.notes)
    assert "1 rating on 1 movie dated before the release date" in notes
    assert "1 rated movie missing from the movie file" in notes
    assert "1 rating user missing from the users file" in notes
    assert tables.sources["users"].endswith("users.dat")


def test_ml_latest_fixture_exact():
    tables = load(FIXTURES / "ml-latest")
    ev = tables.events
    watches = ev.filter(pl.col("event") == "watch")
    assert list(zip(watches["rating"], watches["watch_seconds"])) == [
        (4.0, 6000.0), (4.5, 6000.0), (0.5, 1800.0), (3.5, 3600.0), (5.0, 6000.0), (2.5, 1800.0),
        (3.0, 3600.0), (1.5, 1800.0), (5.0, 6000.0), (2.0, 1800.0), (None, None), (4.0, 6000.0),
    ]  # fmt: skip
    assert ev.filter(pl.col("event") == "dislike")[SOURCE_ROW].to_list() == [3, 6, 8, 10]
    assert ev.filter(pl.col("event") == "like")[SOURCE_ROW].to_list() == [5, 9]
    bad = watches.filter(pl.col(SOURCE_ROW) == 11).row(0, named=True)
    assert bad[PARSE_ERROR] == "rating: cannot read 'abc'" and bad["ts"] == utc(1700000100)

    videos = {r["video_id"]: r for r in tables.videos.iter_rows(named=True)}
    assert videos["11"]["title"] == "American President, The (1995)"
    assert videos["200"]["tags"] == [] and videos["200"]["creator_id"] == "ml-creator-200"
    assert videos["200"]["uploaded_at"] == utc(1445715000)
    assert videos["318"]["uploaded_at"] == datetime(1994, 1, 1, tzinfo=UTC)
    assert videos["1"]["tags"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]

    users = tables.users
    assert users["user_id"].to_list() == ["1", "2", "3", "4"]
    assert users["signed_up_at"].to_list() == [utc(964981247), utc(1445714835), utc(1306463578), utc(1700000000)]
    assert users[SOURCE_ROW].to_list() == [1, 4, 7, 10]
    assert tables.sources["users"].endswith("ratings.csv")


@given(st.lists(st.sampled_from([x / 2 for x in range(1, 11)]), min_size=1, max_size=40))
def test_rating_mapping_property(ratings):
    n = len(ratings)
    frame = pl.DataFrame(
        {
            "user_id": ["u"] * n, "video_id": ["v"] * n, "ts": [utc(1_000_000_000 + i) for i in range(n)],
            "rating": ratings, SOURCE_ROW: list(range(1, n + 1)), PARSE_ERROR: [None] * n,
        },
        schema_overrides={PARSE_ERROR: pl.String},
    )  # fmt: skip
    events = ratings_to_events(frame)
    kinds = events["event"].to_list()
    assert kinds.count("watch") == n
    assert kinds.count("like") == sum(r == 5 for r in ratings)
    assert kinds.count("dislike") == sum(r < 3 for r in ratings)
    share = events.filter(pl.col("event") == "watch")["watch_seconds"] / NOMINAL_DURATION_SECONDS
    assert share.to_list() == [1.0 if r >= 4 else 0.6 if r >= 3 else 0.3 for r in ratings]
    extra = events.filter(pl.col("event") != "watch").join(frame, on=SOURCE_ROW)
    assert (extra["ts"] == extra["ts_right"]).all()


# --- errors that speak to the user ------------------------------------------------------


def _tiny_100k(folder: Path, data: str) -> Path:
    folder.mkdir()
    (folder / "u.data").write_text(data)
    flags = "|".join(["0"] * 18 + ["1"])
    (folder / "u.item").write_text(f"1|A Film (1990)|01-Jan-1990||http://x|{flags}\n")
    (folder / "u.user").write_text("1|30|F|writer|12345\n")
    return folder


def test_wrong_separator_is_a_data_error(tmp_path):
    folder = _tiny_100k(tmp_path / "ml", "1,1,5,881250949\n1,1,4,881250950\n")
    with pytest.raises(DataError) as err:
        load_source("movielens", folder)
    message = str(err.value)
    assert "u.data" in message and "4 fields" in message and "'\\t'" in message
    assert "line 1 reads '1,1,5,881250949'" in message


def test_bad_rows_come_through_with_their_row_number(tmp_path):
    folder = _tiny_100k(tmp_path / "ml", "1\t1\t5\t881250949\n\n1\tx\t4\t881250950\n1\t1\t9\t881250951\n")
    tables = load(folder)
    ev = tables.events
    assert ev[SOURCE_ROW].to_list() == [1, 1, 3, 4]  # the blank line 2 is not a row
    assert ev.row(2, named=True)["video_id"] is None
    assert ev.row(2, named=True)[PARSE_ERROR] == "video_id: cannot read 'x'"
    assert ev.row(3, named=True)[PARSE_ERROR] == "rating 9.0 outside 0.5..5"
    assert ev.row(3, named=True)["watch_seconds"] is None
    assert tables.videos.row(0, named=True)["category"] == "Western"  # u.genre absent: built-in names
    assert tables.users.row(0, named=True)["age_bucket"] == "25-34"


def test_missing_files_and_unknown_folders(tmp_path):
    with pytest.raises(DataError, match="no MovieLens ratings file found"):
        load_source("movielens", tmp_path)
    (tmp_path / "u.data").write_text("1\t1\t5\t881250949\n")
    with pytest.raises(DataError, match=r"u\.item: file not found"):
        load_source("movielens", tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_source("movielens", tmp_path / "nowhere")


def test_nested_archive_folder_is_found(tmp_path):
    folder = _tiny_100k(tmp_path / "ml-100k", "1\t1\t5\t881250949\n")
    assert load_source("movielens", tmp_path).sources["events"] == str(folder / "u.data")
