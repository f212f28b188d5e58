from datetime import timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.features.conftest import T0, TINY, VIDEOS, events
from vidrec.features import build_user_state, completed_pairs
from vidrec.features.user_state import empty_user_state


def as_dict(state: pl.DataFrame) -> dict[str, dict[str, list[str]]]:
    return {r["user_id"]: {k: v for k, v in r.items() if k != "user_id"} for r in state.to_dicts()}


def test_exact_state_on_a_tiny_log():
    got = as_dict(build_user_state(TINY, VIDEOS))
    assert got == {
        "u1": {"recent_completed": ["a", "b"], "recent_watched": ["a", "b"], "seen": ["a", "b", "d"], "disliked": ["d"]},
        "u2": {"recent_completed": ["a"], "recent_watched": ["a"], "seen": ["c", "a"], "disliked": []},
    }


def test_as_of_excludes_events_at_and_after_it():
    got = as_dict(build_user_state(TINY, VIDEOS, as_of=T0 + timedelta(hours=5)))
    # b's completion at hour 5 is not used; u2's watch at hour 6 neither.
    assert got["u1"]["recent_completed"] == ["a"]
    assert got["u1"]["recent_watched"] == ["a", "b"]
    assert got["u2"] == {"recent_completed": [], "recent_watched": [], "seen": ["c"], "disliked": []}


def test_history_len_keeps_the_most_recent():
    got = as_dict(build_user_state(TINY, VIDEOS, history_len=1))
    assert got["u1"]["recent_completed"] == ["b"]
    assert got["u1"]["seen"] == ["a", "b", "d"]  # seen is never truncated


def test_completed_pairs_use_first_completion_time():
    pairs = completed_pairs(TINY, VIDEOS)
    assert pairs.filter(pl.col("user_id") == "u1")["video_id"].to_list() == ["a", "b"]
    assert pairs.filter(pl.col("video_id") == "b")["ts"].item() == T0 + timedelta(hours=5)


def test_empty_state_has_the_same_columns():
    assert empty_user_state(["z"]).schema == build_user_state(TINY, VIDEOS).schema


row = st.tuples(
    st.sampled_from(["u1", "u2", "u3"]),
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(0, 20),
    st.sampled_from(["watch", "like", "dislike", "impression"]),
    st.floats(0, 200),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(row, min_size=1, max_size=30), st.integers(0, 21))
def test_point_in_time_equals_state_of_the_past_alone(rows, cut):
    rows = [(u, v, t, e, w if e == "watch" else None) for u, v, t, e, w in rows]
    log = events(rows)
    as_of = T0 + timedelta(hours=cut)
    past = log.filter(pl.col("ts") < as_of)
    got = build_user_state(log, VIDEOS, as_of=as_of)
    want = build_user_state(past, VIDEOS)
    assert got.equals(want)
    future_only = set(log.filter(pl.col("ts") >= as_of)["video_id"]) - set(past["video_id"])
    listed = set(got.select(pl.col("seen").explode().drop_nulls())["seen"])
    assert not (listed & future_only)
