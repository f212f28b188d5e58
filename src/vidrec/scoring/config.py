"""The scoring stage's one config object, saved with every ranker it trains."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from vidrec.features.point_in_time import PointInTimeConfig
from vidrec.scoring.calibration import CALIBRATIONS
from vidrec.scoring.examples import LABELS, ExampleConfig
from vidrec.scoring.model import ARCHITECTURES
from vidrec.scoring.value import ValueModel


@dataclass(frozen=True)
class RankerConfig:
    """Model, training loop, calibration and value model of the multi-task ranker."""

    # Defaults chosen on the ML-100K validation carve (notes/scoring.md): the multi-task
    # MMoE ranks worse end to end there than the single-head MLP, so "mlp" with one head stays.
    architecture: str = "mlp"  # "mmoe", "shared_bottom" or "mlp" (model.py)
    hidden: tuple[int, ...] = (128, 64)  # MLP widths ("mlp") / shared bottom widths ("shared_bottom")
    cross_layers: int = 2  # DCN-v2 cross layers before the bottom or experts (not used by "mlp")
    experts: int = 4  # MMoE shared experts
    expert_hidden: tuple[int, ...] = (64,)  # widths of each expert MLP
    tower_hidden: tuple[int, ...] = (32,)  # widths of each task tower (not used by "mlp")
    # BCE weight per task of LABELS; 0: no head (multi-task: e.g. 1, .5, .5, .5)
    loss_weights: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
    ensemble: int = 3  # networks from seeds seed * ensemble + 0, 1, ...; their probabilities averaged (steadier)
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
    # torch threads during fit, restored after (None: torch's default, every core: measured 1.2-1.6x the
    # examples/s of one thread on 2 cores for the default network at 2M events)
    threads: int | None = None
    # processes training the networks (DDP under torchrun, gloo on CPU); 1 trains in this process
    processes: int = 1
    device: str = "auto"  # where the networks train: "auto" (a CUDA GPU when present, else the CPU), "cpu", "cuda"
    examples_since: datetime | None = None  # train only on examples at/after this: the two-tower cutoff (see ranker.py)
    max_examples: int | None = None  # keep only the latest this many examples (None: all)
    feature_block: int = 500_000  # examples whose features are built at once (memory grows with it)
    similarity: bool = True  # item-to-item features: candidate vs recent completions (similarity.py)
    similarity_recent: int = 10  # recent completed videos the similarity features compare with
    cooc_min_count: int = 2  # co-occurrence pairs completed together by fewer users are dropped
    # the item regression (EASE) among the similarity features: over the most completed videos (its dense
    # solve grows with their square: 5,000 take ~10 s and 0.4 GiB; 0 turns it off), penalty None = 5 x their
    # mean completions (scales with the log)
    ease_videos: int = 5_000
    ease_lambda: float | None = None
    examples: ExampleConfig = field(default_factory=ExampleConfig)
    features: PointInTimeConfig = field(default_factory=PointInTimeConfig)
    value: ValueModel = field(default_factory=ValueModel)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"RankerConfig.architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        for name in ("hidden", "expert_hidden", "tower_hidden"):
            value = getattr(self, name)
            if any(not isinstance(h, int) or h < 1 for h in value) or (name != "tower_hidden" and not value):
                raise ValueError(f"RankerConfig.{name} must be positive integers, got {value!r}")
        if not isinstance(self.cross_layers, int) or self.cross_layers < 0:
            raise ValueError(f"RankerConfig.cross_layers must be an integer >= 0, got {self.cross_layers!r}")
        if not isinstance(self.ensemble, int) or isinstance(self.ensemble, bool) or self.ensemble < 1:
            raise ValueError(f"RankerConfig.ensemble must be a positive integer, got {self.ensemble!r}")
        if not isinstance(self.experts, int) or self.experts < 1:
            raise ValueError(f"RankerConfig.experts must be a positive integer, got {self.experts!r}")
        w = self.loss_weights
        if len(w) != len(LABELS) or any(not x >= 0 for x in w) or not w[0] > 0:
            raise ValueError(
                f"RankerConfig.loss_weights must be {len(LABELS)} weights >= 0 for {LABELS}, "
                f"the first (completion) > 0, got {w!r}"
            )
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
        if not isinstance(self.processes, int) or isinstance(self.processes, bool) or self.processes < 1:
            raise ValueError(f"RankerConfig.processes must be an integer >= 1, got {self.processes!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"RankerConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"RankerConfig.threads must be None or >= 1, got {self.threads}")
        if self.max_examples is not None and self.max_examples < 10:
            raise ValueError(f"RankerConfig.max_examples must be None or >= 10, got {self.max_examples}")
        if not isinstance(self.ease_videos, int) or isinstance(self.ease_videos, bool) or self.ease_videos < 0:
            raise ValueError(f"RankerConfig.ease_videos must be an integer >= 0, got {self.ease_videos!r}")
        if self.ease_lambda is not None and not self.ease_lambda > 0:
            raise ValueError(f"RankerConfig.ease_lambda must be positive or None, got {self.ease_lambda}")
        for name in ("similarity_recent", "cooc_min_count", "feature_block"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RankerConfig.{name} must be a positive integer, got {value!r}")
        if self.examples_since is not None and self.examples_since.tzinfo is None:
            raise ValueError("RankerConfig.examples_since must be timezone-aware (UTC)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes and timedeltas as ISO strings / seconds)."""
        d = asdict(self)
        for name in ("hidden", "expert_hidden", "tower_hidden", "loss_weights"):
            d[name] = list(getattr(self, name))
        d["examples_since"] = None if self.examples_since is None else self.examples_since.isoformat()
        d["examples"]["session_window"] = self.examples.session_window.total_seconds()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankerConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)  # a partial dict (e.g. from a config file) keeps the other defaults
        ex = dict(d.pop("examples", {}))
        if "session_window" in ex:
            ex["session_window"] = timedelta(seconds=ex["session_window"])
        since = d.pop("examples_since", None)
        value = dict(d.pop("value", {}))
        if _saved_before(data, cls, "ensemble"):
            d["ensemble"] = 1  # saved before ensembles existed: one network
        feature_args = dict(d.pop("features", {}))
        if _saved_before(feature_args, PointInTimeConfig, "title_words"):
            feature_args["title_words"] = False  # saved before title words existed: trained without them
        features = PointInTimeConfig(**feature_args)
        for name in ("hidden", "expert_hidden", "tower_hidden", "loss_weights"):
            if name in d:
                d[name] = tuple(d[name])
        return cls(
            **d,
            examples_since=None if since is None else datetime.fromisoformat(since),
            examples=ExampleConfig(**ex),
            features=features,
            value=ValueModel(**value),
        )

    @property
    def tasks(self) -> tuple[str, ...]:
        """The label columns the model has a head for (loss weight > 0), in LABELS order."""
        return tuple(name for name, w in zip(LABELS, self.loss_weights) if w > 0)


def _saved_before(data: dict[str, Any], config_class: type, name: str) -> bool:
    """Whether ``data`` is a whole saved config from before field ``name`` existed.

    A saved config holds every field, a hand-written one only some; a model saved before
    a field existed must keep the behaviour it was trained with, not today's default.
    """
    return {f.name for f in fields(config_class)} - set(data) == {name}
