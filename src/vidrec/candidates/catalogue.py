"""Index keys of the two-tower's catalogue: the model's vocabulary plus videos uploaded since.

The top-K index stores int64 keys. A video the model was trained on keeps the key it has
always had, its vocabulary index + 1 (0 means "unknown"); a video outside the vocabulary
(uploaded after training, embedded from its content alone) gets the next free key after
the vocabulary and every earlier upload. Keys never change once given, so an index, its
exclusions and its saved files stay consistent while uploads arrive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from vidrec.data.ids import IdMap

EXTRA_FILE = "catalogue_extra.parquet"


class CatalogueKeys:
    """Video id <-> index key: vocabulary videos ``1..V``, later uploads ``V+1, V+2, ...``.

    Example:
        >>> keys = CatalogueKeys(IdMap(["a", "b"]))
        >>> keys.extend(pl.Series(["c", "a"])).tolist()
        [3, 1]
        >>> keys.to_ids(np.array([3, 2])).to_list()
        ['c', 'b']
    """

    def __init__(self, vocab: IdMap, extra: pl.Series | None = None) -> None:
        self.vocab = vocab
        self._extra = IdMap([] if extra is None else extra)

    def __len__(self) -> int:
        """How many keys are given (vocabulary and uploads)."""
        return len(self.vocab) + len(self._extra)

    @property
    def max_key(self) -> int:
        """The largest key given so far (0 for an empty catalogue)."""
        return len(self)

    @property
    def extra_ids(self) -> pl.Series:
        """Videos outside the vocabulary, in key order."""
        return self._extra.ids

    def keys(self, video_ids: pl.Series | list[str]) -> np.ndarray:
        """int64 key of each id; 0 for ids never given a key."""
        ids = pl.Series("id", video_ids, dtype=pl.String)
        known = self.vocab.to_index(ids) + 1  # 0 where not in the vocabulary
        if len(self._extra) == 0:
            return known
        extra = self._extra.to_index(ids)
        return np.where(known > 0, known, np.where(extra >= 0, extra + 1 + len(self.vocab), 0))

    def extend(self, video_ids: pl.Series | list[str]) -> np.ndarray:
        """Give every id without a key the next free one; return the keys of all ``video_ids``."""
        ids = pl.Series("id", video_ids, dtype=pl.String)
        new = ids.filter(pl.Series(self.keys(ids) == 0)).unique(maintain_order=True)
        if len(new):
            self._extra = IdMap(pl.concat([self._extra.ids, new.rename("id")]))
        return self.keys(ids)

    def to_ids(self, keys: np.ndarray) -> pl.Series:
        """The video id of each key (every key must have been given)."""
        k = np.asarray(keys, dtype=np.int64)
        if k.size and (k.min() < 1 or k.max() > len(self)):
            raise IndexError(f"catalogue keys must lie in 1..{len(self)}")
        every = pl.concat([self.vocab.ids, self._extra.ids], rechunk=False)  # key - 1 -> id
        return every.gather(k - 1).rename("video_id")

    def key_lists(self, lists: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """A list[str] column as CSR arrays of keys: (offsets (n+1,), keys); ids without a key dropped."""
        frame = pl.DataFrame({"v": lists}).with_row_index("row").explode("v").drop_nulls("v")
        keys = self.keys(frame["v"])
        keep = keys > 0
        counts = np.bincount(frame["row"].to_numpy()[keep], minlength=len(lists)).astype(np.int64)
        return np.concatenate([[0], np.cumsum(counts)]), keys[keep]

    def save(self, directory: str | Path) -> Path:
        """Write the uploads' ids (the vocabulary is saved with the model)."""
        path = Path(directory) / EXTRA_FILE
        self._extra.ids.rename("video_id").to_frame().write_parquet(path)
        return path

    @classmethod
    def load(cls, directory: str | Path, vocab: IdMap) -> CatalogueKeys:
        """Read what :meth:`save` wrote; a generator saved before uploads existed has none."""
        path = Path(directory) / EXTRA_FILE
        extra = pl.read_parquet(path)["video_id"] if path.exists() else None
        return cls(vocab, extra)
