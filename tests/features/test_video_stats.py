from datetime import timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.features.conftest import T0, TINY, VIDEOS, events
from vidrec.data.schema import TIMESTAMP
from vidrec.features import video_stats
from vidrec.features.point_in_time import VIDEO_STAT_FEATURES, EventTables, PointInTimeConfig, point_in_time_features
from vidrec.features.video_stats import VIDEO_STATS_SCHEMA, count_video_events, derive_video_stats


def test_exact_counts_rates_and_age():
    got = video_stats(TINY, VIDEOS, as_of=T0 + timedelta(days=2), prior_weight=2.0).sort("video_id")
    assert got["views"].to_list() == [2, 2, 0, 0]
    assert got["completions"].to_list() == [2, 1, 0, 0]
    assert got["impressions"].to_list() == [0, 0, 1, 0]
    assert got["likes"].to_list() == [0, 0, 1, 0]
    assert got["dislikes"].to_list() == [0, 0, 0, 1]
    prior = (3 + 1) / (4 + 2)  # global completions / views, Laplace-smoothed
    assert got["completion_rate"][0] == pytest.approx((2 + 2 * prior) / (2 + 2))
    assert got["completion_rate"][2] == pytest.approx(prior)  # no views: the prior
    assert got["dislike_rate"][3] == pytest.approx((1 + 2 * (1 + 1) / (4 + 2)) / 2)
    assert got["like_rate"][1] == pytest.approx((0 + 2 * (1 + 1) / (4 + 2)) / (2 + 2))
    assert got["age_days"].to_list() == [2.0] * 4
    assert dict(got.schema) == VIDEO_STATS_SCHEMA


def test_point_in_time_ignores_later_events():
    got = video_stats(TINY, VIDEOS, as_of=T0 + timedelta(hours=5)).sort("video_id")
    assert got["views"].to_list() == [1, 1, 0, 0]
    assert got["completions"].to_list() == [1, 0, 0, 0]


def test_negative_prior_is_rejected():
    with pytest.raises(ValueError, match="prior_weight"):
        video_stats(TINY, VIDEOS, prior_weight=-1)
    with pytest.raises(ValueError, match="prior_weight"):
        derive_video_stats(count_video_events(TINY, VIDEOS), None, prior_weight=-1)


def test_no_impressions_gives_zero():
    got = video_stats(TINY.filter(pl.col("event") != "impression"), VIDEOS)
    assert got["impressions"].sum() == 0


def test_counting_is_the_raw_half_of_video_stats():
    counts = count_video_events(TINY, VIDEOS, as_of=T0 + timedelta(hours=5)).sort("video_id")
    assert counts.columns == ["video_id", "impressions", "views", "completions", "likes", "dislikes"]
    assert counts.rows() == [("a", 0, 1, 1, 0, 0), ("b", 0, 1, 0, 0, 0), ("c", 1, 0, 0, 1, 0), ("d", 0, 0, 0, 0, 1)]


def test_derive_with_given_totals_unknown_upload_and_no_smoothing():
    counts = pl.DataFrame(
        {"video_id": ["a", "zz"], "impressions": [0, None], "views": [4, None], "completions": [1, None],
         "likes": [8, None], "dislikes": [0, None], "uploaded_at": [T0, None]},
        schema_overrides={"uploaded_at": TIMESTAMP},
    )  # fmt: skip
    totals = {"views": 98, "completions": 49, "likes": 9}
    got = derive_video_stats(counts, T0 + timedelta(hours=36), prior_weight=0.0, totals=totals)
    assert got["views"].to_list() == [4, 0] and got["impressions"].to_list() == [0, 0]
    assert got["completion_rate"].to_list() == [0.25, 0.5]  # no views, no smoothing: the prior (49+1)/(98+2)
    assert got["like_rate"].to_list() == [2.0, 0.1]  # likes without watches are not clipped away
    assert got["age_days"].to_list() == [1.5, None]


_rows = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 8),
        st.sampled_from(["impression", "watch", "like", "dislike"]),
        st.sampled_from([10.0, 79.0, 80.0, 150.0]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None)
@given(rows=_rows, hour=st.integers(0, 10), weight=st.sampled_from([0.0, 2.0, 20.0]))
def test_point_in_time_video_features_equal_video_stats(rows, hour, weight):
    """The ranker's video features at ts are exactly ``video_stats(as_of=ts)``: one definition."""
    ev = events([(u, v, h, e, w if e == "watch" else None) for u, v, h, e, w in rows])
    at = T0 + timedelta(hours=hour, minutes=30)
    expected = video_stats(ev, VIDEOS, as_of=at, prior_weight=weight)
    tables = EventTables.build(ev, VIDEOS, PointInTimeConfig(prior_weight=weight))
    query = VIDEOS.select("video_id", user_id=pl.lit("u1"), ts=pl.lit(at).cast(TIMESTAMP))
    feats = point_in_time_features(query, tables, VIDEOS)
    got = feats.select(
        "video_id",
        *(pl.col(f).cast(VIDEO_STATS_SCHEMA[c]).alias(c) for c, f in VIDEO_STAT_FEATURES.items()),
        age_days="video_age_days",
    )
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12)
