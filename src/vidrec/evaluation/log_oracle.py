"""The best any recommender could do knowing only the log: a Bayesian oracle for the simulator.

The oracle of :mod:`vidrec.evaluation.oracle` knows every user's true interests, which no
recommender can. This one knows the response model, the logging policy and each video's
topic, length, language and upload time, but must infer each user's topic interests, and
optionally each video's quality, from the log: the logged outcomes, what the (personalised)
logging policy chose to show, and for back-catalogue videos their popularity before the
log began. It ranks by the posterior expected P(complete | shown), the Bayes-optimal choice
for expected completions, so its share of the full oracle bounds what any recommender
learning from that log can reach on average (it still knows more than the log: the topics
and the model, so it is an upper bound, not a target).

Sampling: Metropolis-within-Gibbs, vectorised over users and videos. Interests are
normalised independent gammas (the Dirichlet prior factorises in log-gamma coordinates);
each user's likelihood depends on an interest only through its topic's affinity, so it is
tabulated per (user, topic) on an affinity grid and interpolated at every step. Qualities
follow the simulator's hierarchy (creator, then video), creators drawn exactly (conjugate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from vidrec.data.simulator import GroundTruth
from vidrec.data.simulator.behaviour import log_affinity, response_probabilities
from vidrec.data.simulator.groundtruth import to_epoch_us
from vidrec.data.simulator.world import CREATOR_QUALITY_SD, PRIOR_VIEWS_LOG, VIDEO_QUALITY_SD
from vidrec.errors import DataError
from vidrec.evaluation.log_likelihood import (
    bernoulli,
    exposure_terms,
    interpolate,
    logged_outcomes,
    outcome_terms,
    tabulate,
)

ADAPT_EVERY = 20  # iterations between step-size adaptations during burn-in


@dataclass(frozen=True)
class LogOracleConfig:
    """What the oracle may learn from and how long it samples."""

    exposure: bool = True  # also learn from what the logging policy chose to show (it is personalised)
    infer_quality: bool = False  # False: knows every video's quality; True: infers it from the log too
    burn_in: int = 300  # iterations before samples are kept (one MH step per topic and per video each)
    samples: int = 200  # iterations whose states are kept
    likelihood_grid: int = 96  # affinity points the per-(user, topic) log-likelihood is tabulated on
    posterior_grid: int = 64  # affinity points the posterior of each interest is binned on
    target_acceptance: float = 0.4  # step sizes adapt towards this during burn-in
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("burn_in", "samples", "likelihood_grid", "posterior_grid"):
            value, least = getattr(self, name), {"burn_in": 0, "samples": 1}.get(name, 2)
            if not isinstance(value, int) or value < least:
                raise ValueError(f"LogOracleConfig.{name} must be an integer >= {least}, got {value!r}")
        if not 0.0 < self.target_acceptance < 1.0:
            raise ValueError(f"LogOracleConfig.target_acceptance must be in (0, 1), got {self.target_acceptance}")


@dataclass
class LogPosterior:
    """Each user's posterior over topic interests (binned affinities) and, if inferred, video qualities."""

    user_ids: list[str]
    grid: np.ndarray  # (G,) affinity values, see behaviour.log_affinity
    weights: np.ndarray  # (users, topics, G) posterior probability mass on each grid point
    mean_interest: np.ndarray  # (users, topics) posterior mean of the interests
    quality: np.ndarray | None  # (samples, videos) posterior draws; None when the truth was known
    acceptance: float  # mean MH acceptance rate of the interest steps after burn-in


def _check(truth: GroundTruth, cfg: LogOracleConfig) -> None:
    if truth.interest_prior is None:
        raise DataError("this simulation has no ground_truth/interest_prior.npy",
                        "simulate it again with this version of vidrec (`vidrec simulate`)")  # fmt: skip
    if cfg.exposure and truth.policy is None:
        raise DataError("this simulation has no ground_truth/policy.npz (the logging policy's choices)",
                        "simulate it again with this version of vidrec, or set LogOracleConfig.exposure = False")
    if cfg.infer_quality and not truth.has_creators:
        raise DataError("this simulation's ground truth has no creators or prior views per video",
                        "simulate it again with this version of vidrec, or set LogOracleConfig.infer_quality = False")


