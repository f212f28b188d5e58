"""The re-ranking stage's one config object (hard-rule schedules and soft objectives), saved as JSON.

Keys added later default to their documented values, so configs saved before them still load.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DIVERSITY: tuple[str, ...] = ("none", "mmr", "dpp")
BUDGET_WINDOWS: tuple[str, ...] = ("auto", "time", "per-user")


def _nonneg(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class ReRankConfig:
    """Soft rules of stage 3 (hard filters are not configurable: they are never broken).

    Freshness multiplies a positive score by ``1 + fresh_boost * 0.5 ** (age_days /
    fresh_half_life_days)``, so a video uploaded just now gains ``fresh_boost`` (20 %)
    and one a half-life old gains half of that. The creator cap lets at most
    ``creator_cap`` videos of one creator into each block of ``creator_window`` slots.

    Hard rules with a schedule: re-watch (off by default) and creator fatigue after
    dislikes, by the evidence (:mod:`vidrec.reranking.fatigue`): a creator's videos are
    scaled by the posterior chance the user does not dislike the next one (their dislikes
    of it against their completions of it, with a prior), hidden 14 days only when the
    posterior is sure most are disliked, then recover linearly to x1 over 140 days.
    Slate objectives (diversity by MMR or DPP, calibration to the user's categories,
    minimums of fresh videos and of small/new creators) run in a per-user greedy; with
    all of them off the slate is the final-score order under the creator cap.

    The defaults were chosen on validation carves of the training period of ML-100K and
    the simulated platform (never the test split; benchmarks/reranking.py, notes in
    BENCHMARKS.md): the goal is clearly more diverse, fresher and fairer slates for at
    most 3 % of NDCG@10, with a margin. The knobs that cost accuracy there were the DPP
    weight (0.1 cost 6-10 % on ML-100K with the current ranker) and a cap of 2 per 10
    (~3 % on the simulated platform); the fresh boost, the fresh minimum and fatigue cost
    nothing measurable. The DPP trade-off depends on the spread of the final scores
    (relevance is min-max scaled over the pool), so re-check ``diversity_weight`` after
    a change of the scoring model.
    """

    # a new upload gains at most 20 %: lifts fresh videos the model under-scores (more fresh
    # videos on the simulated platform) at no measurable NDCG cost on validation
    fresh_boost: float = 0.2  # extra share of score for a just-uploaded video; 0 turns it off
    fresh_half_life_days: float = 7.0  # the boost halves every this many days of upload age
    # 3 per 10 spreads exposure (creator Gini down) at ~1 % of NDCG; 2 per 10 cost ~3 % on the simulator
    creator_cap: int | None = 3  # videos of one creator per window; None turns the cap off
    creator_window: int = 10  # slots per window (positions 1-10, 11-20, ...)
    creator_backfill: bool = True  # fill a slate the cap cannot fill with capped videos
    # hard rules with a schedule
    rewatch_after_days: float | None = None  # re-show a *completed* video this long after; None: never
    rewatch_categories: tuple[str, ...] = ()  # categories the re-watch policy covers; () means all
    # fatigue on X's home mixer's schedule, its depth set by the user's dislikes against completions of the
    # creator: one dislike no longer hides a whole channel (a coarse creator) the user keeps completing
    fatigue_filter_days: float = 14.0  # strong evidence hides a creator this long, weaker holds its factor...
    fatigue_recover_days: float = 140.0  # ...then the factor rises linearly to 1 over this long
    fatigue_floor: float = 0.2  # the lowest factor short of hiding (1.0 turns the soft factor off)
    fatigue_prior_dislikes: float = 0.5  # Beta prior of the disliked share: pseudo-dislikes...
    fatigue_prior_completions: float = 2.0  # ...and pseudo-completions (prior mean 0.2, worth 2.5 verdicts)
    fatigue_hide_share: float = 0.5  # hide when the user surely dislikes more than this share of the creator...
    fatigue_hide_confidence: float = 0.9  # ...with this posterior probability (0 hides on any dislike, as before)
    # soft objectives acting on the slate as a whole (a per-user greedy, see slate.py)
    # DPP (as YouTube 2018) beats MMR at equal cost; theta 0.02 keeps ML-100K within ~1 % on
    # validation while adding categories per slate (0.05 cost ~2-5 %, 0.1 cost 6-10 %)
    diversity: str = "dpp"  # "none", "mmr" (maximal marginal relevance) or "dpp" (greedy MAP)
    diversity_weight: float = 0.02  # MMR lambda, or DPP theta (relevance vs diversity), in [0, 1)
    category_similarity: float = 0.5  # weight of same-category in the similarity (1.0 without vectors)
    # calibration and the fairness minimum each cost ~3 % on ML-100K: opt-in
    calibration_weight: float = 0.0  # Steck's lambda: slate categories vs the user's history
    calibration_alpha: float = 0.01  # smoothing of the slate distribution towards the history
    # one fresh video per slate when the pool has one: the freshness gain at no measurable cost
    min_fresh: int = 1  # at least this many fresh videos per slate (when the candidates allow)
    fresh_days: float = 7.0  # a video uploaded less than this long ago counts as fresh
    fair_min_share: float = 0.0  # share of each slate reserved for small or new creators
    small_creator_quantile: float = 0.5  # creators with watches at or below this quantile are small
    new_creator_days: float = 30.0  # a creator whose first upload is this recent is new
    # the fresh minimum reaches the best 100; a pool of 20-30 also bounds the loss (notes) but finds fewer fresh videos
    greedy_pool: int = 100  # each user's best candidates (by final score) the greedy chooses from
    # the values above are a ceiling: training turns them down on a validation window of the log until
    # together they cost at most this share of NDCG@10 (vidrec.reranking.budget); 1 (or None) keeps them as set
    budget: float | None = 0.02
    budget_users: int = 1000  # validation users the budget is measured on (a seeded sample)...
    budget_min_users: int = 200  # ...and the fewest it measures on (fewer: the values are kept as set)
    # where: "time" the latest period with enough returning users; "per-user" each user's last 20% of watches,
    # the pipeline trained again on the rest (a second training); "auto" the period, else the per-user carve
    budget_window: str = "auto"
    budget_retrain_events: int = 5_000_000  # "auto" trains again for the per-user carve only on logs up to this size
    # a simulated platform's directory (`vidrec simulate --out`): the budget is then a share of the slates' true
    # expected completions (the simulator's P(complete | shown) as of the window start) instead of NDCG@10
    budget_truth: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rewatch_categories", tuple(self.rewatch_categories))
        self._check_objectives()
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

    def _check_objectives(self) -> None:
        """Validate the schedules and soft objectives added with issue 7."""
        if self.rewatch_after_days is not None and not _nonneg(self.rewatch_after_days):
            raise ValueError(
                f"rewatch_after_days must be a finite number >= 0 or None, got {self.rewatch_after_days}"
            )
        if not all(isinstance(c, str) for c in self.rewatch_categories):
            raise ValueError("rewatch_categories must be a list of category names")
        for name in ("fatigue_filter_days", "fatigue_recover_days", "fresh_days", "new_creator_days"):
            if not _nonneg(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        for name in ("fatigue_prior_dislikes", "fatigue_prior_completions"):
            if not (_nonneg(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a finite number > 0 (a Beta prior), got {getattr(self, name)}")
        if not (_nonneg(self.fatigue_hide_share) and 0 < self.fatigue_hide_share < 1):
            raise ValueError(f"fatigue_hide_share must lie in (0, 1), got {self.fatigue_hide_share}")
        for name in ("fatigue_floor", "fatigue_hide_confidence", "category_similarity", "calibration_weight",
                     "calibration_alpha", "fair_min_share", "small_creator_quantile"):
            value = getattr(self, name)
            if not (_nonneg(value) and value <= 1.0):
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.calibration_alpha <= 0:
            raise ValueError("calibration_alpha must be > 0 (the divergence is infinite otherwise)")
        if self.diversity not in DIVERSITY:
            raise ValueError(f"diversity must be one of {DIVERSITY}, got {self.diversity!r}")
        if not (_nonneg(self.diversity_weight) and self.diversity_weight < 1.0):
            raise ValueError(f"diversity_weight must lie in [0, 1), got {self.diversity_weight}")
        for name in ("min_fresh", "greedy_pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.greedy_pool < 1:
            raise ValueError("greedy_pool must be at least 1")
        if self.budget is not None and not (_nonneg(self.budget) and self.budget <= 1.0):
            raise ValueError(f"budget must lie in [0, 1] (1 keeps the soft objectives as set), got {self.budget}")
        if self.budget_window not in BUDGET_WINDOWS:
            raise ValueError(f"budget_window must be one of {BUDGET_WINDOWS}, got {self.budget_window!r}")
        for name in ("budget_users", "budget_min_users", "budget_retrain_events"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @property
    def uses_slate_greedy(self) -> bool:
        """Whether any slate-level objective is on (otherwise the vectorised cap path runs)."""
        return (
            (self.diversity != "none" and self.diversity_weight > 0)
            or self.calibration_weight > 0
            or self.min_fresh > 0
            or self.fair_min_share > 0
        )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values."""
        out = asdict(self)
        out["rewatch_categories"] = list(self.rewatch_categories)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReRankConfig:
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
    def load(cls, path: str | Path) -> ReRankConfig:
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
