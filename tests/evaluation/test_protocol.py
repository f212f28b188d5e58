"""The offline protocol: temporal carve, matrices, exclusions, the comparison table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.data.dataset import Dataset, write_dataset
from vidrec.data.ids import IdMap
from vidrec.data.schema import TIMESTAMP
from vidrec.evaluation import (
    EASE,
    IALS,
    NO_ITEM,
    BaselineSpec,
    EvaluationData,
    MostPopular,
    evaluate_baselines,
    evaluate_recommendations,
    format_table,
    temporal_holdout,
    write_json,
)
from vidrec.evaluation.matrix import interaction_matrix

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def events(rows: list[tuple[str, str, int, str, float | None]]) -> pl.DataFrame:
    """(user, video, minute, event, watch_seconds) -> a canonical events frame."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "video_id": [r[1] for r in rows],
            "ts": [T0 + timedelta(minutes=r[2]) for r in rows],
            "event": [r[3] for r in rows],
            "watch_seconds": [r[4] for r in rows],
        },
        schema={"user_id": pl.String, "video_id": pl.String, "ts": TIMESTAMP,
                "event": pl.String, "watch_seconds": pl.Float64},
    )


def videos(ids: list[str], duration: float = 100.0) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "video_id": ids,
            "creator_id": ["c"] * n,
            "category": ["music"] * n,
            "tags": [["t"]] * n,
            "duration_seconds": [duration] * n,
            "uploaded_at": [T0] * n,
            "available": [True] * n,
        },
        schema_overrides={"uploaded_at": TIMESTAMP},
    )