class _Qualities:
    """Video and creator qualities under the simulator's hierarchy, updated by MH and Gibbs."""

    def __init__(self, truth: GroundTruth, rng: np.random.Generator) -> None:
        self.truth, self.rng = truth, rng
        self.n_creators = int(truth.creator.max()) + 1
        self.per_creator = np.bincount(truth.creator, minlength=self.n_creators)
        self.creator = rng.normal(0.0, CREATOR_QUALITY_SD, self.n_creators)
        self.video = self.creator[truth.creator] + rng.normal(0.0, VIDEO_QUALITY_SD, truth.creator.size)
        self.scale = np.full(truth.creator.size, 0.5)
        self.accepted = np.zeros(truth.creator.size)
        base, per_quality, per_fame, noise = PRIOR_VIEWS_LOG
        residual = np.log(np.maximum(truth.prior_views, 1e-300)) - base - per_fame * truth.creator_fame
        self._views = (residual, per_quality, noise)

    def log_prior(self, q: np.ndarray) -> np.ndarray:
        """Per video: its quality given its creator's, and its views before the log if it had any."""
        resid, per_quality, noise = self._views
        views = np.where(self.truth.back_catalogue, -0.5 * ((resid - per_quality * q) / noise) ** 2, 0.0)
        return -0.5 * ((q - self.creator[self.truth.creator]) / VIDEO_QUALITY_SD) ** 2 + views

    def step(self, loglik) -> None:
        """One MH step per video (``loglik(q)`` gives each video's log-likelihood), then the creators."""
        proposal = self.video + self.scale * self.rng.standard_normal(self.video.size)
        log_ratio = loglik(proposal) + self.log_prior(proposal) - loglik(self.video) - self.log_prior(self.video)
        ok = np.log(self.rng.random(self.video.size)) < log_ratio
        self.video[ok] = proposal[ok]
        self.accepted += ok
        precision = 1.0 / CREATOR_QUALITY_SD**2 + self.per_creator / VIDEO_QUALITY_SD**2
        total = np.bincount(self.truth.creator, self.video, minlength=self.n_creators) / VIDEO_QUALITY_SD**2
        self.creator = total / precision + self.rng.standard_normal(self.n_creators) / np.sqrt(precision)


def _softmax(z: np.ndarray) -> np.ndarray:
    theta = np.exp(z - z.max(axis=1, keepdims=True))
    return theta / theta.sum(axis=1, keepdims=True)


