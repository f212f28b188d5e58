"""Label construction, exact on tiny logs with and without impressions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from vidrec.data.schema import TIMESTAMP
from vidrec.scoring.examples import LABELS, ExampleConfig, build_examples, example_mode, shown_share

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def videos(n: int = 4, uploaded: list[datetime] | None = None) -> pl.DataFrame:
    ids = [chr(ord("a") + i) for i in range(n)]
    return pl.DataFrame({
        "video_id": ids, "creator_id": ["x"] * n, "category": ["music"] * n, "tags": [[] for _ in ids],
        "duration_seconds": [100.0] * n, "uploaded_at": pl.Series(uploaded or [m(-1000)] * n).cast(TIMESTAMP),
        "available": [True] * n,
    })  # fmt: skip


def log(rows: list[tuple]) -> pl.DataFrame:
    u, v, ts, e, w = zip(*rows)
    return pl.DataFrame({"user_id": u, "video_id": v, "ts": pl.Series(ts).cast(TIMESTAMP), "event": e,
                         "watch_seconds": pl.Series(w, dtype=pl.Float64)})  # fmt: skip


def labels(out: pl.DataFrame) -> list[tuple[str, str, datetime, float]]:
    return sorted((r["user_id"], r["video_id"], r["ts"], r["label"]) for r in out.to_dicts())


def test_impression_labels_are_exact() -> None:
    events = log([
        ("u1", "a", m(0), "impression", None), ("u1", "a", m(10), "watch", 90.0),    # completed in session: 1
        ("u1", "b", m(0), "impression", None), ("u1", "b", m(10), "watch", 50.0),    # abandoned: 0
        ("u1", "c", m(0), "impression", None), ("u1", "c", m(120), "watch", 100.0),  # too late: 0
        ("u1", "d", m(5), "impression", None), ("u1", "d", m(5), "watch", 80.0),     # same instant, 0.8 exactly: 1
        ("u2", "a", m(0), "impression", None), ("u2", "a", m(20), "impression", None),
        ("u2", "a", m(30), "watch", 100.0),                                          # answers the second only
        ("u2", "b", m(0), "watch", 100.0), ("u2", "b", m(5), "impression", None),    # watched before: 0
        ("u2", "c", m(50), "impression", None), ("u2", "c", m(55), "watch", 20.0),
        ("u2", "c", m(58), "watch", 85.0),                                           # a later full watch: 1
        ("u3", "a", m(0), "watch", 100.0), ("u3", "a", m(1), "like", None),          # never shown: no example
    ])  # fmt: skip
    out = build_examples(events, videos())
    assert out.columns == ["user_id", "video_id", "ts", "label", "interacted", "liked", "disliked"]
    assert out["ts"].is_sorted()
    assert labels(out) == [
        ("u1", "a", m(0), 1.0), ("u1", "b", m(0), 0.0), ("u1", "c", m(0), 0.0), ("u1", "d", m(5), 1.0),
        ("u2", "a", m(0), 0.0), ("u2", "a", m(20), 1.0), ("u2", "b", m(5), 0.0), ("u2", "c", m(50), 1.0),
    ]  # fmt: skip
    # A longer session and a higher threshold change exactly the affected labels.
    longer = build_examples(events, videos(), ExampleConfig(session_window=timedelta(hours=3)))
    assert ("u1", "c", m(0), 1.0) in labels(longer)
    strict = build_examples(events, videos(), ExampleConfig(threshold=0.9))
    assert ("u1", "d", m(5), 0.0) in labels(strict) and ("u1", "a", m(0), 1.0) in labels(strict)


def all_labels(out: pl.DataFrame) -> list[tuple]:
    return sorted((r["user_id"], r["video_id"], r["ts"], *(r[c] for c in LABELS)) for r in out.to_dicts())


def test_impression_multi_labels_are_exact() -> None:
    events = log([
        ("u1", "a", m(0), "impression", None), ("u1", "a", m(10), "watch", 90.0),
        ("u1", "a", m(11), "like", None),                                            # completed, liked
        ("u1", "b", m(0), "impression", None), ("u1", "b", m(10), "watch", 50.0),
        ("u1", "b", m(12), "dislike", None),                                         # abandoned, disliked
        ("u1", "c", m(0), "impression", None), ("u1", "c", m(120), "like", None),    # like too late: nothing
        ("u1", "d", m(0), "impression", None), ("u1", "d", m(5), "like", None),      # like without a watch
        ("u2", "a", m(0), "impression", None), ("u2", "a", m(20), "impression", None),
        ("u2", "a", m(30), "dislike", None),                                         # answers the second only
        ("u2", "b", m(0), "like", None), ("u2", "b", m(5), "impression", None),      # before the impression: 0
        ("u3", "a", m(0), "watch", 100.0), ("u3", "a", m(1), "like", None),          # never shown: no example
    ])  # fmt: skip
    out = build_examples(events, videos())
    # user, video, ts, completed, interacted, liked, disliked
    assert all_labels(out) == [
        ("u1", "a", m(0), 1.0, 1.0, 1.0, 0.0), ("u1", "b", m(0), 0.0, 1.0, 0.0, 1.0),
        ("u1", "c", m(0), 0.0, 0.0, 0.0, 0.0), ("u1", "d", m(0), 0.0, 1.0, 1.0, 0.0),
        ("u2", "a", m(0), 0.0, 0.0, 0.0, 0.0), ("u2", "a", m(20), 0.0, 1.0, 0.0, 1.0),
        ("u2", "b", m(5), 0.0, 0.0, 0.0, 0.0),
    ]  # fmt: skip
    assert dict(out.schema) == {"user_id": pl.String, "video_id": pl.String, "ts": TIMESTAMP,
                                **{c: pl.Float32 for c in LABELS}}  # fmt: skip


WATCH_LOG = [
    ("u1", "a", m(0), "watch", 100.0), ("u1", "a", m(0), "like", None),
    ("u1", "b", m(10), "watch", 30.0), ("u1", "b", m(10), "dislike", None),
    ("u2", "a", m(20), "watch", 80.0),
    ("u2", "c", m(30), "watch", 60.0),
]  # fmt: skip


def test_watch_labels_without_negatives_are_exact() -> None:
    out = build_examples(log(WATCH_LOG), videos(), ExampleConfig(negatives_per_watch=0))
    assert labels(out) == [("u1", "a", m(0), 1.0), ("u1", "b", m(10), 0.0), ("u2", "a", m(20), 1.0), ("u2", "c", m(30), 0.0)]


def test_watch_multi_labels_are_exact() -> None:
    events = log(WATCH_LOG + [
        ("u2", "c", m(31), "like", None),                                            # a like after watching
        ("u2", "a", m(200), "dislike", None),                                        # outside the session: 0
    ])  # fmt: skip
    out = build_examples(events, videos(), ExampleConfig(negatives_per_watch=0))
    assert all_labels(out) == [
        ("u1", "a", m(0), 1.0, 1.0, 1.0, 0.0), ("u1", "b", m(10), 0.0, 1.0, 0.0, 1.0),
        ("u2", "a", m(20), 1.0, 1.0, 0.0, 0.0), ("u2", "c", m(30), 0.0, 1.0, 1.0, 0.0),
    ]  # fmt: skip
    # A rewatch takes the reactions after it: the first watch's session ends there.
    rewatch = log([("u1", "a", m(0), "watch", 10.0), ("u1", "a", m(5), "watch", 95.0), ("u1", "a", m(6), "like", None)])
    assert all_labels(build_examples(rewatch, videos(), ExampleConfig(negatives_per_watch=0))) == [
        ("u1", "a", m(0), 0.0, 1.0, 0.0, 0.0), ("u1", "a", m(5), 1.0, 1.0, 1.0, 0.0),
    ]  # fmt: skip


def test_sampled_negatives_have_every_label_zero() -> None:
    out = build_examples(log(WATCH_LOG), videos(30), ExampleConfig(negatives_per_watch=2, seed=1))
    watched = {(u, v, t) for u, v, t, *_ in WATCH_LOG}
    neg = out.filter(~pl.struct("user_id", "video_id", "ts").map_elements(
        lambda r: (r["user_id"], r["video_id"], r["ts"]) in watched, return_dtype=pl.Boolean))  # fmt: skip
    assert neg.height == 8 and neg.select(LABELS).to_numpy().sum() == 0


def test_watch_mode_samples_unwatched_uploaded_negatives() -> None:
    n_videos = 30
    ups = [m(-10)] * (n_videos - 5) + [m(1000)] * 5  # the last five are uploaded after every watch
    vids = videos(n_videos, ups)
    cfg = ExampleConfig(negatives_per_watch=3, seed=7)
    out = build_examples(log(WATCH_LOG), vids, cfg)
    neg = out.filter(pl.col("label") == 0.0).join(log(WATCH_LOG).select("user_id", "video_id", "ts", "event"),
                                                 on=["user_id", "video_id", "ts"], how="anti")  # fmt: skip
    assert neg.height == 3 * 4  # three per watch
    touched = {("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c")}
    assert not {(r["user_id"], r["video_id"]) for r in neg.to_dicts()} & touched
    late = set(vids["video_id"].tail(5))
    assert not set(neg["video_id"]) & late
    # each watch's (user, ts) gets its negatives at the same ts
    assert neg.group_by("user_id", "ts").len().sort("ts")["len"].to_list() == [3, 3, 3, 3]
    assert build_examples(log(WATCH_LOG), vids, cfg).equals(out)  # seeded


def test_popularity_negatives_favour_watched_videos() -> None:
    crowd = [(f"w{i}", v, m(i), "watch", 90.0) for i in range(8) for v in ("a", "b")]
    events = log(crowd + [("u1", "c", m(50), "watch", 90.0)])
    cfg = ExampleConfig(negatives_per_watch=4, popularity_share=1.0, seed=3)
    neg = build_examples(events, videos(20), cfg).filter((pl.col("user_id") == "u1") & (pl.col("label") == 0.0))
    assert neg.height == 4 and set(neg["video_id"]) <= {"a", "b"}  # 18 never-watched videos never drawn


def test_auto_mode_follows_the_log() -> None:
    # every watch shown a minute before, plus one impression never watched: one example per impression
    shown = [(u, v, ts - timedelta(minutes=1), "impression", None) for u, v, ts, e, _ in WATCH_LOG if e == "watch"]
    with_imp = log(WATCH_LOG + shown + [("u1", "c", m(50), "impression", None)])
    assert shown_share(with_imp, timedelta(hours=1)) == 1.0
    assert build_examples(with_imp, videos()).height == 5
    assert build_examples(with_imp, videos(), ExampleConfig(mode="watches", negatives_per_watch=0)).height == 4


def test_auto_mode_builds_from_watches_where_impressions_explain_none() -> None:
    # the impressions come a day after the watches (a log whose clock means nothing): labels from
    # them would all be 0, so "auto" builds from the watches, as "watches" does
    late = [(u, v, ts + timedelta(days=1), "impression", None) for u, v, ts, e, _ in WATCH_LOG if e == "watch"]
    events = log(WATCH_LOG + late)
    assert shown_share(events, timedelta(hours=1)) == 0.0
    cfg = ExampleConfig(negatives_per_watch=0)
    assert example_mode(events, cfg) == "watches"
    assert labels(build_examples(events, videos(), cfg)) == labels(build_examples(log(WATCH_LOG), videos(), cfg))


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0.0}, {"session_window": timedelta(0)}, {"mode": "clicks"},
    {"negatives_per_watch": -1}, {"popularity_share": 1.5},
])  # fmt: skip
def test_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="ExampleConfig"):
        ExampleConfig(**kwargs)


def test_unshown_negatives_are_never_shown_nor_touched() -> None:
    # u1 is shown a and b and watches a; c..t were never shown to u1: its negatives come from them
    events = log([("u1", "a", m(0), "impression", None), ("u1", "a", m(5), "watch", 100.0),
                  ("u1", "b", m(0), "impression", None), ("u2", "c", m(0), "impression", None)])  # fmt: skip
    cfg = ExampleConfig(unshown_negatives=3)
    out = build_examples(events, videos(20), cfg)
    plain = build_examples(events, videos(20))
    extra = out.join(plain, on=["user_id", "video_id", "ts"], how="anti")
    assert extra.height == 3 and set(extra["user_id"]) == {"u1"}  # only the watched impression draws them
    assert not set(extra["video_id"]) & {"a", "b"} and (extra.select(LABELS).to_numpy() == 0).all()
    assert extra["ts"].to_list() == [m(0)] * 3
