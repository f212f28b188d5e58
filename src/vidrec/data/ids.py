"""One mapping between external string ids and the dense indices models use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


class IdMap:
    """A frozen, ordered vocabulary of string ids.

    Index ``i`` is the ``i``-th id given at construction. Unknown ids map to ``-1``
    (or raise, with ``strict=True``), so serving can tell a cold-start id apart.

    Example:
        >>> m = IdMap(["u7", "u3"])
        >>> m.to_index(["u3", "u9"]).tolist()
        [1, -1]
        >>> m.to_ids([0]).tolist()
        ['u7']
    """

    def __init__(self, ids: pl.Series | list[str] | np.ndarray) -> None:
        series = pl.Series("id", ids, dtype=pl.String)
        if series.null_count():
            raise ValueError("IdMap: ids must not be null")
        if series.n_unique() != len(series):
            raise ValueError("IdMap: ids must be unique; use IdMap.from_values to deduplicate")
        self._ids = series
        self._lookup = pl.DataFrame(
            {"id": series, "index": pl.Series(np.arange(len(series), dtype=np.int64))}
        )

    @classmethod
    def from_values(cls, values: pl.Series | list[str]) -> IdMap:
        """Build a map of the distinct values, in order of first appearance."""
        return cls(pl.Series("id", values, dtype=pl.String).drop_nulls().unique(maintain_order=True))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: str) -> bool:
        return bool(self._ids.is_in([item]).any())

    @property
    def ids(self) -> pl.Series:
        """The ids in index order."""
        return self._ids

    def to_index(self, ids: pl.Series | list[str] | np.ndarray, strict: bool = False) -> np.ndarray:
        """Map ids to indices (int64); unknown ids become -1, or raise if ``strict``."""
        query = pl.DataFrame({"id": pl.Series("id", ids, dtype=pl.String)})
        out = query.join(self._lookup, on="id", how="left", maintain_order="left")["index"]
        if strict and out.null_count():
            missing = query.filter(out.is_null())["id"].head(5).to_list()
            raise KeyError(f"unknown ids (first ones): {missing}")
        return out.fill_null(-1).to_numpy().astype(np.int64, copy=False)

    def to_ids(self, indices: np.ndarray | list[int]) -> pl.Series:
        """Map indices back to ids."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for an IdMap of {len(self)} ids")
        return self._ids.gather(idx)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as a one-column Parquet file."""
        self._ids.to_frame().write_parquet(path)

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        """Read a vocabulary written by :meth:`save`."""
        return cls(pl.read_parquet(path)["id"])
