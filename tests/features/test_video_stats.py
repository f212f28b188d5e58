from datetime import timedelta

import polars as pl
import pytest

from tests.features.conftest import T0, TINY, VIDEOS
from vidrec.features import video_stats


def test_exact_counts_rates_and_age():
    got = video_stats(TINY, VIDEOS, as_of=T0 + timedelta(days=2), prior_weight=2.0).sort("video_id")
    assert got["views"].to_list() == [2, 2, 0, 0]
    assert got["completions"].to_list() == [2, 1, 0, 0]
    assert got["impressions"].to_list() == [0, 0, 1, 0]
    assert got["likes"].to_list() == [0, 0, 1, 0]
    assert got["dislikes"].to_list() == [0, 0, 0, 1]
    prior = 3 / 4  # global completions / views
    assert got["completion_rate"][0] == pytest.approx((2 + 2 * prior) / (2 + 2))
    assert got["completion_rate"][2] == pytest.approx(prior)  # no views: the prior
    assert got["dislike_rate"][3] == pytest.approx((1 + 2 * 1 / 4) / 2)
    assert got["age_days"].to_list() == [2.0] * 4


def test_point_in_time_ignores_later_events():
    got = video_stats(TINY, VIDEOS, as_of=T0 + timedelta(hours=5)).sort("video_id")
    assert got["views"].to_list() == [1, 1, 0, 0]
    assert got["completions"].to_list() == [1, 0, 0, 0]


def test_negative_prior_is_rejected():
    with pytest.raises(ValueError, match="prior_weight"):
        video_stats(TINY, VIDEOS, prior_weight=-1)


def test_no_impressions_gives_zero():
    got = video_stats(TINY.filter(pl.col("event") != "impression"), VIDEOS)
    assert got["impressions"].sum() == 0
