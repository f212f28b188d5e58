"""The simulator's one config object: sizes, seed and the knobs of the platform."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_START = datetime(2025, 6, 1, tzinfo=UTC)
"""Day 0 of every simulation unless overridden, so output is deterministic."""

EVENTS_PER_IMPRESSION = 1.23
"""Measured mean rows per impression (impression + watch + like/dislike) at defaults.

Used only to translate a target event count into ``impressions_per_user_day``.
"""


@dataclass(frozen=True)
class SimulatorConfig:
    """A simulated video platform: who is on it, what is on it, for how long.

    The defaults are the built-in demo data set (about 3,000 users, 2,000 videos,
    28 days, roughly 450k events, a few seconds to generate).
    """

    users: int = 3_000  # number of users (all signed up before day 0)
    videos: int = 2_000  # catalogue size: pre-existing plus uploaded during the run
    days: int = 28  # simulated days, one events chunk per day
    seed: int = 0  # everything is a function of (config, seed)
    start: datetime = DEFAULT_START  # midnight UTC of day 0
    topics: int = 36  # latent topics; each belongs to one of the 12 categories
    creators: int | None = None  # None: videos // 20 (at least 3)
    initial_video_share: float = 0.5  # share of the catalogue uploaded before day 0
    impressions_per_user_day: float = 4.0  # mean impressions per user per day (all users)
    activity_sigma: float = 1.1  # log-normal spread of user activity (heavy tail)
    interest_concentration: float = 3.0  # Dirichlet total mass: small = few topics per user
    removal_rate: float = 0.04  # share of videos flagged for removal during the run
    max_session_impressions: int = 12  # a user's day is split into sessions of at most this
    policy_personal_share: float = 0.45  # impressions from the (noisy) personalised source
    policy_fresh_share: float = 0.3  # impressions from the uniform fresh-uploads source
    policy_noise: float = 0.4  # weight of noise in the policy's estimate of interests
    policy_popularity_power: float = 0.8  # exponent on past views in the policy's weights
    policy_fresh_boost: float = 10.0  # policy weight multiplier for brand-new uploads

    def __post_init__(self) -> None:
        for name in ("users", "videos", "days", "topics", "max_session_impressions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SimulatorConfig.{name} must be a positive integer, got {value!r}")
        if self.videos < 2:
            raise ValueError(f"SimulatorConfig.videos must be at least 2, got {self.videos}")
        if self.creators is not None and not (1 <= self.creators <= self.videos):
            raise ValueError(
                f"SimulatorConfig.creators must be between 1 and videos ({self.videos}), "
                f"got {self.creators}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"SimulatorConfig.seed must be a non-negative integer, got {self.seed!r}")
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise ValueError(f"SimulatorConfig.start must be a UTC datetime, got {self.start!r}")
        if self.start.year < 1971 or self.start.year > 2200:
            raise ValueError(f"SimulatorConfig.start must be between 1971 and 2200, got {self.start}")
        shares = {
            "initial_video_share": self.initial_video_share,
            "removal_rate": self.removal_rate,
            "policy_personal_share": self.policy_personal_share,
            "policy_fresh_share": self.policy_fresh_share,
            "policy_noise": self.policy_noise,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SimulatorConfig.{name} must be in [0, 1], got {value}")
        if self.policy_personal_share + self.policy_fresh_share > 1.0:
            raise ValueError(
                "SimulatorConfig.policy_personal_share + policy_fresh_share must be at most 1 "
                f"(the rest goes to the popularity source), got "
                f"{self.policy_personal_share + self.policy_fresh_share}"
            )
        positives = {
            "impressions_per_user_day": self.impressions_per_user_day,
            "interest_concentration": self.interest_concentration,
            "policy_popularity_power": self.policy_popularity_power,
        }
        for name, value in positives.items():
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"SimulatorConfig.{name} must be positive and finite, got {value}")
        if not (0.0 <= self.activity_sigma <= 3.0):
            raise ValueError(f"SimulatorConfig.activity_sigma must be in [0, 3], got {self.activity_sigma}")
        if not self.policy_fresh_boost >= 0.0:
            raise ValueError(f"SimulatorConfig.policy_fresh_boost must be >= 0, got {self.policy_fresh_boost}")

    @property
    def n_creators(self) -> int:
        """The resolved number of creators."""
        return self.creators if self.creators is not None else max(3, min(self.videos, self.videos // 20))

    @classmethod
    def for_target_events(
        cls, users: int, videos: int, days: int, events: int, seed: int = 0, **kwargs: Any
    ) -> SimulatorConfig:
        """A config whose expected event count (impressions included) is about ``events``."""
        if events < 1:
            raise ValueError(f"target events must be positive, got {events}")
        rate = events / (EVENTS_PER_IMPRESSION * users * days)
        return cls(users=users, videos=videos, days=days, seed=seed, impressions_per_user_day=rate, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as JSON-ready values (saved in simulation.json)."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["creators"] = self.n_creators
        return out
