"""The id map round-trips external ids and marks unknown ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidrec.data.ids import IdMap


@given(st.lists(st.text(min_size=1, max_size=8), unique=True, min_size=1, max_size=50))
def test_round_trip(ids) -> None:
    m = IdMap(ids)
    idx = m.to_index(ids)
    assert idx.tolist() == list(range(len(ids)))
    assert m.to_ids(idx).to_list() == ids


def test_unknown_and_strict(tmp_path) -> None:
    m = IdMap.from_values(["b", "a", "b", None])
    assert m.ids.to_list() == ["b", "a"]
    assert m.to_index(["a", "zz"]).tolist() == [1, -1]
    with pytest.raises(KeyError, match="zz"):
        m.to_index(["zz"], strict=True)
    m.save(tmp_path / "ids.parquet")
    assert IdMap.load(tmp_path / "ids.parquet").ids.to_list() == ["b", "a"]
    with pytest.raises(IndexError):
        m.to_ids(np.array([2]))
    with pytest.raises(ValueError, match="unique"):
        IdMap(["a", "a"])
