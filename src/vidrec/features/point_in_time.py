"""Point-in-time features of (user, video, ts) rows: only events strictly before ts count.

One code path serves training and request time. :class:`EventTables` turns an event
log into cumulative counts per key (global, video, user, user x category, category,
user x creator, user completions), each with one row per (key, ts). A query row then
reads every table with ``join_asof(strategy="backward", allow_exact_matches=False)``:
the counts of the last timestamp strictly before its own ts. Training examples use
their event time; serving uses ``ts = now`` for every candidate.

:meth:`EventTables.compact` keeps only the last row per key (what any ``ts`` after the
last event would read) so the tables stored with a model stay small. Requests are not
served from these tables: :mod:`vidrec.features.online` computes the same features from
the live counts with the same definitions (:mod:`vidrec.features.derive`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from vidrec.data.schema import COMPLETION_THRESHOLD, TIMESTAMP, with_derived
from vidrec.features import derive
from vidrec.features.asof import asof, cumulate
from vidrec.features.crosses import CROSS_COLUMNS, CROSS_TABLE_KEYS, build_cross_tables, cross_features
from vidrec.features.derive import COUNTS, RATES
from vidrec.features.user_state import completed_pairs
from vidrec.features.video_stats import PRIOR_WEIGHT, count_aggs

_TABLES = ("glob", "video", "user", "user_cat", "cat", "user_creator", "history", "completions", *CROSS_TABLE_KEYS)
_KEYS: dict[str, list[str]] = {
    "glob": [],
    "video": ["video_id"],
    "user": ["user_id"],
    "user_cat": ["user_id", "category"],
    "cat": ["category"],
    "user_creator": ["user_id", "creator_id"],
    "history": ["user_id"],
    "completions": ["user_id", "rank"],
    **CROSS_TABLE_KEYS,
}

FEATURE_COLUMNS: tuple[str, ...] = (
    "v_impressions", "v_views", "v_completions", "v_likes", "v_dislikes",
    "v_completion_rate", "v_like_rate", "v_dislike_rate", "v_watch_rate",
    "video_age_days", "duration_seconds",
    "u_impressions", "u_views", "u_completions", "u_likes", "u_dislikes",
    "u_completion_rate", "u_mean_completion",
    "uc_views", "uc_affinity", "uc_completion_rate",
    "creator_views", "creator_disliked",
    *CROSS_COLUMNS,
)  # fmt: skip
"""Numeric columns :func:`point_in_time_features` adds (raw, before any transform)."""

USER_RAW: tuple[str, ...] = (
    "g_views", "g_completions", "g_completion_sum", "u_views", "u_completions", "u_completion_sum",
    "uc_views", "uc_completions", "cat_views", "creator_dislikes",
)  # fmt: skip
"""Raw as-of counts :func:`vidrec.features.derive.user_features` reads."""

VIDEO_STAT_FEATURES: dict[str, str] = {**{c: f"v_{c}" for c in COUNTS}, **{r: f"v_{r}" for r in RATES}}
"""Video statistic (:data:`vidrec.features.video_stats.VIDEO_STATS_SCHEMA` column) -> feature column."""


@dataclass(frozen=True)
class PointInTimeConfig:
    """Smoothing priors and the history length of the point-in-time features."""

    prior_weight: float = PRIOR_WEIGHT  # pseudo-views of the global rate in every video rate
    user_prior_weight: float = 5.0  # pseudo-watches of the global rate in user / affinity rates
    title_words: bool = True  # a video's title words count as tags in the user x tag affinities (crosses.py)
    history_len: int = 50  # completed videos kept per example for the user tower
    threshold: float = COMPLETION_THRESHOLD  # completion that counts as completed
    completion_cap: float = 1.0  # completion is capped here in a user's mean completion

    def __post_init__(self) -> None:
        for name in ("prior_weight", "user_prior_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"PointInTimeConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not isinstance(self.history_len, int) or self.history_len < 1:
            raise ValueError(f"PointInTimeConfig.history_len must be an integer >= 1, got {self.history_len!r}")
        if not self.threshold > 0:
            raise ValueError(f"PointInTimeConfig.threshold must be positive, got {self.threshold}")
        if not self.completion_cap > 0:
            raise ValueError(f"PointInTimeConfig.completion_cap must be positive, got {self.completion_cap}")


@dataclass
class EventTables:
    """Cumulative event counts per key and time, read as of any ts by :func:`point_in_time_features`."""

    config: PointInTimeConfig
    tables: dict[str, pl.DataFrame]
    n_categories: int
    compacted_at: datetime | None = None  # set by compact(): valid only for ts after this
    since: datetime | None = None  # set by build(since=...): valid only for ts at or after this

    @classmethod
    def build(cls, events: pl.DataFrame, videos: pl.DataFrame, config: PointInTimeConfig | None = None,
              since: datetime | None = None) -> EventTables:  # fmt: skip
        """Index ``events`` (canonical schema) using ``videos`` for durations, categories, creators.

        ``since``: the tables answer only for times at or after it (what the ranker's examples
        need), holding one row per key for everything earlier: memory grows with the events
        from ``since`` on, not with the whole log."""
        cfg = config or PointInTimeConfig()
        # a query, not a frame: each table streams its own pass over the log, so the joined
        # events (every column, every row) are never held beside the tables being built
        ev = with_derived(events.lazy(), videos, cfg.threshold).with_columns(pl.col("ts").cast(TIMESTAMP))
        meta = videos.select("video_id", "category", "creator_id")
        ev = ev.join(meta.lazy(), on="video_id", how="left")
        e = pl.col("event")
        counts = count_aggs()
        capped = pl.col("completion").clip(0.0, cfg.completion_cap).fill_null(0.0)
        watch = ev.filter(e == "watch")
        pairs = completed_pairs(events, videos, None, cfg.threshold).with_columns(pl.col("ts").cast(TIMESTAMP))
        tables = {
            "glob": cumulate(ev, [], {**counts, "completion_sum": capped.sum()}, since),
            "video": cumulate(ev, ["video_id"], counts, since),
            "user": cumulate(ev, ["user_id"], {**counts, "completion_sum": capped.sum()}, since),
            "user_cat": cumulate(watch, ["user_id", "category"], {k: counts[k] for k in ("views", "completions")},
                                 since),  # fmt: skip
            "cat": cumulate(watch, ["category"], {"views": counts["views"]}, since),
            "user_creator": cumulate(
                ev.filter(e.is_in(["watch", "dislike"])), ["user_id", "creator_id"],
                {k: counts[k] for k in ("views", "dislikes")}, since,
            ),
        }
        tables["history"], tables["completions"] = _history_tables(pairs)
        tables.update(build_cross_tables(ev, videos, cfg.title_words, since))
        n_cat = max(int(videos["category"].n_unique()), 1)
        return cls(cfg, tables, n_cat, since=since)

    def for_users(self, users: pl.Series) -> EventTables:
        """The same tables with the per-user ones cut to ``users``: their rows' features are
        unchanged, and the joins of a block of those users' rows read only their part."""
        out = {}
        for name, df in self.tables.items():
            if "user_id" in _KEYS[name]:
                df = df.filter(pl.col("user_id").is_in(users.cast(df.schema["user_id"]).implode()))
            out[name] = df
        return EventTables(self.config, out, self.n_categories, self.compacted_at, self.since)

    def compact(self) -> EventTables:
        """Keep the last row per key: the same answers for every ts after the last event."""
        if self.compacted_at is not None:
            return self
        last = self.tables["glob"]["ts"].max()
        out = {}
        for name, df in self.tables.items():
            keys = _KEYS[name]
            out[name] = df.tail(1) if not keys else df.unique(subset=keys, keep="last", maintain_order=True)
        comp = self.tables["completions"]
        top = pl.col("rank").max().over("user_id")
        out["completions"] = comp.filter(pl.col("rank") > top - self.config.history_len)
        return EventTables(self.config, out, self.n_categories, last, self.since)

    def save(self, directory: str | Path) -> Path:
        """Write every table as Parquet plus ``tables.json`` (config, categories, compaction time)."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df.write_parquet(root / f"{name}.parquet")
        meta: dict[str, Any] = {
            "config": asdict(self.config),
            "n_categories": self.n_categories,
            "compacted_at": None if self.compacted_at is None else self.compacted_at.isoformat(),
        }
        (root / "tables.json").write_text(json.dumps(meta, indent=2))
        return root

    @classmethod
    def load(cls, directory: str | Path) -> EventTables:
        """Read tables written by :meth:`save`."""
        root = Path(directory)
        meta = json.loads((root / "tables.json").read_text())
        tables = {name: pl.read_parquet(root / f"{name}.parquet") for name in _TABLES}
        at = meta["compacted_at"]
        config = dict(meta["config"])
        config.setdefault("title_words", False)  # tables saved before title words existed were built without
        return cls(PointInTimeConfig(**config), tables, meta["n_categories"],
                   None if at is None else datetime.fromisoformat(at))  # fmt: skip


def _history_tables(pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Completions so far per (user, ts) (``rank``), and each completion's rank per user.

    Completions are ranked in the order of :func:`completed_pairs` (first completion
    time, then video id), the order of ``recent_completed`` in the serving user state.
    """
    ordered = pairs.sort("user_id", "ts", "video_id").with_columns(
        rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user_id")
    )
    ranks = ordered.group_by("user_id", "ts").agg(rank=pl.col("rank").max()).sort("ts")
    return ranks, ordered.select("user_id", "rank", "video_id")


