"""Summary statistics of any data set, to compare it with what real logs look like.

The same figures are printed for simulated and real data (see DATA-FACTS.md), so a
simulated platform can be checked against KuaiRec and MovieLens at a glance.
"""

from __future__ import annotations

import math

import polars as pl

from vidrec.data.dataset import Dataset
from vidrec.data.schema import COMPLETION_THRESHOLD, EVENT_KINDS

COMPLETION_QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
FRESH_DAYS = 7


def _share_of_top(counts: pl.Series, n_items: int, share: float) -> float | None:
    """Share of the total held by the top ``ceil(share * n_items)`` items."""
    total = counts.sum()
    if not total:
        return None
    top = max(1, math.ceil(share * n_items))
    return float(counts.sort(descending=True).head(top).sum() / total)


def _watch_stats(watches: pl.DataFrame, threshold: float) -> dict:
    """Completion figures over watch rows that have a duration."""
    c = watches["completion"].drop_nulls()
    if c.is_empty():
        return {"completion_rate": None, "completion_quantiles": None, "completion_above_1": None}
    return {
        "completion_rate": float((c >= threshold).mean()),
        "completion_quantiles": {
            f"p{round(q * 100)}": float(c.quantile(q, interpolation="linear")) for q in COMPLETION_QUANTILES
        },
        "completion_above_1": float((c > 1.0).mean()),
    }


def _activity(events: pl.DataFrame, users: pl.DataFrame) -> dict:
    """Events per user over the users table (users without events count as 0)."""
    per_user = users.select("user_id").join(
        events.group_by("user_id").len(), on="user_id", how="left"
    )["len"].fill_null(0)
    if per_user.is_empty():
        return {"median": None, "p90": None, "max": None}
    return {
        "median": float(per_user.median()),
        "p90": float(per_user.quantile(0.9, interpolation="linear")),
        "max": int(per_user.max()),
    }


def describe(ds: Dataset, completion_threshold: float = COMPLETION_THRESHOLD) -> dict:
    """Sizes, completion, likes, popularity and activity skew, and freshness of a data set.

    Rates per watch are ``None`` when there are no watches. Popularity skew is the share
    of watches held by the top 1% and 10% of the catalogue (``videos`` table).
    """
    if not completion_threshold > 0:
        raise ValueError(f"completion_threshold must be positive, got {completion_threshold}")
    events, videos = ds.events, ds.videos
    counts = dict(events.group_by("event").len().iter_rows())
    by_kind = {kind: int(counts.get(kind, 0)) for kind in EVENT_KINDS}
    watches = events.filter(pl.col("event") == "watch").join(
        videos.select("video_id", "duration_seconds", "uploaded_at"), on="video_id", how="left"
    ).with_columns(completion=pl.col("watch_seconds") / pl.col("duration_seconds"))
    n_watch = by_kind["watch"]
    per_video = watches.group_by("video_id").len()["len"]
    age = pl.col("ts") - pl.col("uploaded_at")
    fresh = watches.select(((age >= pl.duration(days=0)) & (age < pl.duration(days=FRESH_DAYS))).mean()).item()
    return {
        "users": ds.users.height,
        "videos": videos.height,
        "events": events.height,
        "events_by_kind": by_kind,
        "first_event": None if events.is_empty() else events["ts"].min().isoformat(),
        "last_event": None if events.is_empty() else events["ts"].max().isoformat(),
        "completion_threshold": completion_threshold,
        **_watch_stats(watches, completion_threshold),
        "like_rate": by_kind["like"] / n_watch if n_watch else None,
        "dislike_rate": by_kind["dislike"] / n_watch if n_watch else None,
        "top1pct_watch_share": _share_of_top(per_video, videos.height, 0.01),
        "top10pct_watch_share": _share_of_top(per_video, videos.height, 0.10),
        "events_per_user": _activity(events, ds.users),
        "fresh_watch_share": None if fresh is None else float(fresh),
    }


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_summary(stats: dict) -> str:
    """A readable multi-line table of :func:`describe`'s output."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    q = stats.get("completion_quantiles") or {}
    act = stats["events_per_user"]
    kinds = stats["events_by_kind"]
    rows = [
        ("users", _fmt(stats["users"])),
        ("videos", _fmt(stats["videos"])),
        ("events", _fmt(stats["events"])),
        *((f"  {k}", _fmt(kinds[k])) for k in EVENT_KINDS),
        ("time range", f"{stats['first_event'] or 'n/a'} .. {stats['last_event'] or 'n/a'}"),
        (f"completion rate (>= {stats['completion_threshold']:g})", pct(stats["completion_rate"])),
        ("completion p10/p25/p50/p75/p90/p99", " / ".join(f"{v:.2f}" for v in q.values()) or "n/a"),
        ("completion > 1 (loops)", pct(stats["completion_above_1"])),
        ("likes per watch", pct(stats["like_rate"])),
        ("dislikes per watch", pct(stats["dislike_rate"])),
        ("watches on top 1% / 10% of videos",
         f"{pct(stats['top1pct_watch_share'])} / {pct(stats['top10pct_watch_share'])}"),
        ("events per user median/p90/max", f"{_fmt(act['median'])} / {_fmt(act['p90'])} / {_fmt(act['max'])}"),
        (f"watches of uploads < {FRESH_DAYS} days old", pct(stats["fresh_watch_share"])),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
