"""Training examples of the ranker: (user_id, video_id, ts) and one 0/1 column per task.

Labels (:data:`LABELS`): ``label`` (completed: watched at least ``threshold`` of it),
``interacted`` (any watch, like or dislike), ``liked``, ``disliked``. Each asks what
scoring asks at request time: "shown this video now, will the user ...?". An outcome
event answers an example when it falls in ``[ts, ts + session_window)`` and before the
next example of the same (user, video): two examples never share one outcome.
Two logs, two constructions:

* **With impressions** (the simulated platform, real feeds): every impression of
  (user, video) at ``ts`` is an example, labelled by the outcome events answering it.
  Watches never shown (search, links) make no example: they do not answer the
  question asked of the ranker.
* **Without impressions** (MovieLens), or with impressions that answer fewer than half
  of the watches (times without order: :func:`example_mode`): every watch is an example
  labelled by its own completion (so low completions are real negatives), ``interacted`` = 1, and
  ``liked``/``disliked`` by a like/dislike answering the watch; on top, ``negatives_per_watch``
  videos the user never interacted with are drawn per watch at the watch's ``ts``,
  all labels 0: a share ``popularity_share`` weighted by interaction count ** 0.75,
  the rest uniform. Only videos uploaded at or before ``ts`` are drawn. Without
  them a model learns only "given a watch, was it completed", never "is this worth
  showing", which is what it is asked at serving. Sampled negatives are easy; with
  ``hard_negatives_per_watch`` the ranker adds negatives retrieved by the two-tower
  at the watch's ``ts`` (:mod:`vidrec.scoring.hard_negatives`), the candidates it
  actually re-sorts at serving.

Examples carry no features: :mod:`vidrec.features.point_in_time` adds them from events
strictly before ``ts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP, with_derived

log = logging.getLogger(__name__)
MODES = ("auto", "impressions", "watches")
MIN_SHOWN_SHARE = 0.5
"""Fewest watches answered by an impression for "auto" to build examples from impressions."""
EXAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "video_id": pl.String(),
    "ts": TIMESTAMP,
    "label": pl.Float32(),
    "interacted": pl.Float32(),
    "liked": pl.Float32(),
    "disliked": pl.Float32(),
}
LABELS: tuple[str, ...] = ("label", "interacted", "liked", "disliked")
"""The 0/1 label columns, one per ranker task; ``label`` is "completed"."""


@dataclass(frozen=True)
class ExampleConfig:
    """How examples and labels are made from an event log."""

    threshold: float = COMPLETION_THRESHOLD  # completion that makes a positive
    session_window: timedelta = timedelta(hours=1)  # a watch this long after an impression still answers it
    mode: str = "auto"  # "impressions", "watches", or "auto": impressions when the log has any
    negatives_per_watch: int = 4  # sampled non-watched videos per watch (watch mode only)
    popularity_share: float = 0.5  # share of sampled negatives drawn by popularity ** 0.75
    hard_negatives_per_watch: int = 2  # retrieved negatives per watch (watch mode, needs embeddings; hard_negatives.py)
    hard_pool: int = 300  # drawn among the user's top this many by the two-tower at ts (~ the serving candidate count)
    # impression mode: videos never shown to nor touched by the user, drawn per watched impression as all-zero
    # examples (as in watch mode), so the ranker also sees the candidates the logging policy never showed
    unshown_negatives: int = 0
    seed: int = 0  # negative sampling seed

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"ExampleConfig.threshold must be positive, got {self.threshold}")
        if self.session_window <= timedelta(0):
            raise ValueError(f"ExampleConfig.session_window must be positive, got {self.session_window}")
        if self.mode not in MODES:
            raise ValueError(f"ExampleConfig.mode must be one of {MODES}, got {self.mode!r}")
        if not isinstance(self.negatives_per_watch, int) or self.negatives_per_watch < 0:
            raise ValueError(
                f"ExampleConfig.negatives_per_watch must be an integer >= 0, got {self.negatives_per_watch!r}"
            )
        if not isinstance(self.hard_negatives_per_watch, int) or self.hard_negatives_per_watch < 0:
            raise ValueError(
                f"ExampleConfig.hard_negatives_per_watch must be an integer >= 0, got {self.hard_negatives_per_watch!r}"
            )
        if not isinstance(self.unshown_negatives, int) or self.unshown_negatives < 0:
            raise ValueError(f"ExampleConfig.unshown_negatives must be an integer >= 0, got {self.unshown_negatives!r}")
        if not isinstance(self.hard_pool, int) or self.hard_pool < 1:
            raise ValueError(f"ExampleConfig.hard_pool must be an integer >= 1, got {self.hard_pool!r}")
        if not 0.0 <= self.popularity_share <= 1.0:
            raise ValueError(f"ExampleConfig.popularity_share must be in [0, 1], got {self.popularity_share}")


def build_examples(events: pl.DataFrame, videos: pl.DataFrame, config: ExampleConfig | None = None) -> pl.DataFrame:
    """Labelled examples ``user_id, video_id, ts, *LABELS`` sorted by ``ts`` (see the module docstring)."""
    cfg = config or ExampleConfig()
    mode = example_mode(events, cfg)
    out = impression_examples(events, videos, cfg) if mode == "impressions" else watch_examples(events, videos, cfg)
    return out.sort("ts", "user_id", "video_id")


def example_mode(events: pl.DataFrame, config: ExampleConfig) -> str:
    """The construction ``build_examples`` uses on ``events``: "impressions" or "watches".

    "auto" builds from impressions only where they explain the watches: at least
    :data:`MIN_SHOWN_SHARE` of watches follow an impression of the same video within
    ``session_window``. A log whose times carry no order (exports stamped at load time,
    shuffled or coarse clocks) pairs impressions with nothing, and impression examples would
    label almost every one 0."""
    if config.mode != "auto":
        return config.mode
    if not bool((events["event"] == "impression").any()):
        return "watches"
    share = shown_share(events, config.session_window)
    if share < MIN_SHOWN_SHARE:
        log.warning("ranker examples from watches, not impressions: only %.0f%% of watches follow an impression "
                    "of the same video within %s (the log's times may not be in order)", 100 * share,
                    config.session_window)  # fmt: skip
        return "watches"
    return "impressions"


def shown_share(events: pl.DataFrame, window: timedelta) -> float:
    """Share of watches that follow an impression of the same (user, video) by less than ``window``."""
    cols = ("user_id", "video_id", pl.col("ts").cast(TIMESTAMP))
    watches = events.filter(pl.col("event") == "watch").select(*cols).sort("ts")
    if watches.is_empty():
        return 1.0
    shown = events.filter(pl.col("event") == "impression").select(*cols, _shown=pl.col("ts").cast(TIMESTAMP))
    matched = watches.join_asof(shown.sort("ts"), on="ts", by=["user_id", "video_id"], strategy="backward",
                                tolerance=window, check_sortedness=False)  # fmt: skip
    return float(matched["_shown"].is_not_null().mean() or 0.0)


def impression_examples(events: pl.DataFrame, videos: pl.DataFrame, cfg: ExampleConfig) -> pl.DataFrame:
    """One example per impression, labelled by the watches, likes and dislikes answering it."""
    imp = (
        events.filter(pl.col("event") == "impression")
        .select("user_id", "video_id", pl.col("ts").cast(TIMESTAMP))
        .sort("user_id", "video_id", "ts")
        .with_columns(next_ts=pl.col("ts").shift(-1).over("user_id", "video_id"))
        .with_row_index("_row")
        .sort("ts")
    )
    watches = with_derived(events.filter(pl.col("event") == "watch"), videos, cfg.threshold)
    outcomes = {
        "label": watches.filter(pl.col("completed")),
        "interacted": events.filter(pl.col("event").is_in(["watch", "like", "dislike"])),
        "liked": events.filter(pl.col("event") == "like"),
        "disliked": events.filter(pl.col("event") == "dislike"),
    }
    for name, outcome in outcomes.items():
        imp = _answered(imp, outcome, cfg.session_window, name)
    out = imp.sort("_row").select("user_id", "video_id", "ts", *LABELS)
    watched = out.filter(pl.col("interacted") > 0)
    if cfg.unshown_negatives == 0 or watched.is_empty():
        return out
    sample = replace(cfg, negatives_per_watch=cfg.unshown_negatives)
    return pl.concat([out, sampled_negatives(events, videos, watched, sample, shown_too=True)])


def _answered(rows: pl.DataFrame, outcome: pl.DataFrame, window: timedelta, name: str) -> pl.DataFrame:
    """``rows`` (sorted by ``ts``, with ``next_ts``) plus Float32 ``name``: 1 when an ``outcome`` answers it.

    The first outcome event of the pair at or after ``ts`` answers the row when it is
    before ``ts + window`` and before the pair's next row (``next_ts``).
    """
    first = outcome.select("user_id", "video_id", _ots=pl.col("ts").cast(TIMESTAMP)).sort("_ots")
    matched = rows.join_asof(
        first, left_on="ts", right_on="_ots", by=["user_id", "video_id"],
        strategy="forward", allow_exact_matches=True, check_sortedness=False,
    )  # fmt: skip
    hit = pl.col("_ots").is_not_null() & (pl.col("_ots") < pl.col("ts") + window)
    hit &= pl.col("next_ts").is_null() | (pl.col("_ots") < pl.col("next_ts"))
    return matched.with_columns(hit.cast(pl.Float32).alias(name)).drop("_ots")


def watch_examples(events: pl.DataFrame, videos: pl.DataFrame, cfg: ExampleConfig) -> pl.DataFrame:
    """One example per watch labelled by its completion and reactions, plus sampled unwatched negatives."""
    watches = (
        with_derived(events.filter(pl.col("event") == "watch"), videos, cfg.threshold)
        .select("user_id", "video_id", pl.col("ts").cast(TIMESTAMP), label=pl.col("completed").cast(pl.Float32))
        .sort("user_id", "video_id", "ts")
        .with_columns(next_ts=pl.col("ts").shift(-1).over("user_id", "video_id"), interacted=pl.lit(1.0, pl.Float32))
        .sort("ts", maintain_order=True)
    )
    for name, kind in (("liked", "like"), ("disliked", "dislike")):
        watches = _answered(watches, events.filter(pl.col("event") == kind), cfg.session_window, name)
    watches = watches.select("user_id", "video_id", "ts", *LABELS)
    if cfg.negatives_per_watch == 0 or watches.is_empty():
        return watches
    return pl.concat([watches, sampled_negatives(events, videos, watches, cfg)])


def zero_labels(frame: pl.DataFrame) -> pl.DataFrame:
    """``user_id, video_id, ts`` of ``frame`` with every label 0 (negatives nobody was shown)."""
    return frame.select("user_id", "video_id", "ts", *(pl.lit(0.0, pl.Float32).alias(c) for c in LABELS))


def sampled_negatives(
    events: pl.DataFrame, videos: pl.DataFrame, watches: pl.DataFrame, cfg: ExampleConfig, rounds: int = 8,
    shown_too: bool = False,
) -> pl.DataFrame:
    """``negatives_per_watch`` all-zero-label examples per watch: videos the user never touched (nor,
    with ``shown_too``, was shown), already uploaded.

    Rejected draws (interacted, or uploaded after ``ts``) are redrawn up to ``rounds``
    times, uniformly after the first two (a heavy user has touched most popular
    videos); the few still rejected are dropped rather than kept as false negatives.
    """
    rng = np.random.default_rng(cfg.seed)
    vids = videos.select("video_id", uploaded=pl.col("uploaded_at").cast(TIMESTAMP))
    pop = events.filter(pl.col("event") != "impression").group_by("video_id").len()
    counts = vids.join(pop, on="video_id", how="left")["len"].fill_null(0).to_numpy().astype(np.float64)
    weights = counts**0.75 if counts.sum() > 0 else np.ones_like(counts)
    p_pop = weights / weights.sum()
    touched = (events if shown_too else events.filter(pl.col("event") != "impression")).select(
        "user_id", "video_id"
    ).unique()
    want = watches.select("user_id", "ts").with_columns(
        _k=pl.lit(list(range(cfg.negatives_per_watch)), dtype=pl.List(pl.Int32))
    ).explode("_k").drop("_k").with_row_index("_i")
    kept: list[pl.DataFrame] = []
    for r in range(rounds):  # a few vectorised redraw rounds, not a loop over rows
        if want.is_empty():
            break
        n = want.height
        by_pop = rng.random(n) < (cfg.popularity_share if r < 2 else 0.0)
        idx = np.where(by_pop, rng.choice(len(p_pop), size=n, p=p_pop), rng.integers(0, len(p_pop), size=n))
        draw = want.with_columns(video_id=vids["video_id"].gather(idx), _up=vids["uploaded"].gather(idx))
        draw = draw.join(touched, on=["user_id", "video_id"], how="anti", maintain_order="left")
        draw = draw.filter(pl.col("_up") <= pl.col("ts"))
        kept.append(draw.select("user_id", "video_id", "ts"))
        want = want.filter(~pl.col("_i").is_in(draw["_i"].implode()))
    empty = pl.DataFrame(schema={k: EXAMPLE_SCHEMA[k] for k in ("user_id", "video_id", "ts")})
    neg = pl.concat(kept) if kept else empty
    return zero_labels(neg)
