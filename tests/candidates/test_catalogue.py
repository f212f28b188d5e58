"""The catalogue key map: vocabulary keys never move, uploads get fresh unique keys."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from vidrec.candidates.catalogue import CatalogueKeys
from vidrec.data.ids import IdMap


def test_exact_keys_after_vocabulary():
    keys = CatalogueKeys(IdMap(["a", "b", "c"]))
    assert keys.keys(pl.Series(["c", "x", "a"])).tolist() == [3, 0, 1]
    assert keys.extend(pl.Series(["x", "b", "y", "x"])).tolist() == [4, 2, 5, 4]
    assert keys.keys(pl.Series(["y", "x", "zz"])).tolist() == [5, 4, 0]
    assert keys.to_ids(np.array([5, 1, 4])).to_list() == ["y", "a", "x"]
    assert keys.max_key == 5 and keys.extra_ids.to_list() == ["x", "y"]
    offsets, ids = keys.key_lists(pl.Series([["a", "nope", "y"], [], None, ["x"]], dtype=pl.List(pl.String)))
    assert offsets.tolist() == [0, 2, 2, 2, 3] and ids.tolist() == [1, 5, 4]


def test_save_load_keeps_uploads_and_old_saves_load(tmp_path):
    vocab = IdMap(["a", "b"])
    keys = CatalogueKeys(vocab)
    keys.extend(["n1", "n2"])
    keys.save(tmp_path)
    back = CatalogueKeys.load(tmp_path, vocab)
    assert back.keys(["n2", "n1", "b"]).tolist() == [4, 3, 2]
    old = CatalogueKeys.load(tmp_path / "missing", vocab)  # a generator saved before uploads existed
    assert len(old) == 2 and old.keys(["n1"]).tolist() == [0]


ids = st.text(alphabet="abcdef", min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(vocab=st.lists(ids, unique=True, max_size=12), batches=st.lists(st.lists(ids, max_size=6), max_size=4))
def test_keys_unique_and_vocabulary_keys_unchanged(vocab, batches):
    keys = CatalogueKeys(IdMap(vocab))
    before = keys.keys(vocab)
    for batch in batches:
        got = keys.extend(batch)
        assert (got > 0).all()
    assert keys.keys(vocab).tolist() == before.tolist() == list(range(1, len(vocab) + 1))
    every = list(dict.fromkeys(vocab + [v for b in batches for v in b]))
    k = keys.keys(every)
    assert len(set(k.tolist())) == len(every) == keys.max_key  # one key per video, no gaps
    assert keys.to_ids(k).to_list() == every
