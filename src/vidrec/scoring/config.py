"""The scoring stage's one config object, saved with every ranker it trains."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vidrec.features.point_in_time import PointInTimeConfig
from vidrec.scoring.calibration import CALIBRATIONS
from vidrec.scoring.examples import ExampleConfig


@dataclass(frozen=True)
class RankerConfig:
    """Model, training loop and calibration of the completion ranker."""

    hidden: tuple[int, ...] = (128, 64)  # MLP hidden layer widths
    dropout: float = 0.1  # dropout after each hidden layer
    lr: float = 2e-3  # Adam learning rate
    weight_decay: float = 1e-6  # Adam L2 penalty
    batch_size: int = 2048  # examples per step
    max_epochs: int = 10  # upper bound; early stopping usually ends sooner
    patience: int = 2  # epochs without validation improvement before stopping
    val_fraction: float = 0.1  # the latest examples by time, for early stopping and calibration
    calibration: str = "isotonic"  # "isotonic", "platt" or "none"
    ece_bins: int = 15  # equal-width bins of the reported ECE
    seed: int = 0  # weights, batch order and negative sampling
    threads: int | None = 1  # torch threads during fit, restored after (None: torch's default); a small MLP gains little from more
    examples_since: datetime | None = None  # train only on examples at/after this: the two-tower cutoff (see ranker.py)
    max_examples: int | None = None  # keep only the latest this many examples (None: all)
    similarity: bool = True  # item-to-item features: candidate vs recent completions (similarity.py)
    similarity_recent: int = 10  # recent completed videos the similarity features compare with
    cooc_min_count: int = 2  # co-occurrence pairs completed together by fewer users are dropped
    examples: ExampleConfig = field(default_factory=ExampleConfig)
    features: PointInTimeConfig = field(default_factory=PointInTimeConfig)

    def __post_init__(self) -> None:
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"RankerConfig.hidden must be positive integers, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"RankerConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"RankerConfig.lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        for name in ("batch_size", "max_epochs", "ece_bins"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RankerConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"RankerConfig.patience must be an integer >= 0, got {self.patience!r}")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"RankerConfig.val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"RankerConfig.calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"RankerConfig.threads must be None or >= 1, got {self.threads}")
        if self.max_examples is not None and self.max_examples < 10:
            raise ValueError(f"RankerConfig.max_examples must be None or >= 10, got {self.max_examples}")
        for name in ("similarity_recent", "cooc_min_count"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RankerConfig.{name} must be a positive integer, got {value!r}")
        if self.examples_since is not None and self.examples_since.tzinfo is None:
            raise ValueError("RankerConfig.examples_since must be timezone-aware (UTC)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes and timedeltas as ISO strings / seconds)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["examples_since"] = None if self.examples_since is None else self.examples_since.isoformat()
        d["examples"]["session_window"] = self.examples.session_window.total_seconds()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RankerConfig":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)  # a partial dict (e.g. from a config file) keeps the other defaults
        ex = dict(d.pop("examples", {}))
        if "session_window" in ex:
            ex["session_window"] = timedelta(seconds=ex["session_window"])
        since = d.pop("examples_since", None)
        features = PointInTimeConfig(**d.pop("features", {}))
        if "hidden" in d:
            d["hidden"] = tuple(d["hidden"])
        return cls(
            **d,
            examples_since=None if since is None else datetime.fromisoformat(since),
            examples=ExampleConfig(**ex),
            features=features,
        )
