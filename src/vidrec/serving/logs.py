"""Log formats of the service: readable text (the default) or one JSON object per line.

JSON is for log pipelines (Loki, Elasticsearch, CloudWatch): every record is an object with
``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; an access record
(:mod:`vidrec.serving.metrics`) carries ``method``, ``path`` (the route template, never the
raw path with its ids), ``status``, ``seconds``, ``request_id`` and ``client`` instead of a
message, so a request can be found by the ``X-Request-ID`` its client saw.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Each record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out |= access
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def formatter(kind: LogFormat) -> logging.Formatter:
    """The formatter of ``kind``: ``text`` is :data:`TEXT_FORMAT`, ``json`` is :class:`JsonFormatter`."""
    if kind not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {kind!r}")
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)


def use_format(kind: LogFormat) -> None:
    """Give every handler of the root logger the formatter of ``kind`` (one stream, one format)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(formatter(kind))
