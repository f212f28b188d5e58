"""Videos added to a running system: checked by the ingestion rules before anything sees them.

An upload is a row of the canonical videos table. It is validated exactly as ingestion
validates the videos table (:mod:`vidrec.data.validation`), and additionally refused when
its id is already in the catalogue the recommender serves (``duplicate_key``).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from vidrec.data.schema import EVENTS_REQUIRED, USERS_REQUIRED
from vidrec.data.validation import QUARANTINE_SCHEMA, ROW, ValidationConfig, validate
from vidrec.errors import DataError

SOURCE = "uploads"
_IN_CATALOGUE = "this video id is already in the catalogue (removed videos keep their id); give the upload a new id"


def validate_uploads(
    videos: pl.DataFrame, catalogue: pl.DataFrame, now: datetime | None = None, source: str = SOURCE
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows as the catalogue's columns and types, quarantine rows with 1-based ``source_row``).

    Raises :class:`DataError` when a required column is missing altogether.
    """
    rows = videos if ROW in videos.columns else videos.with_row_index(ROW, offset=1)
    taken = pl.col("video_id").cast(pl.String).is_in(catalogue["video_id"].implode())
    result = validate(
        pl.DataFrame(schema=EVENTS_REQUIRED),
        rows.filter(~taken.fill_null(False)),
        pl.DataFrame(schema=USERS_REQUIRED),
        sources={"videos": source},
        config=ValidationConfig(now=now),
    )
    dup = rows.filter(taken.fill_null(False))
    duplicates = dup.select(
        table=pl.lit("videos"),
        source_file=pl.lit(source),
        source_row=pl.col(ROW).cast(pl.Int64),
        field=pl.lit("video_id"),
        value=pl.col("video_id").cast(pl.String),
        reason=pl.lit("duplicate_key"),
        hint=pl.lit(_IN_CATALOGUE),
        record=pl.struct(pl.all().exclude(ROW)).struct.json_encode(),
    )
    quarantine = pl.concat([result.quarantine, duplicates.cast(QUARANTINE_SCHEMA)]).sort("source_row")
    return conform(result.dataset.videos, catalogue), quarantine


def conform(videos: pl.DataFrame, catalogue: pl.DataFrame) -> pl.DataFrame:
    """``videos`` with exactly the catalogue's columns and types (absent optional ones null)."""
    cols = [
        pl.col(c).cast(t) if c in videos.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in catalogue.schema.items()
    ]
    return videos.select(cols)


def upload_error(quarantine: pl.DataFrame, total: int, shown: int = 5) -> DataError:
    """A readable error naming the first bad rows: 'row N, field F, value V: reason'."""
    lines = [
        f"row {r['source_row']}, field {r['field']!r}, value {r['value']!r}: {r['reason']} ({r['hint']})"
        for r in quarantine.head(shown).iter_rows(named=True)
    ]
    more = f"; and {quarantine.height - shown} more" if quarantine.height > shown else ""
    return DataError(
        f"{quarantine.height} of {total} uploaded videos are invalid: " + "; ".join(lines) + more,
        "fix those rows as each hint says and send them again (the valid rows were not added)",
    )
