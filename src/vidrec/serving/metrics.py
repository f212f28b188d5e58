"""Prometheus metrics, request ids and the access log of the HTTP service.

``GET /metrics`` exposes, in the Prometheus text format: requests by route, method and
status; request latency histograms by route; slate batches and their sizes (how well
requests are being served together); the seconds of each stage per slate request and of
the online store's reads and writes (timed where the model runs, in a worker process with
``--workers N``, and observed here); error answers by kind. Every answer carries an
``X-Request-ID`` (the client's, when it sent a sane one, else a new one), logged with the
errors it meets and in the access log (logger ``vidrec.access``, one record per request).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32)
_STEP_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
STAGES = ("candidates", "scoring", "reranking")
STORE_OPS = ("read", "write")
ERROR_KINDS = {413: "body_too_large", 404: "not_found", 405: "method_not_allowed", 500: "internal"}
"""An error answer's kind when no handler named it (the body limit, unmatched routes, crashes)."""
access_log = logging.getLogger("vidrec.access")


class Metrics:
    """The service's metrics, in a registry of their own (several apps in one process do not mix)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("vidrec_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("vidrec_http_request_seconds", "time from request to the end of the answer",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.batch = Histogram("vidrec_slate_batch_size", "slate requests served together in one pass",
                               buckets=_BATCH_BUCKETS, registry=self.registry)  # fmt: skip
        self.stages = Histogram("vidrec_stage_seconds", "seconds of one stage per slate request (a batch's time "
                                "shared by its requests)", ["stage"], buckets=_STEP_BUCKETS, registry=self.registry)
        self.store = Histogram("vidrec_store_seconds", "online store reads (a batch's user records and the feed) "
                               "and writes (a batch of events, uploads or removals applied)", ["op"],
                               buckets=_STEP_BUCKETS, registry=self.registry)  # fmt: skip
        self.errors = Counter("vidrec_errors", "error answers (4xx, 5xx) by kind and status", ["kind", "status"],
                              registry=self.registry)  # fmt: skip
        for stage in STAGES:  # every series from the start, at zero
            self.stages.labels(stage)
        for op in STORE_OPS:
            self.store.labels(op)

    def timing(self, kind: str, name: str, seconds: float) -> None:
        """Observe a step the recommender timed (:data:`vidrec.recommender.Timing`)."""
        if kind == "stage":
            self.stages.labels(name).observe(seconds)
        elif kind == "store":
            self.store.labels(name).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Instrument:
    """ASGI middleware: counts and times every HTTP request by its route template (never the raw
    path, whose user ids would make one series per user) and sets ``X-Request-ID``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id")
        request_id = given if given is not None and _SANE_ID.fullmatch(given) else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method, seconds = scope["method"], time.perf_counter() - start
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(seconds)
            if status >= 400:
                kind = scope["state"].get("error_kind") or ERROR_KINDS.get(status, f"http_{status}")
                self.metrics.errors.labels(kind, str(status)).inc()
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, route, status, seconds, request_id.decode())


def _log_access(scope: Scope, route: str, status: int, seconds: float, request_id: str) -> None:
    """One access record: a readable line, and the fields a JSON log writes (``access``)."""
    client = scope.get("client")
    where = f"{client[0]}:{client[1]}" if client else "-"
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"] + (f"?{query}" if query else "")
    fields = {"method": scope["method"], "path": route, "status": status, "seconds": round(seconds, 6),
              "request_id": request_id, "client": where}  # fmt: skip
    access_log.info('%s "%s %s" %d %.1f ms id=%s', where, scope["method"], path, status, seconds * 1e3, request_id,
                    extra={"access": fields})  # fmt: skip
