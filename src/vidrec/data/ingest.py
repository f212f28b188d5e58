"""Ingestion: load a source, validate every row, write a clean data directory.

The output directory holds the three canonical tables, ``quarantine.parquet`` (every
rejected row with its reason and source row) and ``ingest.json`` (counts and notes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from vidrec.data.dataset import TABLE_NAMES
from vidrec.data.validation import ValidationConfig, ValidationResult, validate
from vidrec.errors import DataError
from vidrec.progress import bar

QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "ingest.json"


@dataclass
class IngestResult:
    """What ingestion did: the validation result, where it wrote, and mapping notes."""

    validation: ValidationResult
    out_dir: Path | None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Counts per table and reason, then the adapter's notes on its mapping."""
        text = self.validation.summary()
        if self.notes:
            text += "\nnotes:\n" + "\n".join(f"  - {n}" for n in self.notes)
        return text


def ingest_tables(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    users: pl.DataFrame,
    out_dir: str | Path | None,
    *,
    sources: dict[str, str] | None = None,
    notes: list[str] | None = None,
    strict: bool = False,
    config: ValidationConfig | None = None,
) -> IngestResult:
    """Validate the tables and write the clean data directory (unless ``out_dir`` is None).

    With ``strict`` any invalid row raises :class:`DataError` listing the first problems
    and nothing is written.
    """
    result = validate(events, videos, users, sources=sources, config=config)
    if strict and not result.ok:
        n = result.quarantine.height
        listing = "\n".join("  " + e for e in result.errors(10))
        raise DataError(
            f"{n:,} invalid row(s) found; the first ones:\n{listing}",
            "fix these rows at the source, or run without --strict to keep the valid rows "
            f"and write the invalid ones to {QUARANTINE_FILE}",
        )
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tables = {f"{n}.parquet": result.dataset.table(n) for n in TABLE_NAMES} | {QUARANTINE_FILE: result.quarantine}
        for name, table in bar(tables.items(), len(tables), "writing", unit="table"):
            table.write_parquet(out / name)
        report = {
            "rows_in": result.rows_in,
            "rows_kept": {n: result.dataset.table(n).height for n in TABLE_NAMES},
            "quarantined": result.counts().to_dicts(),
            "sources": sources or {},
            "notes": notes or [],
        }
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str))
    return IngestResult(result, out, list(notes or []))
