"""Splits never put a training event after the test events it is compared with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.data.dataset import Dataset
from vidrec.data.splits import SplitConfig, read_split, split_events, write_split

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def events_from(rows: list[tuple[int, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [f"u{u}" for u, _, _ in rows],
            "video_id": [f"v{i}" for i in range(len(rows))],
            "ts": [T0 + timedelta(hours=h) for _, h, _ in rows],
            "event": [k for _, _, k in rows],
            "watch_seconds": [1.0 if k == "watch" else None for _, _, k in rows],
        }
    )


event_rows = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 50), st.sampled_from(["watch", "watch", "like", "impression"])),
    min_size=1,
    max_size=120,
)


@settings(max_examples=80, deadline=None)
@given(rows=event_rows, fraction=st.floats(0.05, 0.95))
def test_per_user_split_is_temporal_and_complete(rows, fraction) -> None:
    ev = events_from(rows)
    train, test = split_events(ev, SplitConfig(mode="per-user", fraction=fraction))
    assert train.height + test.height == ev.height
    joined = train.group_by("user_id").agg(last=pl.col("ts").max()).join(
        test.group_by("user_id").agg(first=pl.col("ts").min()), on="user_id"
    )
    assert (joined["last"] < joined["first"]).all()
    # a user with at least two watches at distinct times keeps some training watches
    w = ev.filter(pl.col("event") == "watch").group_by("user_id").agg(pl.col("ts").n_unique().alias("k"))
    for uid in w.filter(pl.col("k") >= 2)["user_id"]:
        assert train.filter(pl.col("user_id") == uid, pl.col("event") == "watch").height >= 1


@settings(max_examples=50, deadline=None)
@given(rows=event_rows.filter(lambda r: any(k == "watch" for _, _, k in r)), fraction=st.floats(0.05, 0.95))
def test_global_split_respects_the_cut(rows, fraction) -> None:
    ev = events_from(rows)
    train, test = split_events(ev, SplitConfig(mode="global", fraction=fraction))
    assert train.height + test.height == ev.height
    if train.height and test.height:
        assert train["ts"].max() < test["ts"].min()


def test_per_user_exact_small_case() -> None:
    # user 0: watches at hours 1..5, fraction 0.4 -> last 2 watches (hours 4, 5) are test
    ev = events_from([(0, h, "watch") for h in range(1, 6)] + [(0, 4, "like"), (1, 3, "watch")])
    train, test = split_events(ev, SplitConfig(fraction=0.4))
    assert sorted(test["ts"].dt.hour().to_list()) == [4, 4, 5]
    assert train.filter(pl.col("user_id") == "u1").height == 1  # a single watch stays in train


def test_per_user_cut_keeps_an_impression_with_its_watch() -> None:
    # u0 is shown v1 at minute 10 and watches it at 11: that watch is the first test watch,
    # so its impression goes to test too (in training it would look shown and ignored)
    minutes = [(0, "impression", "v0"), (1, "watch", "v0"), (10, "impression", "v1"), (11, "watch", "v1"),
               (20, "impression", "v2"), (21, "watch", "v2")]  # fmt: skip
    ev = pl.DataFrame({
        "user_id": ["u0"] * len(minutes), "video_id": [v for *_, v in minutes],
        "ts": [T0 + timedelta(minutes=m) for m, *_ in minutes], "event": [k for _, k, _ in minutes],
        "watch_seconds": [1.0 if k == "watch" else None for _, k, _ in minutes],
    })  # fmt: skip
    train, test = split_events(ev, SplitConfig(fraction=0.5))
    assert train["video_id"].to_list() == ["v0", "v0"]
    assert test.sort("ts").select("video_id", "event").rows() == [
        ("v1", "impression"), ("v1", "watch"), ("v2", "impression"), ("v2", "watch")
    ]


def test_explicit_cut_and_round_trip(tmp_path) -> None:
    ev = events_from([(0, h, "watch") for h in range(10)])
    videos = pl.DataFrame({"video_id": ev["video_id"]})
    ds = Dataset(ev, videos, pl.DataFrame({"user_id": ["u0"]}))
    cut = T0 + timedelta(hours=7)
    info = write_split(ds, tmp_path, SplitConfig(mode="global", cut=cut))
    train, test = read_split(tmp_path)
    assert info["test_events"] == test.height == 3
    assert train.events["ts"].max() < cut <= test["ts"].min()
    assert train.videos.height == 10


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="fraction"):
        SplitConfig(fraction=1.5)
    with pytest.raises(ValueError, match="mode='global'"):
        SplitConfig(cut=T0)