def test_temporal_holdout_cuts_each_user_by_time() -> None:
    ev = events(
        [
            ("a", "v1", 1, "watch", 10.0),
            ("a", "v2", 2, "impression", None),
            ("a", "v2", 3, "watch", 10.0),
            ("a", "v3", 4, "watch", 10.0),
            ("a", "v4", 5, "watch", 10.0),
            ("a", "v4", 5, "like", None),
            ("a", "v5", 6, "watch", 10.0),
            ("b", "v1", 1, "watch", 10.0),  # a single watch: stays in train
            ("b", "v2", 9, "like", None),
            ("c", "v1", 3, "watch", 10.0),  # all watches at one instant: stays in train
            ("c", "v2", 3, "watch", 10.0),
        ]
    )
    train, hold = temporal_holdout(ev, 0.4)  # a: 5 watches -> last 2 held out, cut at minute 5
    assert hold.select("user_id", "video_id", "event").rows() == [
        ("a", "v4", "watch"), ("a", "v4", "like"), ("a", "v5", "watch")
    ]
    assert train.height == ev.height - 3 and train.columns == ev.columns
    with pytest.raises(ValueError, match="fraction"):
        temporal_holdout(ev, 1.0)
    with pytest.raises(ValueError, match="missing"):
        temporal_holdout(ev.drop("event"), 0.2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"),
            st.integers(0, 30),
            st.sampled_from(["watch", "like", "impression"]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.floats(0.05, 0.95),
)
def test_temporal_holdout_never_puts_the_future_in_train(rows: list, fraction: float) -> None:
    ev = events(
        [(u, f"v{i}", t, e, 1.0 if e == "watch" else None) for i, (u, t, e) in enumerate(rows)]
    )
    train, hold = temporal_holdout(ev, fraction)
    assert train.height + hold.height == ev.height
    last_train = train.group_by("user_id").agg(last=pl.col("ts").max())
    first_hold = hold.group_by("user_id").agg(first=pl.col("ts").min())
    both = last_train.join(first_hold, on="user_id")
    assert (both["last"] < both["first"]).all()
    # every user who keeps a holdout also keeps at least one training watch
    kept = train.filter(pl.col("event") == "watch")["user_id"].unique()
    assert hold["user_id"].unique().is_in(kept.implode()).all()


def small_split() -> tuple[Dataset, pl.DataFrame]:
    vids = videos(["v1", "v2", "v3", "v4", "v5"])
    train_ev = events(
        [
            ("u1", "v1", 1, "watch", 90.0),
            ("u1", "v2", 2, "like", None),
            ("u2", "v2", 1, "watch", 10.0),
            ("u2", "v3", 2, "impression", None),  # impressions never make an interaction
        ]
    )
    test_ev = events(
        [
            ("u1", "v1", 10, "watch", 95.0),  # repeat of a training pair: never counted
            ("u1", "v3", 11, "watch", 85.0),  # interacted and completed
            ("u1", "v4", 12, "watch", 20.0),  # interacted, not completed
            ("u2", "v5", 11, "like", None),  # interacted (a like), not completed
            ("u2", "vNEW", 11, "watch", 100.0),  # video outside the training catalogue
            ("u9", "v1", 12, "watch", 100.0),  # a cold user
        ]
    )
    users = pl.DataFrame({"user_id": ["u1", "u2", "u9"]})
    return Dataset(train_ev, vids, users), test_ev


def test_evaluation_data_matrices_and_coverage() -> None:
    train, test = small_split()
    data = EvaluationData.from_frames(train, test)
    assert data.users.ids.to_list() == ["u1", "u2"]
    assert data.videos.ids.to_list() == ["v1", "v2", "v3", "v4", "v5"]
    assert data.train.toarray().tolist() == [[1, 1, 0, 0, 0], [0, 1, 0, 0, 0]]
    assert data.candidate_relevance.toarray().tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 0, 1]]
    assert data.final_relevance.toarray().tolist() == [[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert data.coverage == {
        "cold_test_users": 1, "cold_test_pairs": 1, "unknown_video_pairs": 1, "repeat_pairs": 1
    }
    assert data.judged_users().tolist() == [0, 1]
    assert data.summary()["final_users"] == 1


def test_from_split_reads_the_split_directory(tmp_path) -> None:
    train, test = small_split()
    write_dataset(train, tmp_path / "train")
    (tmp_path / "test").mkdir()
    test.write_parquet(tmp_path / "test" / "events.parquet")
    data = EvaluationData.from_split(tmp_path)
    assert data.candidate_relevance.nnz == 3 and data.final_relevance.nnz == 1


def synthetic_platform(
    seed: int = 0, n_users: int = 120, n_videos: int = 60
) -> tuple[Dataset, pl.DataFrame]:
    """Users who watch within one of four taste groups, over 40 days, split at 75%."""
    rng = np.random.default_rng(seed)
    n_events = n_users * 30
    user = rng.integers(0, n_users, n_events)
    group = user % 4
    video = (group + 4 * rng.integers(0, n_videos // 4, n_events)) % n_videos
    watch = rng.uniform(5, 120, n_events)
    ev = pl.DataFrame(
        {
            "user_id": pl.Series([f"u{u}" for u in user]),
            "video_id": pl.Series([f"v{v}" for v in video]),
            "ts": [T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 40 * 24 * 60, n_events)],
            "event": ["watch"] * n_events,
            "watch_seconds": watch,
        },
        schema_overrides={"ts": TIMESTAMP},
    )
    vids = videos([f"v{v}" for v in range(n_videos)])
    train_ev, test_ev = temporal_holdout(ev, 0.25)
    users = pl.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return Dataset(train_ev, vids, users), test_ev


def test_no_training_interaction_is_ever_relevant() -> None:
    data = EvaluationData.from_frames(*synthetic_platform())
    assert data.candidate_relevance.multiply(data.train).nnz == 0
    assert data.final_relevance.multiply(data.train).nnz == 0
    # completed test pairs are a subset of interacted ones
    assert data.final_relevance.multiply(data.candidate_relevance).nnz == data.final_relevance.nnz


def test_validation_carve_stays_inside_the_training_period() -> None:
    data = EvaluationData.from_frames(*synthetic_platform())
    X_fit, X_valid = data.validation_matrices(0.2)
    assert X_fit.nnz > 0 and X_valid.nnz > 0
    assert X_fit.multiply(X_valid).nnz == 0
    assert X_fit.multiply(data.train).nnz == X_fit.nnz  # everything comes from training
    assert X_valid.multiply(data.train).nnz == X_valid.nnz
    assert X_valid.multiply(data.candidate_relevance).nnz == 0  # the test is never touched


def small_specs() -> list[BaselineSpec]:
    return [
        BaselineSpec("most-popular", MostPopular, {}, {}),
        BaselineSpec("EASE", EASE, {"lambda_": [10.0, 100.0]}, {"lambda_": 10.0}),
        BaselineSpec("iALS", IALS, {"factors": [8], "alpha": [1.0, 10.0], "iterations": [5]},
                     {"factors": 8, "iterations": 5}),
    ]


def test_evaluate_baselines_builds_one_row_per_model() -> None:
    data = EvaluationData.from_frames(*synthetic_platform())
    tables: dict[str, pl.DataFrame] = {}
    results = evaluate_baselines(data, ks=(5, 10), baselines=small_specs(), tuning_tables=tables)
    assert results["model"].to_list() == ["most-popular", "EASE", "iALS"]
    for column in ("cand_recall@5", "cand_recall@10", "final_ndcg@10", "final_recall@10",
                   "final_precision@10", "fit_seconds", "tune_seconds", "params"):
        assert column in results.columns
    metrics = results.select(pl.col("^(cand|final)_.*$")).to_numpy()
    assert ((metrics >= 0) & (metrics <= 1)).all()
    assert set(tables) == {"EASE", "iALS"} and tables["iALS"].height == 2
    chosen = json.loads(results.filter(pl.col("model") == "EASE")["params"][0])
    assert chosen["lambda_"] in (10.0, 100.0)
    # the personalised models beat popularity on this clustered platform
    recall = dict(results.select("model", "cand_recall@10").rows())
    assert recall["EASE"] > recall["most-popular"] and recall["iALS"] > recall["most-popular"]


def test_baseline_recommendations_never_include_excluded_items() -> None:
    data = EvaluationData.from_frames(*synthetic_platform())
    users = np.arange(len(data.users))
    for model in (MostPopular(), EASE(lambda_=10.0), IALS(factors=8, iterations=5)):
        recs = model.fit(data.train).recommend(users, 20, exclude=data.exclude)
        rows = np.repeat(users, 20)
        valid = recs.ravel() != NO_ITEM
        assert data.exclude[rows[valid], recs.ravel()[valid]].sum() == 0


def test_evaluate_recommendations_rejects_training_items_and_bad_shapes() -> None:
    data = EvaluationData.from_frames(*small_split())
    leaky = np.array([[0, 2, 3], [4, 0, 2]])  # user 0 was trained on video 0
    with pytest.raises(ValueError, match="interacted with in training"):
        evaluate_recommendations(data, leaky, "leaky", ks=(3,), final_k=3)
    with pytest.raises(ValueError, match="rows"):
        evaluate_recommendations(data, np.array([[2, 3, 4]]), "short", ks=(3,), final_k=3)
    good = np.array([[2, 3, NO_ITEM], [4, 0, 2]])
    row = evaluate_recommendations(data, good, "mine", ks=(1, 3), final_k=1)
    assert row["cand_recall@1"][0] == pytest.approx((0.5 + 1.0) / 2)
    assert row["final_ndcg@1"][0] == 1.0 and row["n_final_users"][0] == 1


def test_report_table_and_json(tmp_path) -> None:
    results = pl.DataFrame({"model": ["a"], "params": ["{}"], "x": [0.123456], "y": [float("nan")]})
    text = format_table(results)
    assert text.splitlines()[0] == "| model | x | y |" and "0.1235" in text and "nan" in text
    path = write_json(results, tmp_path / "r.json", {"split": "s"})
    payload = json.loads(path.read_text())
    assert payload["meta"] == {"split": "s"} and payload["results"][0]["y"] is None


def test_interaction_matrix_drops_unknown_ids() -> None:
    pairs = pl.DataFrame({"user_id": ["a", "a", "b", "z"], "video_id": ["x", "x", "y", "x"]})
    X = interaction_matrix(pairs, IdMap(["a", "b"]), IdMap(["x", "y"]))
    assert X.toarray().tolist() == [[1, 0], [0, 1]]