def _histories(df: pl.DataFrame, completions: pl.DataFrame, n: int) -> pl.DataFrame:
    """Add ``history``: the completions ranked (k - n, k] of the row's user, oldest first.

    Deduplicated by (user, k) and exploded to at most ``n`` slots per state, so the
    cost is linear in the number of distinct states, never in a user's full history.
    """
    k = pl.col("h_rank").cast(pl.Int64)
    states = df.select("user_id", k.alias("h_rank")).unique().filter(pl.col("h_rank") > 0)
    slots = states.with_columns(
        rank=pl.int_ranges((k - n + 1).clip(lower_bound=1), k + 1, dtype=pl.Int64)
    ).explode("rank")
    lists = (
        slots.join(completions, on=["user_id", "rank"], how="inner")
        .sort("user_id", "h_rank", "rank")
        .group_by("user_id", "h_rank", maintain_order=True)
        .agg(history=pl.col("video_id"))
    )
    empty = pl.lit([], dtype=pl.List(pl.String()))
    out = df.with_columns(k.alias("h_rank")).join(lists, on=["user_id", "h_rank"], how="left", maintain_order="left")
    return out.with_columns(pl.col("history").fill_null(empty))


def histories_at(rows: pl.DataFrame, tables: EventTables) -> pl.DataFrame:
    """``rows`` (user_id, ts, ...) with ``history``: the user's last completed videos strictly before ts.

    The same history :func:`point_in_time_features` attaches with ``with_history``, without
    the count features; used where only the user's state is needed (e.g. to retrieve
    hard negatives as the first stage would have at ts). Row order is kept.
    """
    df = rows.with_row_index("_row").with_columns(pl.col("ts").cast(TIMESTAMP)).sort("ts")
    df = asof(df, tables.tables["history"], ["user_id"], "h_", ["rank"])
    df = df.with_columns(pl.col("h_rank").fill_null(0))
    df = _histories(df, tables.tables["completions"], tables.config.history_len)
    return df.sort("_row").select(*rows.columns, "history")


