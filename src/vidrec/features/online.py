"""The ranker's point-in-time features of one request's candidates, from the live state.

Training reads raw counts with as-of joins over the log (:mod:`vidrec.features.point_in_time`);
a request reads the same raw counts from what the events keep current -- the user's own in
the :class:`~vidrec.request.Request`, the platform's in :class:`~vidrec.features.live.LiveCounts`
-- and derives them with the same functions (:mod:`vidrec.features.derive`). The cost grows
with the candidates and their tags, never with the log or the catalogue.
"""

from __future__ import annotations

import numpy as np

from vidrec.catalogue import Catalogue
from vidrec.features import derive
from vidrec.features.derive import COUNTS
from vidrec.features.live import LiveCounts
from vidrec.features.point_in_time import FEATURE_COLUMNS, VIDEO_STAT_FEATURES, PointInTimeConfig
from vidrec.request import Request


def request_features(
    request: Request, rows: np.ndarray, catalogue: Catalogue, live: LiveCounts,
    config: PointInTimeConfig, n_categories: int,
) -> dict[str, np.ndarray]:
    """:data:`FEATURE_COLUMNS` (float64 (n,) each) of ``rows`` for ``request`` at its ``now``."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    g = {c: live.total(c) for c in (*COUNTS, "completion_sum")}
    u = {c: request.count(c) for c in (*COUNTS, "completion_sum")}
    video = live.video[rows].astype(np.float64)  # (n, COUNTS)
    category, creator = catalogue.category[rows], catalogue.creator[rows]
    uc, _ = request.pair("category").lookup(category)
    ucr, _ = request.pair("creator").lookup(creator)
    raw = {
        "g_views": g["views"], "g_completions": g["completions"], "g_completion_sum": g["completion_sum"],
        "u_views": u["views"], "u_completions": u["completions"], "u_completion_sum": u["completion_sum"],
        "uc_views": uc[:, 0], "uc_completions": uc[:, 1], "cat_views": live.attribute_views("category", category),
        "creator_dislikes": ucr[:, 1],
    }  # fmt: skip
    out: dict[str, np.ndarray] = {f"v_{c}": video[:, j] for j, c in enumerate(COUNTS)}
    out |= {f"u_{c}": np.full(n, u[c]) for c in COUNTS}
    out |= {"uc_views": uc[:, 0].astype(np.float64), "creator_views": ucr[:, 0].astype(np.float64)}
    rates = derive.video_rates({c: video[:, j] for j, c in enumerate(COUNTS)}, {c: g[c] for c in COUNTS},
                               config.prior_weight)  # fmt: skip
    out |= {VIDEO_STAT_FEATURES[r]: v for r, v in rates.items()}
    out |= {k: np.broadcast_to(v, (n,)).astype(np.float64) for k, v in
            derive.user_features(raw, config.user_prior_weight, n_categories).items()}  # fmt: skip
    out["video_age_days"] = derive.age_days(request.now_us, catalogue.uploaded_us[rows])
    out["duration_seconds"] = np.nan_to_num(catalogue.duration[rows], nan=0.0)
    out |= _crosses(request, rows, catalogue, live, config, out["u_completion_rate"], g, u)
    return {c: np.asarray(out[c], dtype=np.float64) for c in FEATURE_COLUMNS}


def _crosses(
    request: Request, rows: np.ndarray, catalogue: Catalogue, live: LiveCounts, config: PointInTimeConfig,
    u_completion_rate: np.ndarray, g: dict[str, float], u: dict[str, float],
) -> dict[str, np.ndarray]:
    """The user x tag and user x language features of :mod:`vidrec.features.crosses`."""
    w = config.user_prior_weight
    n = len(rows)
    u_watch = np.full(n, derive.user_watch_rate(u["views"], u["impressions"], g["views"], g["impressions"], w))
    offsets, tags = catalogue.cross_tags(config.title_words).gather(rows)
    per_pair = np.repeat(np.arange(n), np.diff(offsets))
    counts, _ = request.pair("tag").lookup(tags)  # (pairs, 3): impressions, views, completions
    pairs = derive.attribute_pairs(
        counts[:, 1], counts[:, 2], counts[:, 0], live.attribute_views("tag", tags), live.distinct("tag"),
        u["views"], g["views"], u_completion_rate[per_pair], u_watch[per_pair], w,
    )  # fmt: skip
    out = {"u_watch_rate": u_watch, **derive.tag_features(pairs, offsets, u_completion_rate, u_watch)}
    lang = catalogue.language[rows]
    has = lang >= 0
    lc, _ = request.pair("language").lookup(lang[has])
    lang_pairs = derive.attribute_pairs(
        lc[:, 1], lc[:, 2], lc[:, 0], live.attribute_views("language", lang[has]), live.distinct("language"),
        u["views"], g["views"], u_completion_rate[has], u_watch[has], w,
    )  # fmt: skip
    return out | derive.language_features(lang_pairs, has, u_completion_rate, u_watch)
