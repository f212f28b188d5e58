"""The latent world: topics, creators, videos and users, with the truths the logs hide.

Everything here is drawn once, before day 0. The canonical ``videos`` and ``users``
tables are views of it; the latent arrays (interests, quality, language) feed both the
simulation and the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from vidrec.data.schema import TIMESTAMP
from vidrec.data.simulator import vocab
from vidrec.data.simulator.config import SimulatorConfig

US_PER_DAY = 86_400 * 1_000_000
NEVER_US = np.iinfo(np.int64).max
"""``removed_us`` of a video that is never removed."""

WORDS_PER_TOPIC = 5  # four category words and one made-up name
CREATOR_QUALITY_SD = 0.5  # a creator's quality ~ N(0, this)
VIDEO_QUALITY_SD = 0.7  # a video's quality ~ N(its creator's, this)
PRIOR_VIEWS_LOG = (2.0, 0.7, 0.6, 1.0)
"""Views before day 0 of a back-catalogue video: exp(a + b * quality + c * creator fame + N(0, d))."""


@dataclass
class World:
    """The latent platform. Arrays are indexed by dense user / video index."""

    config: SimulatorConfig
    start_us: int
    topic_category: np.ndarray  # (topics,) category index of each topic
    # users
    users: pl.DataFrame  # canonical users table
    interest: np.ndarray  # (users, topics) float32, rows sum to 1: the true interests
    interest_prior: np.ndarray  # (users, topics) float32: the Dirichlet each user's interests were drawn from
    user_language: np.ndarray  # (users,) int8 index into vocab.LANGUAGES
    activity: np.ndarray  # (users,) float64, mean 1: relative daily impressions
    policy_cdf: np.ndarray  # (users * topics,) float64: row cumsum of the policy's estimate + row
    policy_noise: np.ndarray  # (users, topics) float32, rows sum to 1: the noise in that estimate
    # videos
    videos: pl.DataFrame  # canonical videos table
    topic: np.ndarray  # (videos,) int64
    quality: np.ndarray  # (videos,) float64
    duration: np.ndarray  # (videos,) float64 seconds
    uploaded_us: np.ndarray  # (videos,) int64 microseconds since the epoch
    upload_day: np.ndarray  # (videos,) int64; -1 for the catalogue that predates day 0
    removed_us: np.ndarray  # (videos,) int64; NEVER_US if never removed
    removal_day: np.ndarray  # (videos,) int64; shown on days upload_day < d < removal_day
    video_language: np.ndarray  # (videos,) int8
    creator: np.ndarray  # (videos,) int64 creator index
    creator_fame: np.ndarray  # (videos,) float64: standardised log share of the creator's uploads
    prior_views: np.ndarray  # (videos,) float64: views before day 0, seen by the policy


def _ids(prefix: str, n: int) -> pl.Series:
    """Zero-padded external ids in index order: ``u0000``, ``u0001`` ..."""
    width = max(4, len(str(n - 1)))
    digits = pl.int_range(n, eager=True).cast(pl.String).str.zfill(width)
    return (prefix + digits).alias("id")


def _timestamps(epoch_us: np.ndarray) -> pl.Series:
    """Microseconds since the epoch as the canonical UTC timestamp type."""
    return pl.Series(epoch_us).cast(TIMESTAMP)


def _topic_words(cfg: SimulatorConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each topic's category and its words: four from its category, one made-up name."""
    topic_category = np.arange(cfg.topics) % len(vocab.CATEGORIES)
    words = []
    for k in range(cfg.topics):  # a loop over topics (tens), not over data
        cat_words = vocab.CATEGORIES[topic_category[k]][2]
        chosen = rng.choice(len(cat_words), size=WORDS_PER_TOPIC - 1, replace=False)
        syllables = rng.choice(len(vocab.SYLLABLES), size=int(rng.integers(2, 4)))
        name = "".join(vocab.SYLLABLES[s] for s in syllables) + str(k)
        words.append([cat_words[i] for i in chosen] + [name])
    return topic_category, np.array(words, dtype=object)


