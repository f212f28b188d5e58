"""User x tag and user x language affinities: exact values on a tiny log, strictly before ts."""

from __future__ import annotations

import math

import polars as pl
import pytest

from tests.features.test_point_in_time import events_frame, t, videos_frame
from vidrec.features.crosses import CROSS_COLUMNS, cross_tags
from vidrec.features.point_in_time import EventTables, PointInTimeConfig, point_in_time_features

VIDEOS = videos_frame(["a", "b", "c"], ["k", "k", "m"], ["music"] * 3, [100.0] * 3, [t(0)] * 3).with_columns(
    tags=pl.Series([["x", "y"], ["x"], ["x", "z"]]), language=pl.Series(["en", "fr", "en"])
)
EVENTS = events_frame([
    ("u", "a", t(1), "impression", None),
    ("u", "a", t(1.5), "watch", 100.0),  # completed
    ("u", "b", t(2), "impression", None),  # shown, not watched
])  # fmt: skip
# No smoothing, so every value is a plain ratio of counts.
CONFIG = PointInTimeConfig(prior_weight=0.0, user_prior_weight=0.0)


def _row(ts_hours: float, user: str = "u") -> dict:
    tables = EventTables.build(EVENTS, VIDEOS, CONFIG)
    rows = pl.DataFrame({"user_id": [user], "video_id": ["c"], "ts": [t(ts_hours)]})
    return point_in_time_features(rows, tables, VIDEOS).row(0, named=True)


def test_exact_tag_and_language_features() -> None:
    r = _row(3)
    # tag x: shown a and b (2 impressions), watched and completed a; tag z: never shown
    assert r["ut_affinity_max"] == pytest.approx(1.0)  # 1 of the user's 1 views carried x
    assert r["ut_completion_rate_max"] == pytest.approx(1.0)
    assert r["ut_watch_rate_max"] == pytest.approx(0.5)
    # z was never shown: its watch rate is the user's own (1 watch of 2 impressions)
    assert r["ut_watch_rate_mean"] == pytest.approx(0.5)
    # population share of x: (1 view + 1) / (1 global view + 2 tags seen (x, y))
    assert r["ut_lift_max"] == pytest.approx(math.log((1.0 + 1e-6) / (2 / 3)))
    # language en: a shown once and watched; b (fr) does not count
    assert (r["ul_affinity"], r["ul_completion_rate"], r["ul_watch_rate"]) == pytest.approx((1.0, 1.0, 1.0))
    # c was never shown: its watch rate is the platform's, Laplace-smoothed (1 + 1) / (2 + 2)
    assert r["u_watch_rate"] == pytest.approx(0.5) and r["v_watch_rate"] == pytest.approx(0.5)


def test_nothing_at_or_after_ts_counts() -> None:
    # The first impression is at exactly t(1): u looks like a user with no history at all.
    r, nobody = _row(1), _row(1, user="nobody")
    assert {c: r[c] for c in CROSS_COLUMNS} == {c: nobody[c] for c in CROSS_COLUMNS}
    r = _row(1.2)  # a was shown but not yet watched
    assert r["ut_watch_rate_max"] == 0.0 and r["u_watch_rate"] == 0.0


def test_videos_without_tags_or_language_get_neutral_values() -> None:
    videos = VIDEOS.with_columns(tags=pl.Series([["x", "y"], ["x"], []]), language=pl.Series(["en", "fr", None]))
    tables = EventTables.build(EVENTS, videos, CONFIG)
    rows = pl.DataFrame({"user_id": ["u"], "video_id": ["c"], "ts": [t(3)]})
    r = point_in_time_features(rows, tables, videos).row(0, named=True)
    assert (r["ut_affinity_max"], r["ut_lift_max"], r["ul_affinity"]) == (0.0, 0.0, 0.0)
    assert r["ut_watch_rate_max"] == pytest.approx(r["u_watch_rate"])
    assert r["ul_completion_rate"] == pytest.approx(r["u_completion_rate"])


def test_cross_tags_add_distinct_title_words_of_three_letters_or_more() -> None:
    videos = pl.DataFrame({"video_id": ["a", "b", "c"], "tags": [["x"], None, []],
                           "title": ["Toy Story (1995) toy", None, "the best_of-it  Café 2"]})  # fmt: skip
    assert cross_tags(videos, title_words=True)["tags"].to_list() == [
        ["x", "title:toy", "title:story", "title:1995"], [], ["title:the", "title:best", "title:café"]
    ]
    assert cross_tags(videos)["tags"].to_list() == [["x"], None, []]
    assert cross_tags(videos.drop("title"), title_words=True)["tags"].to_list() == [["x"], None, []]


@pytest.mark.parametrize("title_words, share", [(False, 0.0), (True, 1.0)])
def test_title_words_count_as_tags_when_asked(title_words: bool, share: float) -> None:
    # c shares no tag with a, only the title word "zorb"
    videos = VIDEOS.with_columns(tags=pl.Series([["x"], ["x"], ["z"]]),
                                 title=pl.Series(["Zorb time", "b", "zorb news"]))  # fmt: skip
    config = PointInTimeConfig(prior_weight=0.0, user_prior_weight=0.0, title_words=title_words)
    tables = EventTables.build(EVENTS, videos, config)
    rows = pl.DataFrame({"user_id": ["u"], "video_id": ["c"], "ts": [t(3)]})
    r = point_in_time_features(rows, tables, videos).row(0, named=True)
    assert r["ut_affinity_max"] == pytest.approx(share)  # the user's one view (a) carried "title:zorb"
