"""What a batch of events changes in the online store: mergeable deltas, one definition.

Everything the store keeps is *mergeable* -- per (user, kind, video) a first (or last)
time merged with ``min`` (``max``), and counts merged with ``+`` -- so applying batches
in any order, or one bulk load of the whole log, gives the same state. The counts are
those of the point-in-time feature tables (:mod:`vidrec.features.point_in_time`,
:mod:`vidrec.features.crosses`) at their latest time, which the equality tests check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

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


STREAMING_FROM = 1_000_000
"""Events from which the aggregations run on Polars' streaming engine (bounded memory: at 10M
events the in-memory engine's group-bys on string keys peaked at 3x the log); an online
batch stays on the in-memory engine, which starts faster."""


def compute_deltas(events: pl.DataFrame, meta: pl.DataFrame, config: StoreConfig) -> Deltas:
    """Aggregate canonical ``events`` into :class:`Deltas` (columnar, no row loops).

    ``meta`` holds ``video_id, creator_id, category, duration_seconds, language, tags`` (the
    cross tags) of every video the events refer to (:meth:`Catalogue.meta`).
    """
    unknown = (
        events.lazy().select("video_id").unique().join(meta.lazy().select("video_id"), on="video_id", how="anti")
        .head(5).collect()["video_id"].to_list()
    )  # fmt: skip
    if unknown:
        raise ValueError(
            f"events refer to videos not in the catalogue (e.g. {', '.join(unknown)}); "
            "upload the videos first or validate the events"
        )
    engine: Literal["streaming", "in-memory"] = "streaming" if events.height >= STREAMING_FROM else "in-memory"

    def collect(frame: pl.LazyFrame) -> pl.DataFrame:
        return frame.collect(engine=engine)

    e = pl.col("event")
    completion = pl.col("watch_seconds") / pl.col("duration_seconds")
    # tags and languages are joined per (user, video) below, not per event: exploding every event's
    # tags with its other columns was the largest frame of the whole build
    ev = (
        events.lazy().select("user_id", "video_id", pl.col("ts").cast(TIMESTAMP), "event", "watch_seconds")
        .join(meta.lazy().drop("tags", "language"), on="video_id", how="left")
        .with_columns(
            completed=(e == "watch") & (completion >= config.threshold).fill_null(False),
            capped=completion.clip(0.0, config.completion_cap).fill_null(0.0),
            ts_us=to_us("ts"),
        )
    )  # fmt: skip
    counts = count_aggs()
    user_counts = collect(ev.group_by("user_id").agg(**counts, completion_sum=pl.col("capped").sum()))
    watch = ev.filter(e == "watch")
    triple = {k: counts[k] for k in ("impressions", "views", "completions")}
    watched = collect(ev.filter(e.is_in(["impression", "watch"])).group_by("user_id", "video_id").agg(
        events=pl.len().cast(pl.Int64), **triple
    )).lazy()  # fmt: skip
    tags = meta.lazy().select("video_id", tag="tags").explode("tag").drop_nulls("tag")
    tagged = watched.join(tags, on="video_id")  # one row per (user, video, tag)
    spoken = watched.join(meta.lazy().select("video_id", "language").drop_nulls("language"), on="video_id")
    summed = {k: pl.col(k).sum() for k in triple}
    creator = ev.filter(e.is_in(["watch", "dislike"])).group_by("user_id", "creator_id").agg(
        views=(e == "watch").sum().cast(pl.Int64), dislikes=(e == "dislike").sum().cast(pl.Int64),
        last_dislike_us=pl.when(e == "dislike").then(pl.col("ts_us")).max(),
    )  # fmt: skip
    pairs = {
        "category": collect(watch.group_by("user_id", "category").agg(views=counts["views"],
                                                                      completions=counts["completions"])),
        "creator": collect(creator),
        "tag": collect(tagged.group_by("user_id", "tag").agg(**summed)),
        "language": collect(spoken.group_by("user_id", "language").agg(**summed)),
    }  # fmt: skip
    per_event = {"events": pl.len().cast(pl.Int64), "views": counts["views"]}
    per_pair = {"events": pl.col("events").sum(), "views": pl.col("views").sum()}
    attributes = pl.concat(
        [
            collect(frame.group_by(key).agg(**aggs))
            .select(kind=pl.lit(kind), name=pl.col(key), events="events", views="views")
            for kind, key, frame, aggs in (("category", "category", watch, per_event), ("tag", "tag", tagged, per_pair),
                                           ("language", "language", spoken, per_pair),
                                           ("creator", "creator_id", watch, per_event))
        ]
    )  # fmt: skip
    totals = collect(ev.select(**counts, completion_sum=pl.col("capped").sum(), last=pl.col("ts_us").max()))
    last = totals["last"][0]
    return Deltas(
        _firsts(ev, collect), user_counts, pairs, collect(ev.group_by("video_id").agg(**counts)), attributes,
        {k: float(v or 0) for k, v in totals.drop("last").row(0, named=True).items()},
        None if last is None else int(last),
    )  # fmt: skip


def _firsts(ev: pl.LazyFrame, collect: Callable[[pl.LazyFrame], pl.DataFrame]) -> pl.DataFrame:
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
        [collect(p.select("user_id", kind=pl.lit(k), video_id="video_id", ts_us="ts_us")) for k, p in parts.items()]
    )
