"""Approximate indexes against the exact oracle: structure by size, tuned recall, add, remove, save."""

import json

import numpy as np
import pytest

from vidrec.candidates.index import (
    ExactIndex,
    FaissIndex,
    IndexConfig,
    build_index,
    load_index,
    recall_at_k,
)

DIM = 32


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float = 0.6) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(0, spread / np.sqrt(DIM), (n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20k clustered unit vectors under shuffled ids, and 200 queries from the same mixture."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(200, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids = rng.permutation(100_000)[:20_000].astype(np.int64)
    return ids, clustered(rng, 20_000, centres), clustered(rng, 200, centres)


@pytest.fixture(scope="module")
def built(corpus) -> dict[str, FaissIndex]:
    ids, vectors, _ = corpus
    out = {}
    for kind in ("hnsw", "ivfpq"):
        cfg = IndexConfig(
            kind=kind, hnsw_m=16, ef_construction=64, pq_m=4, target_recall=0.98, tune_k=50, tune_queries=200
        )
        index = build_index(DIM, cfg, ids=ids, vectors=vectors)
        assert isinstance(index, FaissIndex)
        out[kind] = index
    return out


def test_auto_chooses_structure_by_corpus_size():
    cfg = IndexConfig(flat_max=100, hnsw_max=1000)
    assert [cfg.resolve_kind(n) for n in (99, 100, 1000, 1001)] == ["flat", "hnsw", "hnsw", "ivfpq"]
    rng = np.random.default_rng(0)
    for n, kind in ((80, "flat"), (400, "hnsw"), (3000, "ivfpq")):
        x = rng.normal(size=(n, 8)).astype(np.float32)
        index = build_index(8, IndexConfig(flat_max=100, hnsw_max=1000, pq_m=4, pq_bits=4), ids=np.arange(n), vectors=x)
        assert isinstance(index, FaissIndex) and index.kind == kind
        assert index.is_exact == (kind == "flat")
        assert (index.tuning is None) == (kind == "flat")
    assert IndexConfig().kind == "auto" and IndexConfig().resolve_kind(1_000_000) == "hnsw"


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_tuned_recall_reaches_target_on_held_out_queries(corpus, built, kind):
    ids, vectors, queries = corpus
    index = built[kind]
    report = index.tuning
    assert report is not None and report.reached and report.recall >= 0.98
    assert report.params == index.params and set(index.params) == (
        {"ef_search"} if kind == "hnsw" else {"nprobe", "k_factor"}
    )
    _, want = index.oracle().search(queries, 50)
    _, got = index.search(queries, 50)
    assert recall_at_k(want, got) >= 0.97  # held-out queries: a little below the tuning sample
    if kind == "ivfpq":  # tuning must not just scan everything
        assert index.params["nprobe"] < index.nlist


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_scores_are_exact_inner_products(corpus, built, kind):
    ids, vectors, queries = corpus
    scores, got = built[kind].search(queries[:20], 30)
    pos = np.searchsorted(np.sort(ids), got)
    by_id = vectors[np.argsort(ids)][pos]  # (20, 30, d)
    # IVF-PQ re-scores with the full vectors, so its scores are exact too (not PQ estimates).
    assert np.allclose(scores, np.einsum("qd,qkd->qk", queries[:20], by_id), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_new_video_is_searchable_at_once_without_rebuild(corpus, kind):
    ids, vectors, queries = corpus
    cfg = IndexConfig(
        kind=kind, hnsw_m=16, ef_construction=64, pq_m=4, pq_bits=6, target_recall=0.9, tune_k=20, tune_queries=50
    )
    index = build_index(DIM, cfg, ids=ids[:3000], vectors=vectors[:3000])
    assert isinstance(index, FaissIndex)
    inner = index._index
    params = dict(index.params)
    new_ids = np.array([10**9, 10**9 + 1])
    index.add(new_ids, queries[:2])  # each new video is its own query's best match
    _, got = index.search(queries[:2], 5)
    assert got[:, 0].tolist() == new_ids.tolist()
    assert index._index is inner and index.params == params  # no rebuild, no retune
    assert len(index) == 3002


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_removed_videos_never_return_and_k_still_comes_back(corpus, built, kind):
    ids, vectors, queries = corpus
    index = built.get(kind) or build_index(DIM, IndexConfig(kind="flat"), ids=ids, vectors=vectors)
    rng = np.random.default_rng(11)
    removed = rng.choice(ids, 19_000, replace=False)  # 95% unavailable, 1,000 remain
    seen = [set(rng.choice(ids, 300, replace=False).tolist()) for _ in range(len(queries))]
    index.remove(removed)
    try:
        later = np.setdiff1d(ids, removed)[:100]  # e.g. not yet uploaded: blocked for this call
        scores, got = index.search(queries, 100, seen, blocked=later)
        assert (got >= 0).all() and np.isfinite(scores).all()  # k results: enough remain
        assert not np.isin(got, removed).any() and not np.isin(got, later).any()
        assert not any(set(row.tolist()) & s for row, s in zip(got, seen))
        oracle = index.oracle()
        _, want = oracle.search(queries, 100, seen, blocked=later)
        assert recall_at_k(want, got) >= (1.0 if kind == "flat" else 0.9)
    finally:
        index.restore(removed)
    assert index.search(queries[:1], 1)[1][0, 0] in set(ids.tolist())


def test_too_few_remaining_pads_instead_of_returning_removed(corpus, built):
    ids, _, queries = corpus
    index = built["hnsw"]
    keep = ids[:7]
    index.remove(np.setdiff1d(ids, keep))
    try:
        scores, got = index.search(queries[:3], 10)
        assert all(set(row[:7].tolist()) == set(keep.tolist()) for row in got)
        assert (got[:, 7:] == -1).all() and np.isneginf(scores[:, 7:]).all()
    finally:
        index.restore(np.setdiff1d(ids, keep))


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_save_load_round_trip_is_identical(tmp_path, corpus, built, kind):
    _, _, queries = corpus
    index = built[kind]
    index.remove(index.ids[:50])
    try:
        before = index.search(queries, 40, blocked=index.ids[50:60])
        index.save(tmp_path)
        again = load_index(tmp_path)
    finally:
        index.restore(index.ids[:50])
    assert isinstance(again, FaissIndex) and again.kind == kind
    assert again.params == index.params and again.tuning == index.tuning
    after = again.search(queries, 40, blocked=index.ids[50:60])
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0])
    meta = json.loads((tmp_path / "faiss_config.json").read_text())
    assert meta["params"] == index.params and meta["tuning"]["reached"]


def test_oracle_shares_vectors_and_removals(corpus, built):
    ids, vectors, _ = corpus
    index = built["hnsw"]
    index.remove(ids[:3])
    try:
        oracle = index.oracle()
    finally:
        index.restore(ids[:3])
    assert isinstance(oracle, ExactIndex)
    assert np.array_equal(oracle.ids, ids) and np.array_equal(oracle.vectors, vectors)
    assert np.array_equal(oracle.blocked, np.sort(ids[:3]))


def test_recall_at_k_exact_answers():
    want = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    got = np.array([[4, 3, 9, 8], [6, 5, 7, -1]])
    assert recall_at_k(want, got) == pytest.approx((0.5 + 1.0) / 2)


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "ivf"},
        {"hnsw_m": 0},
        {"target_recall": 1.5},
        {"flat_max": 10, "hnsw_max": 5},
        {"pq_m": -1},
        {"pq_bits": 17},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        IndexConfig(**bad)


def test_pq_m_must_divide_dimension():
    with pytest.raises(ValueError, match="divide"):
        IndexConfig(kind="ivfpq", pq_m=5).ivf_shape(10_000, 32)