def point_in_time_features(
    rows: pl.DataFrame,
    tables: EventTables,
    videos: pl.DataFrame,
    with_history: bool = False,
) -> pl.DataFrame:
    """``rows`` (user_id, video_id, ts, any extra columns) with :data:`FEATURE_COLUMNS` added.

    Each feature uses only events strictly before the row's ``ts``. Video metadata
    (category, creator, duration, upload time) comes from ``videos``, so new uploads
    unknown to ``tables`` get zero counts and prior rates. With ``with_history`` a
    ``history`` column (the user's last ``history_len`` completed videos before ts,
    most recent last) is added too. The row order of ``rows`` is kept.
    """
    cfg = tables.config
    if tables.since is not None and rows.height and rows["ts"].min() < tables.since:  # type: ignore[operator]
        raise ValueError(f"these feature tables answer only for ts from {tables.since}; got a row at "
                         f"{rows['ts'].min()}: build EventTables without since for earlier timestamps")  # fmt: skip
    if tables.compacted_at is not None and rows.height:
        earliest = rows["ts"].min()
        if earliest <= tables.compacted_at:  # type: ignore[operator]
            raise ValueError(
                f"compacted feature tables answer only for ts after {tables.compacted_at}; "
                f"got a row at {earliest}: build EventTables from the event log for past timestamps"
            )
    t = tables.tables
    meta = videos.select("video_id", "category", "creator_id", "duration_seconds", "uploaded_at")
    df = (
        rows.with_row_index("_row")
        .with_columns(pl.col("ts").cast(TIMESTAMP))
        .join(meta, on="video_id", how="left", maintain_order="left")
        .sort("ts")
    )
    reads = [  # (table, keys, prefix, columns)
        ("glob", [], "g_", [*COUNTS, "completion_sum"]),
        ("video", ["video_id"], "v_", list(COUNTS)),
        ("user", ["user_id"], "u_", [*COUNTS, "completion_sum"]),
        ("user_cat", ["user_id", "category"], "uc_", ["views", "completions"]),
        ("cat", ["category"], "cat_", ["views"]),
        ("user_creator", ["user_id", "creator_id"], "creator_", ["views", "dislikes"]),
        ("history", ["user_id"], "h_", ["rank"]),
    ]
    for name, keys, prefix, cols in reads:
        df = asof(df, t[name], keys, prefix, cols)
    counts = [prefix + c for _, _, prefix, cols in reads for c in cols]
    df = df.with_columns(pl.col(c).fill_null(0).cast(pl.Float64) for c in counts)
    df = _derive(df, cfg, tables.n_categories)
    if with_history:
        df = _histories(df, t["completions"], cfg.history_len)
    df = cross_features(df, t, videos, cfg.user_prior_weight, cfg.title_words)
    keep = [*rows.columns, *(c for c in FEATURE_COLUMNS if c not in rows.columns)]
    if with_history:
        keep.append("history")
    return df.sort("_row").select(keep)



