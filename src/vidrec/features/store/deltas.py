"""What a batch of events changes in the online store: mergeable deltas, one definition.

Everything the store keeps is *mergeable* -- per (user, kind, video) a first (or last)
time merged with ``min`` (``max``), and counts merged with ``+`` -- so applying batches
in any order, or one bulk load of the whole log, gives the same state. The counts are
those of the point-in-time feature tables (:mod:`vidrec.features.point_in_time`,
:mod:`vidrec.features.crosses`) at their latest time, which the equality tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP
from vidrec.features.derive import COUNTS
from vidrec.features.video_stats import count_aggs

FIRST_KINDS: tuple[str, ...] = ("seen", "watched", "completed", "disliked", "liked")
"""Per-user video sets ordered by the first time the user entered them (merged with min)."""
LAST_KINDS: tuple[str, ...] = ("last_watched",)
"""Per-user video times merged with max (the re-watch policy reads the last watch)."""
KINDS: tuple[str, ...] = ("seen", "watched", "completed", "disliked", "last_watched", "liked")
"""Every per-user video set; a store keeps a kind's position as its code, so new kinds go at the end."""

USER_COUNTS: tuple[str, ...] = (*COUNTS, "completion_sum")
"""Per-user (and platform) totals over every event; ``completion_sum`` is a float."""

PAIR_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "category": ("category", ("views", "completions")),  # watches of the category's videos
    "creator": ("creator_id", ("views", "dislikes")),  # watches and dislikes of the creator's videos
    "tag": ("tag", ("impressions", "views", "completions")),  # impressions and watches per cross tag
    "language": ("language", ("impressions", "views", "completions")),
}
"""Per (user, attribute) counts: table -> (key column, count columns)."""

ATTRIBUTES: tuple[str, ...] = ("category", "tag", "language", "creator")
"""Platform-wide per-attribute counters: ``events`` (rows counted) and ``views`` (watches). Tags and
languages count impressions and watches, categories and creators watches."""


@dataclass(frozen=True)
class StoreConfig:
    """How the store turns events into features; saved in the store and checked on open."""

    history_len: int = 50  # videos kept in recent_completed / recent_watched (most recent last)
    threshold: float = COMPLETION_THRESHOLD  # completion that counts as completed (fixed at write time)
    completion_cap: float = 1.0  # completion is capped here in completion_sum
    title_words: bool = True  # title words count as tags (the ranker's cross tags)
    prior_weight: float = 20.0  # pseudo-views of the global rate in the video rates it reports

    def __post_init__(self) -> None:
        if not isinstance(self.history_len, int) or self.history_len < 1:
            raise ValueError(f"StoreConfig.history_len must be an integer >= 1, got {self.history_len!r}")
        if not self.threshold > 0:
            raise ValueError(f"StoreConfig.threshold must be positive, got {self.threshold}")
        if not self.completion_cap > 0:
            raise ValueError(f"StoreConfig.completion_cap must be positive, got {self.completion_cap}")
        if not self.prior_weight >= 0:
            raise ValueError(f"StoreConfig.prior_weight must be >= 0, got {self.prior_weight}")

    def written_the_same(self, other: StoreConfig) -> bool:
        """Whether stored counts mean the same under ``other`` (history and priors are read-time)."""
        return (self.threshold, self.completion_cap, self.title_words) == (
            other.threshold, other.completion_cap, other.title_words)  # fmt: skip


@dataclass(frozen=True)
class Deltas:
    """The mergeable changes of a batch of events (times are epoch microseconds)."""

    firsts: pl.DataFrame  # user_id, kind, video_id, ts_us (min for FIRST_KINDS, max for LAST_KINDS)
    user_counts: pl.DataFrame  # user_id, *USER_COUNTS
    pairs: dict[str, pl.DataFrame]  # PAIR_TABLES name -> user_id, key, *counts (+ last_dislike_us for creator)
    video_counts: pl.DataFrame  # video_id, *COUNTS
    attributes: pl.DataFrame  # kind, name, events, views
    totals: dict[str, float] = field(default_factory=dict)  # USER_COUNTS summed over the batch
    last_event_us: int | None = None


def to_us(col: str | pl.Expr) -> pl.Expr:
    """A UTC datetime column as integer epoch microseconds."""
    expr = pl.col(col) if isinstance(col, str) else col
    return expr.cast(TIMESTAMP).dt.epoch("us")


