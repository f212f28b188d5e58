"""Reports: the comparison table as Markdown for people and as JSON for machines."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import polars as pl

HIDDEN_COLUMNS: tuple[str, ...] = ("params",)
"""Columns left out of the printed table (they stay in the JSON)."""


def format_table(
    results: pl.DataFrame, digits: int = 4, hide: tuple[str, ...] = HIDDEN_COLUMNS
) -> str:
    """Render a results frame as a Markdown table; floats to ``digits`` places."""
    columns = [c for c in results.columns if c not in hide]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in results.select(columns).iter_rows():
        lines.append("| " + " | ".join(_cell(value, digits) for value in row) + " |")
    return "\n".join(lines)


def write_json(
    results: pl.DataFrame, path: str | Path, meta: Mapping[str, object] | None = None
) -> Path:
    """Write ``{"meta": ..., "results": [row, ...]}``; NaN becomes null so any reader copes."""
    rows = [{k: _json_value(v) for k, v in row.items()} for row in results.iter_rows(named=True)]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": dict(meta or {}), "results": rows}, indent=2) + "\n")
    return out


def print_report(
    results: pl.DataFrame, summary: Mapping[str, object] | None = None, title: str | None = None
) -> str:
    """Print (and return) an optional title, the data summary and the table."""
    parts = [f"## {title}"] if title else []
    if summary:
        parts.append(", ".join(f"{k}={v}" for k, v in summary.items()))
    parts.append(format_table(results))
    text = "\n\n".join(parts)
    print(text)
    return text


def _cell(value: object, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