def _derive(df: pl.DataFrame, cfg: PointInTimeConfig, n_categories: int) -> pl.DataFrame:
    """Rates, affinity and age from the raw as-of counts."""
    def col(name: str) -> np.ndarray:
        return df[name].cast(pl.Float64).to_numpy()

    raw = {name: col(name) for name in USER_RAW}
    out = derive.user_features(raw, cfg.user_prior_weight, n_categories)
    counts = {c: col(f"v_{c}") for c in COUNTS}
    totals = {c: col(f"g_{c}") for c in COUNTS}
    rates = derive.video_rates(counts, totals, cfg.prior_weight)
    out |= {VIDEO_STAT_FEATURES[r]: v for r, v in rates.items()}
    at = df["ts"].cast(TIMESTAMP).dt.epoch("us").to_numpy()
    uploaded = df["uploaded_at"].cast(TIMESTAMP).dt.epoch("us").cast(pl.Float64).fill_null(np.nan).to_numpy()
    out["video_age_days"] = np.nan_to_num(derive.age_days(at, uploaded), nan=0.0)
    duration = df["duration_seconds"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    out["duration_seconds"] = np.nan_to_num(duration, nan=0.0)
    return df.with_columns(pl.Series(name, values, dtype=pl.Float64) for name, values in out.items())
