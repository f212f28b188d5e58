import numpy as np
import pytest

from vidrec.candidates.index import ExactIndex, Exclusions, FaissIndex, IndexConfig, base


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_matches_argsort_oracle_with_exclusions():
    rng = np.random.default_rng(0)
    vecs, queries = unit(rng, 200, 16), unit(rng, 7, 16)
    ids = np.arange(1000, 1200)
    index = ExactIndex()
    index.add(ids, vecs)
    excl = [set(ids[rng.choice(200, 30, replace=False)].tolist()) for _ in range(7)]
    index.remove(ids[:5])
    scores, got = index.search(queries, 10, excl)
    full = queries @ vecs.T
    for row in range(7):
        order = [int(ids[j]) for j in np.argsort(-full[row]) if ids[j] not in excl[row] and j >= 5]
        assert got[row].tolist() == order[:10]
        assert np.allclose(scores[row], np.sort(full[row][np.isin(ids, order[:10])])[::-1], atol=1e-6)


def test_exact_search_in_chunks_is_the_same_search(monkeypatch):
    rng = np.random.default_rng(1)
    vecs, queries = unit(rng, 300, 8), unit(rng, 23, 8)
    index = ExactIndex()
    index.add(np.arange(300), vecs)
    excl = [set(rng.choice(300, 40, replace=False).tolist()) for _ in range(23)]
    whole = index.search(queries, 12, excl, blocked=np.arange(0, 300, 7))
    monkeypatch.setattr(base, "EXACT_CHUNK", 300 * 4)  # four queries per chunk
    chunked = index.search(queries, 12, excl, blocked=np.arange(0, 300, 7))
    # Same ids in the same order; the scores may differ in the last bit because BLAS
    # blocks a 4-row product differently from a 23-row one.
    assert np.array_equal(whole[1], chunked[1])
    assert np.allclose(whole[0], chunked[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("blocked", [None, np.arange(0, 300, 3)])
def test_faiss_flat_equals_exact(blocked):
    rng = np.random.default_rng(1)
    vecs, queries = unit(rng, 500, 32), unit(rng, 20, 32)
    ids = rng.permutation(5000)[:500].astype(np.int64)
    exact, flat = ExactIndex(), FaissIndex(32)
    for index in (exact, flat):
        index.add(ids, vecs)
        index.remove(ids[:10])
    excl = Exclusions.from_sets([set(ids[rng.choice(500, 50, replace=False)].tolist()) for _ in range(20)])
    s1, i1 = exact.search(queries, 25, excl, blocked=blocked)
    s2, i2 = flat.search(queries, 25, excl, blocked=blocked)
    assert flat.is_exact and exact.is_exact
    assert np.array_equal(i1, i2)
    assert np.allclose(s1, s2, atol=1e-5)
    assert not np.isin(i2, ids[:10]).any()


def test_hnsw_recall_against_exact():
    rng = np.random.default_rng(2)
    vecs, queries = unit(rng, 3000, 32), unit(rng, 50, 32)
    ids = np.arange(3000)
    exact, hnsw = ExactIndex(), FaissIndex(32, IndexConfig(kind="hnsw", ef_search=128))
    for index in (exact, hnsw):
        index.add(ids, vecs)
    _, want = exact.search(queries, 50)
    _, got = hnsw.search(queries, 50)
    recall = np.mean([len(set(a) & set(b)) / 50 for a, b in zip(want, got)])
    assert not hnsw.is_exact
    assert recall >= 0.95


def test_short_rows_are_padded_and_save_load_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    vecs = unit(rng, 5, 4)
    for index in (ExactIndex(), FaissIndex(4)):
        index.add(np.arange(5), vecs)
        index.remove(np.array([0]))
        scores, got = index.search(vecs[:2], 6, [{1}, set()])
        assert (got[0] == -1).sum() == 3 and (got[1] == -1).sum() == 2
        assert np.isneginf(scores[got == -1]).all()
        assert 0 not in got and 1 not in got[0]
        index.save(tmp_path / type(index).__name__)
        again = type(index).load(tmp_path / type(index).__name__)
        assert np.array_equal(again.search(vecs[:2], 6, [{1}, set()])[1], got)
        index.restore(np.array([0]))
        assert index.search(vecs[:1], 1)[1][0, 0] == 0


def test_add_rejects_duplicates_and_bad_shapes():
    index = ExactIndex()
    index.add(np.arange(3), np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([2]), np.eye(1, 3, dtype=np.float32))
    with pytest.raises(ValueError, match="vectors"):
        index.add(np.array([7]), np.eye(2, 3, dtype=np.float32))
    with pytest.raises(ValueError, match="rows"):
        index.search(np.eye(3, dtype=np.float32), 1, [set()])


def test_exclusions_from_lists_matches_from_sets():
    import polars as pl

    a = Exclusions.from_lists(pl.Series([[1, 2], [], None, [5]]))
    assert a.offsets.tolist() == [0, 2, 2, 2, 3] and a.ids.tolist() == [1, 2, 5]
