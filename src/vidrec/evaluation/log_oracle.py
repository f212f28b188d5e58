"""The best any recommender could do knowing only the log: a Bayesian oracle for the simulator.

The oracle of :mod:`vidrec.evaluation.oracle` knows every user's true interests, which no
recommender can. This one knows everything else the simulator knows (the response model,
every video's topic, quality, length, language and upload time, the prior each user's
interests were drawn from) but must infer the interests from the user's logged impressions
and their outcomes. It ranks by the posterior expected P(complete | shown), which is the
Bayes-optimal choice for expected completions, so its share of the full oracle bounds what a
recommender learning from that log can reach on average.

The posterior is sampled by Metropolis-within-Gibbs on log-gamma coordinates (interests =
normalised independent gammas, so the Dirichlet prior factorises), vectorised over users.
Each user's log-likelihood depends on an interest only through the affinity of its topic, so
it is tabulated once per (user, topic) on an affinity grid and interpolated at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from vidrec.data.simulator import GroundTruth
from vidrec.data.simulator.behaviour import US_PER_DAY, freshness, log_affinity, response_probabilities
from vidrec.data.simulator.groundtruth import to_epoch_us
from vidrec.errors import DataError


@dataclass(frozen=True)
class LogOracleConfig:
    """Sampler settings; the defaults give a stable posterior on the default platform."""

    burn_in: int = 300  # sweeps (one MH step per topic each) before samples are kept
    samples: int = 200  # sweeps whose states are kept
    likelihood_grid: int = 192  # affinity points the per-(user, topic) log-likelihood is tabulated on
    posterior_grid: int = 64  # affinity points the posterior of each interest is binned on
    target_acceptance: float = 0.4  # step sizes adapt towards this during burn-in
    exposure: bool = True  # also learn from what the logging policy chose to show (it is personalised)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("burn_in", "samples", "likelihood_grid", "posterior_grid"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (2 if "grid" in name else 0) or (name == "samples" and value < 1):
                raise ValueError(f"LogOracleConfig.{name} must be a positive integer (grids >= 2), got {value!r}")
        if not 0.0 < self.target_acceptance < 1.0:
            raise ValueError(f"LogOracleConfig.target_acceptance must be in (0, 1), got {self.target_acceptance}")


@dataclass
class InterestPosterior:
    """Each user's posterior over topic interests, as binned affinities and mean interests."""

    user_ids: list[str]
    grid: np.ndarray  # (G,) affinity values, see behaviour.log_affinity
    weights: np.ndarray  # (users, topics, G) posterior probability mass on each grid point
    mean_interest: np.ndarray  # (users, topics) posterior mean of the interests
    acceptance: float  # mean MH acceptance rate after burn-in


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


def _likelihood_terms(truth: GroundTruth, o: pl.DataFrame):
    """Bernoulli terms ``log sigmoid(sign * (const + slope * affinity))`` of every impression."""
    p = truth.params
    u, v = o["user"].to_numpy(), o["video"].to_numpy()
    watched, completed = o["watched"].to_numpy(), o["completed"].to_numpy()
    liked, disliked, abandoned = (o[c].to_numpy() for c in ("liked", "disliked", "abandoned"))
    q, age = truth.quality[v], o["ts_us"].to_numpy() - truth.uploaded_us[v]
    pen = truth.language_penalty[truth.user_language[u], truth.video_language[v]]
    ones = np.ones(u.size, dtype=bool)
    parts = [  # (which impressions, const, slope, outcome)
        (ones, p.watch_bias + p.watch_quality * q + p.watch_fresh * freshness(age, p) + pen, p.watch_interest, watched),
        (watched, p.full_bias + p.full_quality * q - p.full_length * np.log(truth.duration[v] / 60.0),
         p.full_interest, completed),
        (watched, p.like_bias + p.like_quality * q + p.like_completed * completed, p.like_interest, liked),
        (watched & ~liked, p.dislike_bias + p.dislike_quality * q + p.dislike_abandoned * abandoned,
         p.dislike_interest, disliked),
    ]  # fmt: skip
    cell = u * truth.n_topics + truth.topic[v]
    cells = np.concatenate([cell[m] for m, *_ in parts])
    const = np.concatenate([np.broadcast_to(c, u.shape)[m] for m, c, _, _ in parts])
    slope = np.concatenate([np.full(int(m.sum()), s) for m, _, s, _ in parts])
    sign = np.concatenate([np.where(y[m], 1.0, -1.0) for m, _, _, y in parts])
    return cells, const, slope, sign


