"""Likelihood of a simulated log given users' interests and videos' qualities.

Everything the log says about a user's topic interests, as terms that depend on one
(user, topic) affinity each, so they can be tabulated on an affinity grid once and read
by interpolation at every sampler step (:mod:`vidrec.evaluation.log_oracle`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.data.simulator import GroundTruth
from vidrec.data.simulator.behaviour import US_PER_DAY, freshness


def logged_outcomes(truth: GroundTruth, events: pl.DataFrame) -> pl.DataFrame:
    """One row per logged impression with what followed it.

    Returns ``user, video`` (ground-truth indices), ``ts_us``, ``watched``, ``completed``,
    ``liked``, ``disliked``, ``abandoned`` (watched under 10%). A watch belongs to the latest
    impression of the same user and video at or before it; a like or dislike to the latest
    watch.
    """
    ev = events.select("user_id", "video_id", "ts", "event", "watch_seconds").sort("ts")
    imps = ev.filter(pl.col("event") == "impression").select("user_id", "video_id", "ts")
    watches = ev.filter(pl.col("event") == "watch").select("user_id", "video_id", "ts", "watch_seconds")
    reactions = ev.filter(pl.col("event").is_in(["like", "dislike"])).select("user_id", "video_id", "ts", "event")
    keys = ["user_id", "video_id"]
    watches = watches.join_asof(imps.with_columns(imp_ts=pl.col("ts")), on="ts", by=keys, strategy="backward",
                              check_sortedness=False)  # sorted by ts above; polars cannot check with `by`
    reactions = reactions.join_asof(watches.select(*keys, "ts", watch_ts=pl.col("ts")), on="ts", by=keys,
                                    strategy="backward", check_sortedness=False).drop_nulls("watch_ts")  # fmt: skip
    liked = reactions.group_by(*keys, "watch_ts").agg(
        liked=(pl.col("event") == "like").any(), disliked=(pl.col("event") == "dislike").any()
    )
    watches = (
        watches.drop_nulls("imp_ts")
        .join(liked, left_on=[*keys, "ts"], right_on=[*keys, "watch_ts"], how="left")
        .unique([*keys, "imp_ts"], keep="first")
    )
    out = imps.join(watches.select(*keys, "imp_ts", "watch_seconds", "liked", "disliked"),
                    left_on=[*keys, "ts"], right_on=[*keys, "imp_ts"], how="left")  # fmt: skip
    users = truth._index(out["user_id"].to_list(), truth.user_ids, "user")
    videos = truth._index(out["video_id"].to_list(), truth.video_ids, "video")
    completion = out["watch_seconds"].fill_null(0.0).to_numpy() / truth.duration[videos]
    watched = out["watch_seconds"].is_not_null().to_numpy()
    return pl.DataFrame(
        {
            "user": users,
            "video": videos,
            "ts_us": out["ts"].dt.epoch("us").to_numpy(),
            "watched": watched,
            "completed": watched & (completion >= 0.8),
            "liked": out["liked"].fill_null(False).to_numpy(),
            "disliked": out["disliked"].fill_null(False).to_numpy(),
            "abandoned": watched & (completion < 0.1),
        }
    )


@dataclass
class OutcomeTerms:
    """Bernoulli terms ``log sigmoid(sign * (const + quality_coef * quality + slope * affinity))``.

    One per outcome of each impression (watched, completed if watched, liked if watched,
    disliked if watched and not liked); ``cell`` is ``user * topics + topic``.
    """

    cell: np.ndarray
    video: np.ndarray
    const: np.ndarray
    quality_coef: np.ndarray
    slope: np.ndarray
    sign: np.ndarray

    def logits(self, quality: np.ndarray, affinity: np.ndarray) -> np.ndarray:
        """``sign * logit`` of every term, given each video's quality and each term's affinity."""
        return self.sign * (self.const + self.quality_coef * quality[self.video] + self.slope * affinity)


def outcome_terms(truth: GroundTruth, o: pl.DataFrame) -> OutcomeTerms:
    """The outcome terms of the impressions in ``o`` (from :func:`logged_outcomes`)."""
    p = truth.params
    u, v = o["user"].to_numpy(), o["video"].to_numpy()
    watched, completed = o["watched"].to_numpy(), o["completed"].to_numpy()
    liked, disliked, abandoned = (o[c].to_numpy() for c in ("liked", "disliked", "abandoned"))
    age = o["ts_us"].to_numpy() - truth.uploaded_us[v]
    pen = truth.language_penalty[truth.user_language[u], truth.video_language[v]]
    ones = np.ones(u.size, dtype=bool)
    parts = [  # (which impressions, const, quality coefficient, interest slope, outcome)
        (ones, p.watch_bias + p.watch_fresh * freshness(age, p) + pen, p.watch_quality, p.watch_interest, watched),
        (watched, p.full_bias - p.full_length * np.log(truth.duration[v] / 60.0), p.full_quality,
         p.full_interest, completed),
        (watched, p.like_bias + p.like_completed * completed, p.like_quality, p.like_interest, liked),
        (watched & ~liked, p.dislike_bias + p.dislike_abandoned * abandoned, p.dislike_quality,
         p.dislike_interest, disliked),
    ]  # fmt: skip
    cell = u * truth.n_topics + truth.topic[v]

    def stack(values) -> np.ndarray:
        return np.concatenate([np.broadcast_to(x, u.shape)[m] for (m, *_), x in zip(parts, values)])

    return OutcomeTerms(
        cell=stack([cell] * 4), video=stack([v] * 4), const=stack([c for _, c, *_ in parts]),
        quality_coef=stack([np.float64(b) for _, _, b, _, _ in parts]),
        slope=stack([np.float64(s) for *_, s, _ in parts]),
        sign=stack([np.where(y, 1.0, -1.0) for *_, y in parts]),
    )


def exposure_terms(truth: GroundTruth, o: pl.DataFrame):
    """Each impression's probability under the logging policy as ``A * estimate[topic] + B``.

    The policy's estimate of the user's interest in the topic is ``(1 - w) * theta + w *
    noise``; ``A`` is the personalised source's share of that topic's pick, ``B`` the popular
    and fresh sources' chance. On a day when some topic had nothing showable, a personal pick
    of that topic fell back to the popular source, which ties every impression to other
    topics' interests: those days' impressions are left out (conditioning on less is exact).
    """
    pol = truth.policy
    u, v = o["user"].to_numpy(), o["video"].to_numpy()
    day = np.clip((o["ts_us"].to_numpy() - pol.start_us) // US_PER_DAY, 0, pol.weights.shape[0] - 1)
    weights = pol.weights.astype(np.float64)
    total = weights.sum(axis=1)  # (days,)
    by_topic = np.zeros((weights.shape[0], truth.n_topics))
    np.add.at(by_topic.T, truth.topic, weights.T)
    pool = pol.fresh_pool.sum(axis=1)  # (days,)
    full = (by_topic > 0).all(axis=1)[day]
    u, v, day = u[full], v[full], day[full]
    w, topic = weights[day, v], truth.topic[v]
    popular = 1.0 - pol.personal_share - pol.fresh_share
    fresh = np.where(pool[day] > 0, pol.fresh_share * pol.fresh_pool[day, v] / np.maximum(pool[day], 1),
                     pol.fresh_share * w / total[day])  # fmt: skip
    a = pol.personal_share * w / np.where(by_topic[day, topic] > 0, by_topic[day, topic], np.inf)
    b = popular * w / total[day] + fresh
    return u * truth.n_topics + topic, a, b, pol.noise_weight * pol.noise[u, topic].astype(np.float64)


def tabulate(cells: np.ndarray, n_cells: int, grid: np.ndarray, term) -> np.ndarray:
    """(n_cells, G) sum of ``term(rows)`` (a (len(rows), G) array) over the terms of each cell."""
    table = np.zeros((n_cells, grid.size))
    order = np.argsort(cells, kind="stable")
    cells = cells[order]
    step = max(1, (1 << 21) // grid.size)
    for lo in range(0, cells.size, step):  # chunks of terms, bounded memory
        hi = min(lo + step, cells.size)
        values = term(order[lo:hi])
        starts = np.flatnonzero(np.r_[True, cells[lo + 1:hi] != cells[lo:hi - 1]])
        table[cells[lo:hi][starts]] += np.add.reduceat(values, starts, axis=0)
    return table


def bernoulli(const, slope, sign, grid):
    """``log sigmoid(sign * (const + slope * affinity))`` of the chosen terms on ``grid``."""
    return lambda rows: -np.logaddexp(0.0, -sign[rows, None] * (const[rows, None] + slope[rows, None] * grid[None, :]))


def interpolate(table: np.ndarray, a: np.ndarray, lo: float, step: float) -> np.ndarray:
    """Linear interpolation of each row of ``table`` at the matching entry of ``a``."""
    pos = np.clip((a - lo) / step, 0.0, table.shape[1] - 1 - 1e-9)
    i = pos.astype(np.int64)
    frac = pos - i
    rows = np.arange(a.size)
    return table[rows, i] * (1.0 - frac) + table[rows, i + 1] * frac
