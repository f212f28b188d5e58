"""The two-tower model's one config object, validated on construction and saved with the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

OBJECTIVES = ("binary", "sampled_softmax")
HISTORY_POOLINGS = ("mean", "weighted", "attention", "transformer")
LOGQ_CORRECTIONS = ("streaming", "counts", "none")
SEARCH_EXCLUDED = frozenset({
    "search", "search_seconds", "val_fraction", "val_min_interactions", "val_max_users", "eval_k", "refit_full",
    "threads", "processes", "deterministic", "extra", "seed",
})  # fmt: skip
"""Settings the validation search may not vary: the carve and its measure, where and how it runs."""


@dataclass
class TwoTowerConfig:
    """Model shape, negative sampling and training schedule of the two-tower retriever."""

    # --- model ---
    embedding_dim: int = 64  # width of every embedding and of both tower outputs
    user_hidden: tuple[int, ...] = (128,)  # user-tower MLP hidden sizes
    video_hidden: tuple[int, ...] = (128,)  # video-tower MLP hidden sizes
    user_hash_buckets: int = 32_768  # hashed user-id rows; unseen users still hash somewhere
    user_hash_functions: int = 2  # user id hashed this many times, embeddings summed (fewer collisions)
    history_len: int = 50  # recently completed videos pooled into the user tower
    temperature: float = 0.1  # score = <u, v> / temperature on L2-normalised towers
    dropout: float = 0.0  # dropout inside the MLPs
    user_id_dropout: float = 0.2  # share of training examples whose user-id embedding is zeroed,
    # so the tower learns to read the history too (cold users and fresh histories rely on it)
    # --- richer towers (defaults chosen on the ML-100K validation carve, see notes/two-tower-features.md) ---
    history_pooling: str = "attention"  # "mean": masked mean; "weighted": learned weight per recency
    # position (softmax over the filled slots); "attention": learned query over video + position embeddings;
    # "transformer": one causal self-attention layer over the history (order-aware), then that attention
    dislike_len: int = 0  # recent dislikes pooled as a separate (negative) signal; 0 = off
    user_demographics: bool = False  # users-table columns (age_bucket, country, gender, occupation)
    request_context: bool = False  # hour of day and day of week of the request (example time in training)
    example_age: bool = False  # age of the training example (YouTube paper); 0 at serving
    video_duration: bool = False  # log-spaced duration bucket in the video tower
    video_language: bool = False  # language in the video tower (where the videos table has it)
    video_titles: bool = False  # learned projection of the frozen title embedding (all-MiniLM-L6-v2,
    # computed once per video; needs the optional extra: pip install 'vidrec[text]')
    video_id_dropout: float = 0.0  # share of training videos whose id embedding is zeroed, so
    # the content path alone learns to place new videos (cold start)
    # --- objective ---
    objective: str = "sampled_softmax"  # "binary": interacted vs sampled negatives (sigmoid cross-entropy);
    # "sampled_softmax": softmax over the batch's other positives (+ uniform, + hard negatives)
    # --- binary objective and negatives ---
    negatives_per_positive: int = 4
    popularity_negative_share: float = 0.5  # the rest are uniform over the corpus
    popularity_exponent: float = 0.75  # popularity sampler draws videos with prob ~ count^exponent
    # --- sampled softmax (Yi et al. 2019) ---
    logq_correction: str = "streaming"  # subtract log q_j from logits: "streaming" (moving average
    # of the steps between sightings of each hashed video), "counts" (exact training frequencies), "none"
    logq_buckets: int = 262_144  # hashed videos tracked by the streaming estimator
    logq_ema: float = 0.05  # moving-average rate of the streaming estimator's gap
    uniform_negatives: int = 256  # uniform samples shared by the whole batch, added to the in-batch ones
    # --- hard negatives (either objective; always mixed with sampled/in-batch negatives) ---
    hard_negatives: int = 0  # per positive, drawn from the user's top-scoring non-interacted videos
    hard_negative_pool: int = 50  # mined top-scoring videos per user to draw the hard negatives from
    hard_negative_refresh_steps: int = 0  # re-mine every this many steps; 0 = once per epoch
    hard_negative_warmup_epochs: int = 1  # epochs of plain training before mining (a random model
    # mines random videos)
    # --- training ---
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0
    # --- validation carve and early stopping ---
    val_fraction: float = 0.1  # each user's last share of interactions (by time) held out
    val_min_interactions: int = 5  # users with fewer interactions are not carved
    eval_k: int = 100  # recall@eval_k drives early stopping
    val_max_users: int = 20_000  # recall measured on at most this many carved users (a seeded sample)
    patience: int = 3  # validation rounds without improvement before stopping
    # a validation round (recall, early stopping, checkpoint) ends every this many training examples, spread
    # evenly over an epoch, at least one and at most four per epoch: a large log stops after a few rounds, not a
    # few epochs
    eval_every: int = 200_000
    # hyperparameters chosen on the validation carve within a time budget: after the configured model, each
    # value of each key (e.g. {"temperature": [0.05, 0.2], "lr": [1e-3]}; one key at a time, from the best so
    # far) trains on the carve with early stopping and the best validation recall is kept; no trial starts
    # after search_seconds (0: no search)
    search: dict[str, list[Any]] = field(default_factory=dict)
    search_seconds: float = 0.0
    refit_full: bool = True  # after the search, train on all events (the carved interactions too)
    # the refit continues from the search's best weights and optimizer state for this many passes over all
    # events; 0: retrain from a fresh initialisation for as many epochs as the search chose
    refit_warm_epochs: float = 1.0
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    processes: int = 1  # training processes (DDP under torchrun, see distributed.py); 1 trains in this process
    deterministic: bool = True  # torch's deterministic kernels in the gradient steps: a seed (and thread count)
    # always gives the same model (threaded backward kernels otherwise sum floats in a varying order)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the model

    def __post_init__(self) -> None:
        self.user_hidden = tuple(int(h) for h in self.user_hidden)
        self.video_hidden = tuple(int(h) for h in self.video_hidden)
        positive_ints = (
            "embedding_dim", "user_hash_buckets", "user_hash_functions", "history_len",
            "epochs", "batch_size", "eval_k", "patience", "val_max_users",
        )
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TwoTowerConfig.{name} must be at least 1, got {getattr(self, name)}")
        if any(h < 1 for h in self.user_hidden + self.video_hidden):
            raise ValueError(
                f"TwoTowerConfig.user_hidden/video_hidden sizes must all be >= 1, got "
                f"{self.user_hidden} and {self.video_hidden}"
            )
        if self.negatives_per_positive < 0:
            raise ValueError(
                f"TwoTowerConfig.negatives_per_positive must be >= 0, got {self.negatives_per_positive}"
            )
        for name in ("popularity_negative_share", "dropout", "user_id_dropout", "video_id_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or (name != "popularity_negative_share" and value == 1.0):
                raise ValueError(f"TwoTowerConfig.{name} must be in [0, 1), got {value}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TwoTowerConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("temperature", "lr"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"TwoTowerConfig.{name} must be positive, got {getattr(self, name)}")
        self._validate_objective()
        if self.history_pooling not in HISTORY_POOLINGS:
            raise ValueError(
                f"TwoTowerConfig.history_pooling must be one of {HISTORY_POOLINGS}, got {self.history_pooling!r}"
            )
        if self.dislike_len < 0:
            raise ValueError(f"TwoTowerConfig.dislike_len must be >= 0 (0 = off), got {self.dislike_len}")
        if self.weight_decay < 0 or self.popularity_exponent < 0:
            raise ValueError("TwoTowerConfig.weight_decay and popularity_exponent must be >= 0")
        if not isinstance(self.processes, int) or isinstance(self.processes, bool) or self.processes < 1:
            raise ValueError(f"TwoTowerConfig.processes must be an integer >= 1, got {self.processes!r}")
        self._validate_search()
        if not self.refit_warm_epochs >= 0.0:
            raise ValueError(f"TwoTowerConfig.refit_warm_epochs must be >= 0, got {self.refit_warm_epochs}")
        if self.val_min_interactions < 2 or self.threads < 0:
            raise ValueError("TwoTowerConfig.val_min_interactions must be >= 2 and threads >= 0")

    def _validate_search(self) -> None:
        if not self.search_seconds >= 0.0:
            raise ValueError(f"TwoTowerConfig.search_seconds must be >= 0, got {self.search_seconds}")
        names = {f.name for f in fields(self)} - SEARCH_EXCLUDED
        for key, values in self.search.items():
            if key not in names:
                raise ValueError(f"TwoTowerConfig.search: {key!r} is not a searchable setting (one of {sorted(names)})")
            if not isinstance(values, list) or not values:
                raise ValueError(f"TwoTowerConfig.search[{key!r}] must be a non-empty list of values, got {values!r}")
            for value in values:
                replace(self, search={}, **{key: value})  # each trial's config is checked before any training

    def _validate_objective(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"TwoTowerConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.logq_correction not in LOGQ_CORRECTIONS:
            raise ValueError(
                f"TwoTowerConfig.logq_correction must be one of {LOGQ_CORRECTIONS}, got {self.logq_correction!r}"
            )
        for name in ("logq_buckets", "hard_negative_pool"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TwoTowerConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.logq_ema <= 1.0:
            raise ValueError(f"TwoTowerConfig.logq_ema must be in (0, 1], got {self.logq_ema}")
        for name in ("uniform_negatives", "hard_negatives", "hard_negative_refresh_steps",
                     "hard_negative_warmup_epochs"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"TwoTowerConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.hard_negatives > self.hard_negative_pool:
            raise ValueError(
                f"TwoTowerConfig.hard_negatives ({self.hard_negatives}) cannot exceed "
                f"hard_negative_pool ({self.hard_negative_pool})"
            )
        if self.hard_negatives and self.objective == "binary" and self.negatives_per_positive == 0:
            raise ValueError(
                "TwoTowerConfig.hard_negatives needs sampled negatives too (negatives_per_positive >= 1): "
                "hard negatives alone teach the model only the current top of each user's list"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples as lists)."""
        out = asdict(self)
        out["user_hidden"] = list(self.user_hidden)
        out["video_hidden"] = list(self.video_hidden)
        return out

    def save(self, path: str | Path) -> None:
        """Write the resolved config as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TwoTowerConfig:
        """Build from a dict, refusing unknown keys so a typo is not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TwoTowerConfig: unknown fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TwoTowerConfig:
        """Read a config written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