def log_posterior(truth: GroundTruth, events: pl.DataFrame, user_ids: list[str],
                  config: LogOracleConfig | None = None) -> LogPosterior:
    """Sample the posterior of ``user_ids``' interests (and of qualities) given the log ``events``.

    With ``infer_quality`` every user in ``events`` is sampled too, since all of them tell
    about the videos' qualities; otherwise only ``user_ids``' own events are read.
    """
    cfg = config or LogOracleConfig()
    _check(truth, cfg)
    rng = np.random.default_rng(cfg.seed)
    if len(set(user_ids)) != len(user_ids):
        raise ValueError("user_ids must be distinct")
    targets = truth._index(user_ids, truth.user_ids, "user")
    if not cfg.infer_quality:
        events = events.filter(pl.col("user_id").is_in(list(user_ids)))
    others = np.setdiff1d(truth._index(events["user_id"].unique().to_list(), truth.user_ids, "user"), targets)
    users = np.concatenate([targets, others])
    n, k = users.size, truth.n_topics
    local = np.full(truth.user_language.size, -1)
    local[users] = np.arange(n)
    o = logged_outcomes(truth, events)
    terms = outcome_terms(truth, o)
    cells = local[terms.cell // k] * k + terms.cell % k
    a_lo, a_hi = float(log_affinity(np.zeros(1), k)[0]), float(log_affinity(np.ones(1), k)[0])
    grid = np.linspace(a_lo, a_hi, cfg.likelihood_grid)
    step_a = grid[1] - grid[0]
    fixed = np.zeros((n * k, grid.size))
    if cfg.exposure:
        e_cells, a, b, noise = exposure_terms(truth, o)
        theta_at = (np.exp(grid) - 0.1) / k  # the interest at each grid affinity (inverse of log_affinity)
        keep = 1.0 - truth.policy.noise_weight
        fixed += tabulate(local[e_cells // k] * k + e_cells % k, n * k, grid, lambda r: np.log(np.maximum(
            a[r, None] * (keep * theta_at[None, :] + noise[r, None]) + b[r, None], 1e-300)))
    qualities = _Qualities(truth, rng) if cfg.infer_quality else None

    def outcome_table(q: np.ndarray) -> np.ndarray:
        return tabulate(cells, n * k, grid, bernoulli(terms.const + terms.quality_coef * q[terms.video],
                                                      terms.slope, terms.sign, grid))  # fmt: skip

    table = fixed + outcome_table(truth.quality if qualities is None else qualities.video)
    alpha = truth.interest_prior[users].astype(np.float64)  # (n, k)

    def loglik(z: np.ndarray) -> np.ndarray:
        return interpolate(table, log_affinity(_softmax(z), k).ravel(), a_lo, step_a).reshape(n, k).sum(axis=1)

    z = np.log(rng.gamma(alpha) + 1e-300)
    scale, accepted = np.ones((n, k)), np.zeros((n, k))
    post = np.linspace(a_lo, a_hi, cfg.posterior_grid)
    m = targets.size
    weights, mean_theta, draws = np.zeros((m * k, post.size)), np.zeros((m, k)), []
    for it in range(cfg.burn_in + cfg.samples):  # a loop over iterations; each step is vectorised
        if qualities is not None and it > 0:
            table = fixed + outcome_table(qualities.video)
        current = loglik(z)
        for j in range(k):
            proposal = z.copy()
            proposal[:, j] += scale[:, j] * rng.standard_normal(n)
            cand = loglik(proposal)
            log_ratio = (cand - current + alpha[:, j] * (proposal[:, j] - z[:, j])
                         - (np.exp(proposal[:, j]) - np.exp(z[:, j])))  # fmt: skip
            ok = np.log(rng.random(n)) < log_ratio
            z[ok, j], current[ok] = proposal[ok, j], cand[ok]
            accepted[:, j] += ok
        if qualities is not None:
            affinity = log_affinity(_softmax(z).ravel()[cells], k)
            qualities.step(lambda q, a=affinity: np.bincount(terms.video, -np.logaddexp(0.0, -terms.logits(q, a)),
                                                             minlength=q.size))  # fmt: skip
        if it < cfg.burn_in and (it + 1) % ADAPT_EVERY == 0:  # adapt step sizes, then freeze them
            scale = np.clip(scale * np.exp(2.0 * (accepted / ADAPT_EVERY - cfg.target_acceptance)), 0.02, 50.0)
            accepted[:] = 0
            if qualities is not None:
                qualities.scale = np.clip(qualities.scale * np.exp(2.0 * (qualities.accepted / ADAPT_EVERY
                                                                          - cfg.target_acceptance)), 0.01, 5.0)
                qualities.accepted[:] = 0
        if it == cfg.burn_in - 1:
            accepted[:] = 0  # the reported acceptance counts sampling iterations only
        if it >= cfg.burn_in:
            theta = _softmax(z[:m])
            mean_theta += theta
            pos = np.clip((log_affinity(theta, k).ravel() - a_lo) / (post[1] - post[0]), 0.0, post.size - 1 - 1e-9)
            i = pos.astype(np.int64)
            np.add.at(weights, (np.arange(m * k), i), 1.0 - (pos - i))
            np.add.at(weights, (np.arange(m * k), i + 1), pos - i)
            if qualities is not None:
                draws.append(qualities.video.astype(np.float32))
    return LogPosterior(
        user_ids=list(user_ids),
        grid=post,
        weights=(weights / cfg.samples).reshape(m, k, post.size),
        mean_interest=mean_theta / cfg.samples,
        quality=np.stack(draws) if draws else None,
        acceptance=float(accepted[:m].sum() / (cfg.samples * m * k)),
    )


def log_informed_best(truth: GroundTruth, posterior: LogPosterior, now: datetime, k: int = 10,
                      exclude: dict[str, set[str]] | None = None) -> pl.DataFrame:
    """Each user's ``k`` available videos of highest posterior expected P(complete) at ``now``.

    Returns ``user_id, rank, video_id, p_expected`` (the oracle's own estimate; judge the
    slate with :func:`vidrec.evaluation.oracle.oracle_ratio`, which uses the true values).
    Interests and qualities are averaged over their posteriors separately (one user's
    interests and one video's quality are all but independent given a whole log).
    """
    users = truth._index(posterior.user_ids, truth.user_ids, "user")
    n_videos = truth.topic.size
    now_us = int(to_epoch_us(now, 1)[0])
    age = now_us - truth.uploaded_us
    scores = np.zeros((users.size, n_videos))
    languages = truth.user_language[users]
    draws = truth.quality[None, :] if posterior.quality is None else posterior.quality.astype(np.float64)
    for lang in np.unique(languages):  # a handful of languages
        who = np.flatnonzero(languages == lang)
        pen = truth.language_penalty[lang, truth.video_language]
        p = np.zeros((n_videos, posterior.grid.size))
        for q in draws:  # posterior draws of every video's quality
            watch, full = response_probabilities(truth.params, posterior.grid[None, :], pen[:, None], q[:, None],
                                                 truth.duration[:, None], age[:, None])  # fmt: skip
            p += watch * full / len(draws)
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