def compute_deltas(events: pl.DataFrame, meta: pl.DataFrame, config: StoreConfig) -> Deltas:
    """Aggregate canonical ``events`` into :class:`Deltas` (columnar, no row loops).

    ``meta`` holds ``video_id, creator_id, category, duration_seconds, language, tags`` (the
    cross tags) of every video the events refer to (:meth:`Catalogue.meta`).
    """
    ev = events.select("user_id", "video_id", pl.col("ts").cast(TIMESTAMP), "event", "watch_seconds").join(
        meta, on="video_id", how="left"
    )
    if ev["duration_seconds"].null_count():
        unknown = ev.filter(pl.col("duration_seconds").is_null())["video_id"].unique().head(5).to_list()
        raise ValueError(
            f"events refer to videos not in the catalogue (e.g. {', '.join(unknown)}); "
            "upload the videos first or validate the events"
        )
    e = pl.col("event")
    completion = pl.col("watch_seconds") / pl.col("duration_seconds")
    ev = ev.with_columns(
        completed=(e == "watch") & (completion >= config.threshold).fill_null(False),
        capped=completion.clip(0.0, config.completion_cap).fill_null(0.0),
        ts_us=to_us("ts"),
    )
    counts = count_aggs()
    user_counts = ev.group_by("user_id").agg(**counts, completion_sum=pl.col("capped").sum())
    watch, base = ev.filter(e == "watch"), ev.filter(e.is_in(["impression", "watch"]))
    tagged = base.explode("tags").drop_nulls("tags").rename({"tags": "tag"})
    spoken = base.drop_nulls("language")
    triple = {k: counts[k] for k in ("impressions", "views", "completions")}
    creator = ev.filter(e.is_in(["watch", "dislike"])).group_by("user_id", "creator_id").agg(
        views=(e == "watch").sum().cast(pl.Int64), dislikes=(e == "dislike").sum().cast(pl.Int64),
        last_dislike_us=pl.when(e == "dislike").then(pl.col("ts_us")).max(),
    )  # fmt: skip
    pairs = {
        "category": watch.group_by("user_id", "category").agg(views=counts["views"], completions=counts["completions"]),
        "creator": creator,
        "tag": tagged.group_by("user_id", "tag").agg(**triple),
        "language": spoken.group_by("user_id", "language").agg(**triple),
    }
    attributes = pl.concat(
        [
            frame.group_by(key).agg(events=pl.len().cast(pl.Int64), views=counts["views"])
            .select(kind=pl.lit(kind), name=pl.col(key), events="events", views="views")
            for kind, key, frame in (("category", "category", watch), ("tag", "tag", tagged),
                                     ("language", "language", spoken), ("creator", "creator_id", watch))
        ]
    )  # fmt: skip
    totals = ev.select(**counts, completion_sum=pl.col("capped").sum()).row(0, named=True)
    last = ev["ts_us"].max()
    return Deltas(
        _firsts(ev), user_counts, pairs, ev.group_by("video_id").agg(**counts), attributes,
        {k: float(v or 0) for k, v in totals.items()}, None if last is None else int(last),  # type: ignore[arg-type]
    )  # fmt: skip


def _firsts(ev: pl.DataFrame) -> pl.DataFrame:
    """First time per (user, kind, video) for the video sets, last watch time for re-watch."""
    e = pl.col("event")
    acted = ev.filter(e != "impression")
    watches = acted.filter(e == "watch")
    parts = {
        "seen": acted.group_by("user_id", "video_id").agg(ts_us=pl.col("ts_us").min()),
        "watched": watches.group_by("user_id", "video_id").agg(ts_us=pl.col("ts_us").min()),
        "completed": watches.filter(pl.col("completed"))
        .group_by("user_id", "video_id")
        .agg(ts_us=pl.col("ts_us").min()),
        "disliked": acted.filter(e == "dislike").group_by("user_id", "video_id").agg(ts_us=pl.col("ts_us").min()),
        "liked": acted.filter(e == "like").group_by("user_id", "video_id").agg(ts_us=pl.col("ts_us").min()),
        "last_watched": watches.group_by("user_id", "video_id").agg(ts_us=pl.col("ts_us").max()),
    }
    return pl.concat(
        [p.select("user_id", kind=pl.lit(k), video_id="video_id", ts_us="ts_us") for k, p in parts.items()]
    )