def _users(cfg: SimulatorConfig, rng: np.random.Generator, topic_category: np.ndarray, start_us: int):
    """Demographics, interests correlated with them, activity, and the policy's estimate."""
    n, k = cfg.users, cfg.topics
    shares = np.array([c[2] for c in vocab.COUNTRIES])
    country = rng.choice(len(shares), size=n, p=shares / shares.sum())
    age = rng.choice(len(vocab.AGE_SHARES), size=n, p=vocab.AGE_SHARES)
    language = np.array([vocab.LANGUAGES.index(c[1]) for c in vocab.COUNTRIES], dtype=np.int8)[country]
    topic_popularity = rng.dirichlet(np.full(k, 2.0))
    country_tilt = rng.normal(0.0, 0.6, size=(len(shares), k))
    alpha = np.exp(vocab.AGE_TILT[age][:, topic_category] + country_tilt[country]) * topic_popularity
    alpha *= cfg.interest_concentration / alpha.sum(axis=1, keepdims=True)  # (users, topics)
    gamma = rng.gamma(alpha) + 1e-6
    interest = (gamma / gamma.sum(axis=1, keepdims=True)).astype(np.float32)
    prior = alpha.astype(np.float32)
    del alpha, gamma
    noise = rng.gamma(np.ones(k), size=(n, k))
    noise /= noise.sum(axis=1, keepdims=True)
    estimate = (1.0 - cfg.policy_noise) * interest + cfg.policy_noise * noise
    noise = noise.astype(np.float32)
    cdf = np.cumsum(estimate / estimate.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    policy_cdf = (cdf + np.arange(n)[:, None]).ravel()  # globally increasing: one searchsorted
    del estimate, cdf
    age_activity = np.array([1.3, 1.2, 1.0, 0.9, 0.8, 0.7])[age]
    activity = age_activity * rng.lognormal(0.0, cfg.activity_sigma, size=n)
    activity /= activity.mean()
    days_before = np.minimum(1.0 + rng.exponential(500.0, size=n), 6 * 365.0)
    signed_up = start_us - (days_before * US_PER_DAY).astype(np.int64)
    users = pl.DataFrame(
        {
            "user_id": _ids("u", n),
            "country": pl.Series([c[0] for c in vocab.COUNTRIES]).gather(country),
            "age_bucket": pl.Series(list(vocab.AGE_BUCKETS)).gather(age),
            "signed_up_at": _timestamps(signed_up),
        }
    )
    return users, interest, prior, language, activity, policy_cdf, noise, topic_popularity


def _upload_times(cfg: SimulatorConfig, rng: np.random.Generator, start_us: int):
    """Upload instants in increasing order: a back catalogue, then uploads every day."""
    n0 = int(round(cfg.initial_video_share * cfg.videos))
    n0 = min(max(n0, 1), cfg.videos)
    days_before = np.minimum(rng.exponential(120.0, size=n0), 3 * 365.0) + 1e-3
    before = start_us - (days_before * US_PER_DAY).astype(np.int64)
    new_day = rng.integers(0, cfg.days, size=cfg.videos - n0)
    during = start_us + new_day * US_PER_DAY + rng.integers(0, US_PER_DAY, size=new_day.size)
    uploaded = np.sort(np.concatenate([before, during]))
    upload_day = np.where(uploaded < start_us, -1, (uploaded - start_us) // US_PER_DAY)
    return uploaded.astype(np.int64), upload_day.astype(np.int64)


def _videos(cfg: SimulatorConfig, rng: np.random.Generator, topic_category, topic_words, topic_pop, start_us):
    """Creators with heavy-tailed sizes, their videos, quality, length, language, removals."""
    n, c, k = cfg.videos, cfg.n_creators, cfg.topics
    creator_weight = (np.arange(c) + 1.0) ** -1.1
    creator_weight /= creator_weight.sum()
    creator_fame = np.log(creator_weight * c)
    creator_fame = (creator_fame - creator_fame.mean()) / (creator_fame.std() + 1e-9)
    creator_primary = rng.choice(k, size=c, p=topic_pop)
    creator_secondary = rng.integers(0, k, size=c)
    creator_quality = rng.normal(0.0, CREATOR_QUALITY_SD, size=c)
    creator_language = rng.choice(len(vocab.LANGUAGES), size=c, p=vocab.VIDEO_LANGUAGE_SHARES).astype(np.int8)

    creator = rng.choice(c, size=n, p=creator_weight)
    pick = rng.random(n)
    topic = np.where(pick < 0.75, creator_primary[creator],
                     np.where(pick < 0.9, creator_secondary[creator], rng.integers(0, k, size=n)))
    category = topic_category[topic]
    quality = creator_quality[creator] + rng.normal(0.0, VIDEO_QUALITY_SD, size=n)
    median = vocab.CATEGORY_MEDIAN_SECONDS[category]
    duration = np.clip(np.round(median * rng.lognormal(0.0, 0.7, size=n)), 5.0, 10_800.0)
    uploaded, upload_day = _upload_times(cfg, rng, start_us)
    base, per_quality, per_fame, noise = PRIOR_VIEWS_LOG
    prior = np.where(
        upload_day < 0,
        np.exp(base + per_quality * quality + per_fame * creator_fame[creator] + rng.normal(0.0, noise, size=n)),
        0.5 * np.exp(0.5 * creator_fame[creator]),
    )
    # Removals: low quality is likelier to go; a removed video was shown at least one day.
    flagged = rng.random(n) < cfg.removal_rate * 2.0 / (1.0 + np.exp(quality))
    first = np.maximum(upload_day + 2, 1)
    removal_day = first + np.floor(rng.random(n) * np.maximum(cfg.days - first, 0)).astype(np.int64)
    removed = flagged & (first < cfg.days)
    removal_day = np.where(removed, removal_day, np.iinfo(np.int64).max)
    removed_us = np.where(removed, start_us + np.where(removed, removal_day, 0) * US_PER_DAY, NEVER_US)

    table = _video_table(cfg, rng, creator, topic, category, topic_words, duration, uploaded,
                         removed, creator_language[creator])
    return (table, topic.astype(np.int64), quality, duration, uploaded, upload_day, removed_us,
            removal_day, creator_language[creator], prior, creator, creator_fame[creator])


def _video_table(cfg, rng, creator, topic, category, topic_words, duration, uploaded, removed, language):
    """The canonical videos table; titles and tags are drawn from the topic's words."""
    n = cfg.videos
    words = pl.Series("w", topic_words.ravel().tolist(), dtype=pl.String)
    order = np.argsort(rng.random((n, WORDS_PER_TOPIC)), axis=1)  # distinct words per video
    slot = topic[:, None] * WORDS_PER_TOPIC + order  # (videos, words)
    generic = pl.Series(list(vocab.GENERIC_WORDS)).gather(rng.integers(0, len(vocab.GENERIC_WORDS), size=n))
    with_generic = rng.random(n) < 0.7
    with_fourth = rng.random(n) < 0.5
    frame = pl.DataFrame(
        {
            "g": generic,
            "a": words.gather(slot[:, 0]),
            "b": words.gather(slot[:, 1]),
            "c": words.gather(slot[:, 2]),
            "d": words.gather(slot[:, 3]),
            "cat": pl.Series(list(vocab.CATEGORY_NAMES)).gather(category),
            "with_g": with_generic,
            "with_d": with_fourth,
        }
    ).with_columns(
        g=pl.when("with_g").then("g"),
        d=pl.when("with_d").then("d"),
    )
    return frame.select(
        video_id=_ids("v", n),
        creator_id=_ids("c", cfg.n_creators).gather(creator),
        category=pl.col("cat"),
        tags=pl.concat_list("cat", "a", "d").list.drop_nulls(),
        duration_seconds=pl.Series(duration, dtype=pl.Float64),
        uploaded_at=_timestamps(uploaded),
        available=pl.Series(~removed),
        title=pl.concat_str("g", "a", "b", "c", "d", separator=" ", ignore_nulls=True),
        language=pl.Series(list(vocab.LANGUAGES)).gather(language),
    )


def build_world(cfg: SimulatorConfig) -> World:
    """Draw the whole latent platform from ``cfg.seed`` (independent streams per part)."""
    start_us = int(cfg.start.timestamp()) * 1_000_000
    topic_category, topic_words = _topic_words(cfg, np.random.default_rng([cfg.seed, 1]))
    users, interest, interest_prior, ulang, activity, policy_cdf, policy_noise, topic_pop = _users(
        cfg, np.random.default_rng([cfg.seed, 2]), topic_category, start_us
    )
    (videos, topic, quality, duration, uploaded, upload_day, removed_us, removal_day, vlang,
     prior, creator, fame) = _videos(cfg, np.random.default_rng([cfg.seed, 3]), topic_category, topic_words,
                                     topic_pop, start_us)
    return World(
        config=cfg, start_us=start_us, topic_category=topic_category,
        users=users, interest=interest, interest_prior=interest_prior, user_language=ulang, activity=activity,
        policy_cdf=policy_cdf, policy_noise=policy_noise,
        videos=videos, topic=topic, quality=quality, duration=duration, uploaded_us=uploaded,
        upload_day=upload_day, removed_us=removed_us.astype(np.int64), removal_day=removal_day,
        video_language=vlang.astype(np.int8), prior_views=prior, creator=creator.astype(np.int64),
        creator_fame=fame,
    )