def _exposure_terms(truth: GroundTruth, o: pl.DataFrame):
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


def _tabulate(cells: np.ndarray, n_cells: int, grid: np.ndarray, term) -> np.ndarray:
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


def _bernoulli(const, slope, sign, grid):
    """``log sigmoid(sign * (const + slope * affinity))`` of the chosen terms on ``grid``."""
    return lambda rows: -np.logaddexp(0.0, -sign[rows, None] * (const[rows, None] + slope[rows, None] * grid[None, :]))


def _interp(table: np.ndarray, a: np.ndarray, lo: float, step: float) -> np.ndarray:
    """Linear interpolation of each row of ``table`` at the matching entry of ``a``."""
    pos = np.clip((a - lo) / step, 0.0, table.shape[1] - 1 - 1e-9)
    i = pos.astype(np.int64)
    frac = pos - i
    rows = np.arange(a.size)
    return table[rows, i] * (1.0 - frac) + table[rows, i + 1] * frac


def interest_posterior(truth: GroundTruth, events: pl.DataFrame, user_ids: list[str],
                       config: LogOracleConfig | None = None) -> InterestPosterior:
    """Sample each user's interest posterior given their logged impressions in ``events``."""
    cfg = config or LogOracleConfig()
    if truth.interest_prior is None:
        raise DataError("this simulation has no ground_truth/interest_prior.npy",
                        "simulate it again with this version of vidrec (`vidrec simulate`)")
    if cfg.exposure and truth.policy is None:
        raise DataError("this simulation has no ground_truth/policy.npz (the logging policy's choices)",
                        "simulate it again with this version of vidrec, or set LogOracleConfig.exposure = False")
    rng = np.random.default_rng(cfg.seed)
    users = truth._index(user_ids, truth.user_ids, "user")
    n, k = users.size, truth.n_topics
    local = np.full(truth.user_language.size, -1)
    local[users] = np.arange(n)
    o = logged_outcomes(truth, events.filter(pl.col("user_id").is_in(list(user_ids))))
    a_lo, a_hi = float(log_affinity(np.zeros(1), k)[0]), float(log_affinity(np.ones(1), k)[0])
    grid = np.linspace(a_lo, a_hi, cfg.likelihood_grid)
    cells, const, slope, sign = _likelihood_terms(truth, o)
    table = _tabulate(local[cells // k] * k + cells % k, n * k, grid, _bernoulli(const, slope, sign, grid))
    if cfg.exposure:
        cells, a, b, noise = _exposure_terms(truth, o)
        theta = (np.exp(grid) - 0.1) / k  # the interest at each grid affinity (inverse of log_affinity)
        keep = 1.0 - truth.policy.noise_weight
        table += _tabulate(local[cells // k] * k + cells % k, n * k, grid, lambda r: np.log(np.maximum(
            a[r, None] * (keep * theta[None, :] + noise[r, None]) + b[r, None], 1e-300)))
    step_a = grid[1] - grid[0]
    alpha = truth.interest_prior[users].astype(np.float64)  # (n, k)

    def loglik(z: np.ndarray) -> np.ndarray:
        theta = np.exp(z - z.max(axis=1, keepdims=True))
        theta /= theta.sum(axis=1, keepdims=True)
        return _interp(table, log_affinity(theta, k).ravel(), a_lo, step_a).reshape(n, k).sum(axis=1)

    z = np.log(rng.gamma(alpha) + 1e-300)
    current = loglik(z)
    scale = np.ones((n, k))
    accepted = np.zeros((n, k))
    post = np.linspace(a_lo, a_hi, cfg.posterior_grid)
    weights = np.zeros((n * k, cfg.posterior_grid))
    mean_theta = np.zeros((n, k))
    for sweep in range(cfg.burn_in + cfg.samples):  # a loop over sweeps; each step is vectorised over users
        for j in range(k):
            proposal = z.copy()
            proposal[:, j] += scale[:, j] * rng.standard_normal(n)
            cand = loglik(proposal)
            log_ratio = (cand - current + alpha[:, j] * (proposal[:, j] - z[:, j])
                         - (np.exp(proposal[:, j]) - np.exp(z[:, j])))  # fmt: skip
            ok = np.log(rng.random(n)) < log_ratio
            z[ok, j], current[ok] = proposal[ok, j], cand[ok]
            accepted[:, j] += ok
        if sweep < cfg.burn_in and (sweep + 1) % 20 == 0:  # adapt step sizes, then freeze them
            scale *= np.exp(2.0 * (accepted / 20.0 - cfg.target_acceptance))
            np.clip(scale, 0.02, 50.0, out=scale)
            accepted[:] = 0
        if sweep == cfg.burn_in - 1:
            accepted[:] = 0  # the reported acceptance counts sampling sweeps only
        if sweep >= cfg.burn_in:
            theta = np.exp(z - z.max(axis=1, keepdims=True))
            theta /= theta.sum(axis=1, keepdims=True)
            mean_theta += theta
            pos = np.clip((log_affinity(theta, k).ravel() - a_lo) / (post[1] - post[0]), 0.0, post.size - 1 - 1e-9)
            i = pos.astype(np.int64)
            frac = pos - i
            np.add.at(weights, (np.arange(n * k), i), 1.0 - frac)
            np.add.at(weights, (np.arange(n * k), i + 1), frac)
    acceptance = float(accepted.sum() / (cfg.samples * n * k))
    return InterestPosterior(
        user_ids=list(user_ids),
        grid=post,
        weights=(weights / cfg.samples).reshape(n, k, cfg.posterior_grid),
        mean_interest=mean_theta / cfg.samples,
        acceptance=acceptance,
    )


def log_informed_best(truth: GroundTruth, posterior: InterestPosterior, now: datetime, k: int = 10,
                      exclude: dict[str, set[str]] | None = None) -> pl.DataFrame:
    """Each user's ``k`` available videos of highest posterior expected P(complete) at ``now``.

    Returns ``user_id, rank, video_id, p_expected`` (the oracle's own estimate; judge the
    slate with :func:`vidrec.evaluation.oracle.oracle_ratio`, which uses the true values).
    """
    users = truth._index(posterior.user_ids, truth.user_ids, "user")
    n_videos = truth.topic.size
    now_us = int(to_epoch_us(now, 1)[0])
    age = now_us - truth.uploaded_us
    scores = np.zeros((users.size, n_videos))
    languages = truth.user_language[users]
    for lang in np.unique(languages):  # a handful of languages
        who = np.flatnonzero(languages == lang)
        pen = truth.language_penalty[lang, truth.video_language]
        watch, full = response_probabilities(  # (videos, G)
            truth.params, posterior.grid[None, :], pen[:, None], truth.quality[:, None],
            truth.duration[:, None], age[:, None],
        )
        p = watch * full
        for topic in range(truth.n_topics):  # tens of topics, each one matrix product
            vids = np.flatnonzero(truth.topic == topic)
            if vids.size:
                scores[np.ix_(who, vids)] = posterior.weights[who, topic, :] @ p[vids].T
    scores[:, ~truth.available(now_us)] = -np.inf
    pos, video = truth._exclusions(posterior.user_ids, exclude)
    scores[pos, video] = -np.inf
    kk = min(k, n_videos)
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    val = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-val, axis=1, kind="stable")
    top, val = np.take_along_axis(top, order, axis=1), np.take_along_axis(val, order, axis=1)
    keep = np.isfinite(val).ravel()
    return pl.DataFrame(
        {
            "user_id": pl.Series(np.repeat(np.array(posterior.user_ids, dtype=object), kk), dtype=pl.String),
            "rank": np.tile(np.arange(1, kk + 1, dtype=np.int32), users.size),
            "video_id": truth.video_ids.to_ids(top.ravel()),
            "p_expected": val.ravel(),
        }
    ).filter(pl.Series(keep))
