"""Item-to-item features: exact co-occurrence on a tiny log, the cut is respected, values by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from vidrec.data.schema import TIMESTAMP
from vidrec.scoring.similarity import SIMILARITY_FEATURES, CoOccurrence, similarity_features

T0 = datetime(2025, 1, 1, tzinfo=UTC)
VIDEOS = pl.DataFrame({
    "video_id": ["a", "b", "c", "d"], "creator_id": ["x"] * 4, "category": ["k"] * 4, "tags": [[]] * 4,
    "duration_seconds": [100.0] * 4, "uploaded_at": [T0] * 4, "available": [True] * 4,
}, schema_overrides={"tags": pl.List(pl.String), "uploaded_at": TIMESTAMP})  # fmt: skip


def log(rows: list[tuple[str, str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame({
        "user_id": [r[0] for r in rows], "video_id": [r[1] for r in rows],
        "ts": [T0 + timedelta(hours=r[2]) for r in rows], "event": ["watch"] * len(rows),
        "watch_seconds": [r[3] for r in rows],
    }, schema_overrides={"ts": TIMESTAMP})  # fmt: skip


EVENTS = log([
    ("u1", "a", 1, 90.0), ("u1", "b", 2, 95.0), ("u1", "c", 3, 90.0),
    ("u2", "a", 1, 90.0), ("u2", "b", 2, 85.0), ("u2", "c", 3, 10.0),  # c abandoned: not a completion
    ("u3", "a", 1, 90.0), ("u3", "c", 2, 90.0),
    ("u4", "b", 10, 90.0), ("u4", "d", 11, 90.0),  # at/after the cut below: never counted
])  # fmt: skip
CUT = T0 + timedelta(hours=10)


class Unit:
    """Embeddings by hand: a=(1,0), b=(0,1), c=(1,1), d unknown (zeros)."""

    dim = 2
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]}

    def video_vectors(self, video_ids: pl.Series) -> np.ndarray:
        return np.array([self.table.get(v, [0.0, 0.0]) for v in video_ids.to_list()], dtype=np.float32)

    def user_vectors(self, user_ids: pl.Series, histories: pl.Series) -> np.ndarray:
        return np.zeros((len(user_ids), 2), dtype=np.float32)


def test_cooccurrence_exact_and_before_the_cut_only() -> None:
    co = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1)
    m = co.matrix.toarray()
    i = {v: k for k, v in enumerate(co.video_ids.to_list())}
    # completions before the cut: a by u1,u2,u3; b by u1,u2; c by u1,u3; d by none
    assert m[i["a"], i["b"]] == pytest.approx(2 / np.sqrt(3 * 2))
    assert m[i["a"], i["c"]] == pytest.approx(2 / np.sqrt(3 * 2))
    assert m[i["b"], i["c"]] == pytest.approx(1 / np.sqrt(2 * 2))
    assert np.allclose(m, m.T) and np.all(np.diag(m) == 0) and m[i["d"]].sum() == 0 and m[:, i["b"]].sum() > 0
    pruned = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=2).matrix.toarray()
    assert pruned[i["b"], i["c"]] == 0 and pruned[i["a"], i["b"]] > 0
    assert CoOccurrence.build(EVENTS, VIDEOS, None).matrix.nnz == 0


def test_events_at_or_after_the_cut_change_nothing() -> None:
    base = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1).matrix.toarray()
    later = log([("u9", "a", 10, 90.0), ("u9", "d", 12, 90.0), ("u1", "d", 10, 90.0)])
    grown = CoOccurrence.build(pl.concat([EVENTS, later]), VIDEOS, CUT, min_count=1).matrix.toarray()
    np.testing.assert_array_equal(base, grown)


def test_similarity_features_by_hand() -> None:
    co = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1, ease_videos=0)  # no regression: its columns zero
    frame = pl.DataFrame({
        "user_id": ["u", "u", "u", "w"], "video_id": ["c", "b", "zz", "a"],
        "history": [["a", "b"], ["a", "b"], ["a"], []],
    })  # fmt: skip
    got = similarity_features(frame, co, Unit(), recent=2)
    assert got.shape == (4, len(SIMILARITY_FEATURES))
    cos_ca, cos_cb = 1 / np.sqrt(2), 1 / np.sqrt(2)
    co_ca, co_cb, co_ba = 2 / np.sqrt(6), 1 / 2, 2 / np.sqrt(6)
    expected = np.array([
        [max(cos_ca, cos_cb), (cos_ca + cos_cb) / 2, max(co_ca, co_cb), (co_ca + co_cb) / 2, 0.0, 0.0],
        [1.0, 0.5, co_ba, co_ba / 2, 0.0, 0.0],  # b vs itself: 1 by cosine, 0 by co-occurrence (zero diagonal)
        [0.0] * 6,  # unknown video
        [0.0] * 6,  # empty history
    ])  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    recent1 = similarity_features(frame.head(1), co, None, recent=1)  # last one only (b); no embeddings
    np.testing.assert_allclose(recent1, [[0.0, 0.0, co_cb, co_cb, 0.0, 0.0]], rtol=1e-6)


def test_item_regression_is_ease() -> None:
    # Oracle: the evaluation's EASE baseline on the same completions (a, b, c; d never completed).
    lam = 0.7
    co = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1, ease_lambda=lam)
    x = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1]], dtype=np.float64)  # u1, u2, u3 x a, b, c
    p = np.linalg.inv(x.T @ x + lam * np.eye(3))
    b = p / -np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(co.regression.toarray()[:3, :3], b, rtol=1e-5)
    assert co.regression[3].nnz == 0 and co.regression[:, 3].nnz == 0
    frame = pl.DataFrame({"user_id": ["u"], "video_id": ["c"], "history": [["a", "b"]]})
    got = similarity_features(frame, co, None, recent=2)[0]
    np.testing.assert_allclose(got[4:], [max(b[0, 2], b[1, 2]), b[0, 2] + b[1, 2]], rtol=1e-5)  # EASE's score
    only_a = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1, ease_videos=1)  # one video: nothing to regress
    assert only_a.regression.nnz == 0
    default = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1).regression.toarray()
    p = np.linalg.inv(x.T @ x + 5.0 * (7 / 3) * np.eye(3))  # 5 x the mean completions of a, b, c
    np.testing.assert_allclose(default[:3, :3], np.where(np.eye(3) > 0, 0.0, p / -np.diag(p)[None, :]), rtol=1e-5)


def test_cooccurrence_round_trip(tmp_path) -> None:
    co = CoOccurrence.build(EVENTS, VIDEOS, CUT, min_count=1)
    back = CoOccurrence.load(co.save(tmp_path / "sim"))
    assert back.video_ids.equals(co.video_ids)
    np.testing.assert_array_equal(back.matrix.toarray(), co.matrix.toarray())
    np.testing.assert_array_equal(back.regression.toarray(), co.regression.toarray())
    np.testing.assert_array_equal(back.index(pl.Series(["c", "nope"])), [2, -1])
