"""Requests that arrive together are served together.

A request costs a few milliseconds of CPU, much of it fixed per call (a network pass, a
feature pass). Under load many requests wait at once; :class:`SlateBatcher` hands all the
ones waiting to :meth:`Recommender.slates` in one batch, so each stage runs once for all of
them. A lone request is a batch of one, served at once; while requests keep arriving
together, a batch waits ``linger_s`` (2 ms) for the clients just answered to come back, so
they join it instead of forming a second small batch behind it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from vidrec.serving.deps import SlateRecommender

log = logging.getLogger(__name__)


class LoadShare:
    """How many waiting requests a free worker takes: its part of the requests in the system lately.

    Under a steady load the requests in the system (waiting and in service) peak at about
    the number of clients. When each worker takes its part of that peak, batches stay even;
    when a worker takes whatever waits, batches alternate between large, slow ones and
    small ones that pay the fixed cost of a pass for one or two requests (with 16 clients
    on 2 workers: batches of 1 to 15 instead of 8, and a p99 40% higher). The peak decays
    with ``decay_s`` so that the share follows the load down.
    """

    def __init__(self, max_batch: int, decay_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch < 1 or decay_s <= 0:
            raise ValueError(f"LoadShare needs max_batch >= 1 and decay_s > 0, got {max_batch} and {decay_s}")
        self.max_batch, self.decay_s, self.clock = max_batch, decay_s, clock
        self.peak = 0.0
        self._seen = clock()

    def __call__(self, in_system: int, workers: int) -> int:
        """The share of one of ``workers`` with ``in_system`` requests waiting or in service now."""
        now = self.clock()
        self.peak = max(float(in_system), self.peak * math.exp((self._seen - now) / self.decay_s))
        self._seen = now
        return max(1, min(self.max_batch, -(-round(self.peak) // max(1, workers))))

    @property
    def concurrent(self) -> bool:
        """Whether requests have lately been arriving together (then a batch is worth a wait)."""
        return round(self.peak) > 1


class SlateBatcher:
    """Collects the slate requests of one event-loop turn and serves them in one call."""

    def __init__(self, recommender: SlateRecommender, max_batch: int = 16, linger_s: float = 0.002) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not 0 <= linger_s < 1:
            raise ValueError(f"linger_s must be in [0, 1), got {linger_s}")
        self.recommender, self.max_batch, self.linger_s = recommender, max_batch, linger_s
        self._last = 1  # size of the last batch: above 1 means requests are arriving together
        self._pending: list[tuple[str, int, asyncio.Future]] = []
        self._scheduled = False
        self.batches = 0  # served so far, and their requests: the mean batch size is requests / batches
        self.requests = 0
        self.on_batch: Callable[[int], None] | None = None  # told each batch's size (metrics)

    async def slate(self, user_id: str, k: int) -> list[dict[str, Any]]:
        """The user's slate, computed with whatever other requests are waiting now."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((user_id, k, future))
        if not self._scheduled:
            self._scheduled = True
            if self._last > 1 and self.linger_s:  # under load: wait a moment for the clients just answered
                loop.call_later(self.linger_s, self._serve)
            else:  # one loop turn later: the requests read with this one join it
                loop.call_soon(loop.call_soon, self._serve)
        return await future

    async def explain(self, user_id: str, k: int) -> dict[str, list[dict[str, Any]]]:
        """One pass of its own (debug views are rare): the slate and what re-ranking left out."""
        return self.recommender.explain(user_id, k)

    def _serve(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._scheduled = bool(self._pending)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._serve)
        self.batches += 1
        self.requests += len(batch)
        self._last = len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch))
        if self.batches % 200 == 0:
            log.info("served %d slate requests in %d batches", self.requests, self.batches)
        try:
            slates = self.recommender.slates([(user, k) for user, k, _ in batch])
        except Exception:  # one request's failure must not fail the others: serve them one by one
            log.exception("a batch of %d slates failed; serving them one by one", len(batch))
            for user, k, future in batch:
                try:
                    future.set_result(self.recommender.slate(user, k))
                except Exception as exc:  # reaches that request's handler (a 500)
                    future.set_exception(exc)
            return
        for (_, _, future), slate in zip(batch, slates):
            if not future.done():
                future.set_result(slate)
