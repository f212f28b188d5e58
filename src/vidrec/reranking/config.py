"""The re-ranking stage's one config object: freshness and creator-cap knobs, saved as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReRankConfig:
    """Soft rules of stage 3 (hard filters are not configurable: they are never broken).

    Freshness multiplies a positive score by ``1 + fresh_boost * 0.5 ** (age_days /
    fresh_half_life_days)``, so a video uploaded just now gains ``fresh_boost`` (20 %)
    and one a half-life old gains half of that. The creator cap lets at most
    ``creator_cap`` videos of one creator into each block of ``creator_window`` slots.
    """

    fresh_boost: float = 0.2  # extra share of score for a just-uploaded video; 0 turns it off
    fresh_half_life_days: float = 7.0  # the boost halves every this many days of upload age
    creator_cap: int | None = 2  # videos of one creator per window; None turns the cap off
    creator_window: int = 10  # slots per window (positions 1-10, 11-20, ...)
    creator_backfill: bool = True  # fill a slate the cap cannot fill with capped videos

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fresh_boost) and self.fresh_boost >= 0):
            raise ValueError(f"fresh_boost must be a finite number >= 0, got {self.fresh_boost}")
        if not (math.isfinite(self.fresh_half_life_days) and self.fresh_half_life_days > 0):
            raise ValueError(
                f"fresh_half_life_days must be a finite number > 0, got {self.fresh_half_life_days}"
            )
        if isinstance(self.creator_window, bool) or not isinstance(self.creator_window, int):
            raise ValueError(f"creator_window must be an integer, got {self.creator_window!r}")
        if self.creator_window < 1:
            raise ValueError(f"creator_window must be at least 1, got {self.creator_window}")
        if self.creator_cap is not None:
            if isinstance(self.creator_cap, bool) or not isinstance(self.creator_cap, int):
                raise ValueError(
                    f"creator_cap must be an integer or None, got {self.creator_cap!r}"
                )
            if not 1 <= self.creator_cap <= self.creator_window:
                raise ValueError(
                    f"creator_cap must lie in 1..creator_window ({self.creator_window}), "
                    f"got {self.creator_cap}; use None to turn the cap off"
                )
        if not isinstance(self.creator_backfill, bool):
            raise ValueError(
                f"creator_backfill must be true or false, got {self.creator_backfill!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ReRankConfig":
        """Build a config from a dict, naming any key that is not a config field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown re-ranking config key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(sorted(known))}"
            )
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        """Write the config as JSON (saved next to every artifact it produced)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "ReRankConfig":
        """Read a config written by :meth:`save`; errors name the file."""
        src = Path(path)
        try:
            values = json.loads(src.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{src}: cannot read a re-ranking config ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{src}: a re-ranking config must be a JSON object")
        try:
            return cls.from_dict(values)
        except ValueError as exc:
            raise ValueError(f"{src}: {exc}") from None
