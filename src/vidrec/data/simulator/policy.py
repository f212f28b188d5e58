"""The logging policy: which videos the platform showed, and so what the logs can see.

It is deliberately not uniform, as no real log is: it mixes a popularity source (past
views, rich get richer), a personalised source driven by a *noisy* estimate of the
user's interests, and a fresh-uploads source. Models trained on the logs inherit this
exposure bias, which is the point.
"""

from __future__ import annotations

import numpy as np

from vidrec.data.simulator.behaviour import US_PER_DAY
from vidrec.data.simulator.world import World

FRESH_WINDOW_DAYS = 3  # the fresh source shows uploads of the last three days
BOOST_DAYS = 3.0  # e-folding time of the policy's boost for new uploads


class LoggingPolicy:
    """Samples impressions for a day, given each video's views so far."""

    def __init__(self, world: World) -> None:
        self.world = world
        cfg = world.config
        self.by_topic = np.argsort(world.topic, kind="stable")  # videos grouped by topic
        counts = np.bincount(world.topic, minlength=cfg.topics)
        self.topic_end = np.cumsum(counts)  # exclusive end of each topic in by_topic order
        self.topic_start = self.topic_end - counts

    def eligible(self, day: int) -> np.ndarray:
        """Videos that can be shown on ``day``: uploaded before it, not yet removed."""
        w = self.world
        return (w.upload_day < day) & (w.removal_day > day)

    def fresh_pool(self, day: int) -> np.ndarray:
        """Mask of the videos the fresh source draws from on ``day`` (uniformly)."""
        return self.eligible(day) & (self.world.upload_day >= day - FRESH_WINDOW_DAYS)

    def weights(self, day: int, views: np.ndarray) -> np.ndarray:
        """Popularity weight of each video at the start of ``day`` (0 if not showable)."""
        w, cfg = self.world, self.world.config
        age_days = (w.start_us + day * US_PER_DAY - w.uploaded_us) / US_PER_DAY
        boost = 1.0 + cfg.policy_fresh_boost * np.exp(-np.maximum(age_days, 0.0) / BOOST_DAYS)
        popularity = (1.0 + w.prior_views + views) ** cfg.policy_popularity_power
        return np.where(self.eligible(day), popularity * boost, 0.0)

    def sample(self, day: int, views: np.ndarray, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One video index per entry of ``users`` (dense user indices), for ``day``."""
        cfg, world = self.world.config, self.world
        n = users.size
        weight = self.weights(day, views)[self.by_topic]  # (videos,) in topic order
        cum = np.cumsum(weight)
        if n == 0 or cum[-1] <= 0.0:
            return np.full(n, -1, dtype=np.int64)
        positions = np.arange(weight.size)
        last_positive = np.maximum.accumulate(np.where(weight > 0.0, positions, -1))
        before = np.where(self.topic_start > 0, cum[np.maximum(self.topic_start - 1, 0)], 0.0)
        total = np.where(self.topic_end > self.topic_start, cum[np.maximum(self.topic_end - 1, 0)] - before, 0.0)

        source, r = rng.random(n), rng.random(n)
        # Popular source, also the fallback of the others.
        pos = np.minimum(np.searchsorted(cum, r * cum[-1], side="right"), weight.size - 1)
        # Personalised source: a topic from the policy's noisy estimate, then by popularity.
        personal = source < cfg.policy_personal_share
        k = cfg.topics
        flat = users[personal] + rng.random(int(personal.sum()))
        topic = np.clip(np.searchsorted(world.policy_cdf, flat, side="right") - users[personal] * k, 0, k - 1)
        ok = total[topic] > 0.0
        target = before[topic] + r[personal] * total[topic]
        topic_pos = np.minimum(np.searchsorted(cum, target, side="right"), self.topic_end[topic] - 1)
        pos[np.flatnonzero(personal)[ok]] = topic_pos[ok]
        pos = self.by_topic[last_positive[pos]]
        # Fresh source: uniform over showable uploads of the last few days.
        fresh_pool = np.flatnonzero(self.fresh_pool(day))
        fresh = (source >= cfg.policy_personal_share) & (source < cfg.policy_personal_share + cfg.policy_fresh_share)
        if fresh_pool.size:
            pos[fresh] = fresh_pool[rng.integers(0, fresh_pool.size, size=int(fresh.sum()))]
        return pos.astype(np.int64)
