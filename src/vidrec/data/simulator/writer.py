"""Writing the simulated tables: events in chunks (one per day), so memory stays bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from vidrec.data.schema import EVENT_KINDS

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("event", pa.string()),
        pa.field("watch_seconds", pa.float64()),
    ]
)
"""The canonical events schema (see vidrec.data.schema) as Arrow types."""

KIND_CODE = {kind: i for i, kind in enumerate(EVENT_KINDS)}


class EventsWriter:
    """Appends chunks of events, given as dense indices, to one Parquet file.

    Ids are looked up with Arrow ``take`` so no Python string is built per event.
    """

    def __init__(self, path: Path, user_ids: pl.Series, video_ids: pl.Series) -> None:
        self.path = path
        self._users = user_ids.to_arrow().cast(pa.string())
        self._videos = video_ids.to_arrow().cast(pa.string())
        self._kinds = pa.array(list(EVENT_KINDS), type=pa.string())
        self._writer = pq.ParquetWriter(path, EVENTS_SCHEMA, compression="zstd")
        self.rows = 0

    def write(
        self, user: np.ndarray, video: np.ndarray, ts_us: np.ndarray, kind: np.ndarray, watch_seconds: np.ndarray
    ) -> None:
        """Write one chunk; ``watch_seconds`` is NaN where it does not apply (written as null)."""
        table = pa.Table.from_arrays(
            [
                self._users.take(pa.array(user, type=pa.int64())),
                self._videos.take(pa.array(video, type=pa.int64())),
                pa.array(ts_us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                self._kinds.take(pa.array(kind, type=pa.int8())),
                pa.array(watch_seconds, type=pa.float64(), mask=np.isnan(watch_seconds)),
            ],
            schema=EVENTS_SCHEMA,
        )
        self._writer.write_table(table, row_group_size=1 << 20)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> EventsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
