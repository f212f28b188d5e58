"""The ranker's point-in-time features of requests' candidates, from the live state.

Training reads raw counts with as-of joins over the log (:mod:`vidrec.features.point_in_time`);
a request reads the same raw counts from what the events keep current -- the user's own in
the :class:`~vidrec.request.Request`, the platform's in :class:`~vidrec.features.live.LiveCounts`
-- and derives them with the same functions (:mod:`vidrec.features.derive`). Requests that
arrive together are computed together (one pass of numpy over all their candidates); the
cost grows with the candidates and their tags, never with the log or the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidrec.catalogue import Catalogue
from vidrec.features import derive
from vidrec.features.derive import COUNTS
from vidrec.features.live import LiveCounts
from vidrec.features.point_in_time import FEATURE_COLUMNS, VIDEO_STAT_FEATURES, PointInTimeConfig
from vidrec.request import Pairs, Request

_USER = (*COUNTS, "completion_sum")


def pair_counts(pairs: Sequence[Pairs], seg: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(n, 3) counts of ``codes`` in the pair table of each one's request (``pairs[seg[i]]``); zeros
    where that user has none. One sorted search over all the requests' tables."""
    out = np.zeros((len(codes), 3), dtype=np.int64)
    sizes = np.fromiter((len(p.codes) for p in pairs), dtype=np.int64, count=len(pairs))
    if not sizes.sum() or not len(codes):
        return out
    span = np.int64(max(int(max((p.codes.max() for p in pairs if len(p.codes)), default=0)), int(codes.max())) + 2)
    keys = np.concatenate([i * span + p.codes.astype(np.int64) for i, p in enumerate(pairs)])  # sorted: codes are
    counts = np.concatenate([p.counts for p in pairs])
    query = seg.astype(np.int64) * span + codes.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = (keys[pos] == query) & (codes >= 0)
    out[hit] = counts[pos[hit]]
    return out


def request_features(
    requests: Sequence[Request],
    rows: Sequence[np.ndarray],
    catalogue: Catalogue,
    live: LiveCounts,
    config: PointInTimeConfig,
    n_categories: int,
) -> dict[str, np.ndarray]:
    """:data:`FEATURE_COLUMNS` (float64, one value per candidate of every request in order) of each
    request's ``rows`` at its ``now``."""
    seg = np.repeat(np.arange(len(requests)), [len(r) for r in rows])
    rows_all = np.concatenate(rows).astype(np.int64) if len(rows) else np.zeros(0, np.int64)
    g = {c: live.total(c) for c in _USER}
    u = {c: np.array([r.count(c) for r in requests], dtype=np.float64)[seg] for c in _USER}
    video = live.video[rows_all].astype(np.float64)  # (n, COUNTS)
    category, creator = catalogue.category[rows_all], catalogue.creator[rows_all]
    uc = pair_counts([r.pair("category") for r in requests], seg, category)
    ucr = pair_counts([r.pair("creator") for r in requests], seg, creator)
    raw: dict[str, np.ndarray | float] = {
        "g_views": g["views"], "g_completions": g["completions"], "g_completion_sum": g["completion_sum"],
        "u_views": u["views"], "u_completions": u["completions"], "u_completion_sum": u["completion_sum"],
        "uc_views": uc[:, 0], "uc_completions": uc[:, 1], "cat_views": live.attribute_views("category", category),
        "creator_dislikes": ucr[:, 1],
    }  # fmt: skip
    out: dict[str, np.ndarray] = {f"v_{c}": video[:, j] for j, c in enumerate(COUNTS)}
    out |= {f"u_{c}": u[c] for c in COUNTS}
    out |= {"uc_views": uc[:, 0].astype(np.float64), "creator_views": ucr[:, 0].astype(np.float64)}
    rates = derive.video_rates({c: video[:, j] for j, c in enumerate(COUNTS)}, {c: g[c] for c in COUNTS},
                               config.prior_weight)  # fmt: skip
    out |= {VIDEO_STAT_FEATURES[r]: v for r, v in rates.items()}
    out |= derive.user_features(raw, config.user_prior_weight, n_categories)
    now = np.array([r.now_us for r in requests], dtype=np.int64)[seg]
    out["video_age_days"] = derive.age_days(now, catalogue.uploaded_us[rows_all])
    out["duration_seconds"] = np.nan_to_num(catalogue.duration[rows_all], nan=0.0)
    out |= _crosses(requests, seg, rows_all, catalogue, live, config, out["u_completion_rate"], g, u)
    n = len(rows_all)
    return {c: np.broadcast_to(np.asarray(out[c], dtype=np.float64), (n,)) for c in FEATURE_COLUMNS}


def _crosses(
    requests: Sequence[Request],
    seg: np.ndarray,
    rows: np.ndarray,
    catalogue: Catalogue,
    live: LiveCounts,
    config: PointInTimeConfig,
    u_completion_rate: np.ndarray,
    g: dict[str, float],
    u: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """The user x tag and user x language features of :mod:`vidrec.features.crosses`."""
    w = config.user_prior_weight
    u_watch = derive.user_watch_rate(u["views"], u["impressions"], g["views"], g["impressions"], w)
    offsets, tags = catalogue.cross_tags(config.title_words).gather(rows)
    per_pair = np.repeat(np.arange(len(rows)), np.diff(offsets))
    counts = pair_counts([r.pair("tag") for r in requests], seg[per_pair], tags)  # impressions, views, completions
    pairs = derive.attribute_pairs(
        counts[:, 1], counts[:, 2], counts[:, 0], live.attribute_views("tag", tags), live.distinct("tag"),
        u["views"][per_pair], g["views"], u_completion_rate[per_pair], u_watch[per_pair], w,
    )  # fmt: skip
    out = {"u_watch_rate": u_watch, **derive.tag_features(pairs, offsets, u_completion_rate, u_watch)}
    lang = catalogue.language[rows]
    has = lang >= 0
    lc = pair_counts([r.pair("language") for r in requests], seg[has], lang[has])
    lang_pairs = derive.attribute_pairs(
        lc[:, 1], lc[:, 2], lc[:, 0], live.attribute_views("language", lang[has]), live.distinct("language"),
        u["views"][has], g["views"], u_completion_rate[has], u_watch[has], w,
    )  # fmt: skip
    return out | derive.language_features(lang_pairs, has, u_completion_rate, u_watch)
