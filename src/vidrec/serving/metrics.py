"""Prometheus metrics and request ids for the HTTP service.

``GET /metrics`` exposes, in the Prometheus text format: requests by route, method and
status; request latency histograms by route; slate batches and their sizes (how well
requests are being served together). Every answer carries an ``X-Request-ID`` (the
client's, when it sent a sane one, else a new one), logged with the errors it meets.
"""

from __future__ import annotations

import re
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32)
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


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
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
