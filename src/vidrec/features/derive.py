"""Every derived feature, defined once, on raw counts as numpy arrays.

Raw counts (a video's views so far, a user's completions in a category...) come from two
places: as-of joins over the event log for training examples
(:mod:`vidrec.features.point_in_time`, :mod:`vidrec.features.crosses`) and the online
store for a request (:mod:`vidrec.features.online`). Both hand them to the functions
here, so a rate, a share or an age means the same thing at training and at serving.
Arguments are numpy arrays or scalars (broadcast); results are float64 arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

COUNTS: tuple[str, ...] = ("impressions", "views", "completions", "likes", "dislikes")
"""Raw per-video (and per-user) event counts."""

RATES: dict[str, tuple[str, str]] = {
    "completion_rate": ("completions", "views"),
    "like_rate": ("likes", "views"),
    "dislike_rate": ("dislikes", "views"),
    "watch_rate": ("views", "impressions"),
}
"""Smoothed rates: each is a count divided by another count. The watch rate (share of
impressions followed by a watch) is the exposure-corrected popularity where a log has
impressions; without them it is the prior for every video."""

DAY_US = 86_400e6
TAG_LIFT_EPS = 1e-6  # keeps the log-lift of a zero share finite

Array = np.ndarray | float


def _f(x: Array) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def global_rate(count_total: Array, views_total: Array) -> np.ndarray:
    """The platform-wide rate every per-view rate shrinks towards, Laplace-smoothed (defined with no views)."""
    return (_f(count_total) + 1.0) / (_f(views_total) + 2.0)


def smoothed_rate(count: Array, total: Array, prior: Array, weight: float) -> np.ndarray:
    """Beta-binomial smoothing ``(count + weight * prior) / (total + weight)``; the prior when both are 0."""
    denominator = _f(total) + weight
    prior = _f(prior)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = (_f(count) + weight * prior) / denominator
    return np.where(denominator > 0, rate, prior)


def watch_rate(views: Array, impressions: Array, prior: Array, weight: float) -> np.ndarray:
    """Smoothed share of impressions followed by a watch; watches beyond the impressions (a log
    that misses some impressions) do not push it above 1."""
    return smoothed_rate(np.minimum(_f(views), _f(impressions)), impressions, prior, weight)


def global_watch_rate(views_total: Array, impressions_total: Array) -> np.ndarray:
    """The platform-wide watch rate every per-video or per-user watch rate shrinks towards."""
    return global_rate(np.minimum(_f(views_total), _f(impressions_total)), impressions_total)


def video_rates(counts: Mapping[str, Array], totals: Mapping[str, Array], prior_weight: float) -> dict[str, np.ndarray]:
    """The :data:`RATES` of videos from their counts and the platform totals (both by :data:`COUNTS` name).

    ``(count + prior_weight * global_rate) / (per + prior_weight)``, so that a video with
    two views does not rank above one with two thousand.
    """
    out = {}
    for rate, (count, per) in RATES.items():
        if per == "impressions":
            prior = global_watch_rate(totals[count], totals[per])
            out[rate] = watch_rate(counts[count], counts[per], prior, prior_weight)
        else:
            prior = global_rate(totals[count], totals[per])
            out[rate] = smoothed_rate(counts[count], counts[per], prior, prior_weight)
    return out


def age_days(at_us: Array, uploaded_us: Array) -> np.ndarray:
    """Days from upload to ``at`` (epoch microseconds; NaN where the upload time is unknown)."""
    return (_f(at_us) - _f(uploaded_us)) / DAY_US


def user_features(raw: Mapping[str, Array], user_prior_weight: float, n_categories: int) -> dict[str, np.ndarray]:
    """User and user x category / creator features from their raw counts.

    ``raw`` holds ``g_views, g_completions, g_completion_sum`` (platform so far),
    ``u_views, u_completions, u_completion_sum, uc_views, uc_completions, cat_views,
    creator_dislikes``.
    """
    w = user_prior_weight
    g_views = _f(raw["g_views"])
    g_mean = (_f(raw["g_completion_sum"]) + 0.5) / (g_views + 1.0)
    u_rate = smoothed_rate(raw["u_completions"], raw["u_views"], global_rate(raw["g_completions"], g_views), w)
    cat_share = (_f(raw["cat_views"]) + 1.0) / (g_views + n_categories)
    return {
        "u_completion_rate": u_rate,
        "u_mean_completion": smoothed_rate(raw["u_completion_sum"], raw["u_views"], g_mean, w),
        "uc_affinity": smoothed_rate(raw["uc_views"], raw["u_views"], cat_share, w),
        "uc_completion_rate": smoothed_rate(raw["uc_completions"], raw["uc_views"], u_rate, w),
        "creator_disliked": (_f(raw["creator_dislikes"]) > 0).astype(np.float64),
    }


def user_watch_rate(
    u_views: Array, u_impressions: Array, g_views: Array, g_impressions: Array, weight: float
) -> np.ndarray:
    """The user's exposure rate (share of impressions watched), shrunk to the platform's."""
    return watch_rate(u_views, u_impressions, global_watch_rate(g_views, g_impressions), weight)


def attribute_pairs(
    pair_views: Array,
    pair_completions: Array,
    pair_impressions: Array,
    attr_views: Array,
    n_attrs: int,
    u_views: Array,
    g_views: Array,
    u_completion_rate: Array,
    u_watch_rate: Array,
    weight: float,
) -> dict[str, np.ndarray]:
    """Per (row, attribute value) -- a tag or a language: the user's smoothed share of views
    with it (``share``), its population share (``prior``), the user's completion rate and
    watch rate on it. The user-level arguments are the row's, repeated per pair."""
    prior = (_f(attr_views) + 1.0) / (_f(g_views) + n_attrs)
    return {
        "prior": prior,
        "share": smoothed_rate(pair_views, u_views, prior, weight),
        "completion_rate": smoothed_rate(pair_completions, pair_views, u_completion_rate, weight),
        "watch_rate": watch_rate(pair_views, pair_impressions, u_watch_rate, weight),
    }


def tag_features(
    pairs: Mapping[str, np.ndarray], offsets: np.ndarray, u_completion_rate: np.ndarray, u_watch_rate: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-row tag features from :func:`attribute_pairs` of each row's tags.

    Row ``i``'s tags are pairs ``offsets[i]:offsets[i+1]``; a row without tags gets the
    neutral values (share 0, lift 0, the user's own rates).
    """
    n = len(offsets) - 1
    counts = np.diff(offsets)
    has = counts > 0
    starts = offsets[:-1][has]
    lift = np.log((pairs["share"] + TAG_LIFT_EPS) / pairs["prior"])

    def reduce(values: np.ndarray, fill: np.ndarray | float, how: str) -> np.ndarray:
        out = np.broadcast_to(_f(fill), (n,)).copy()
        if starts.size:
            if how == "max":
                out[has] = np.maximum.reduceat(values, starts)
            else:
                out[has] = np.add.reduceat(values, starts) / counts[has]
        return out

    return {
        "ut_affinity_max": reduce(pairs["share"], 0.0, "max"),
        "ut_lift_max": reduce(lift, 0.0, "max"),
        "ut_completion_rate_max": reduce(pairs["completion_rate"], u_completion_rate, "max"),
        "ut_watch_rate_max": reduce(pairs["watch_rate"], u_watch_rate, "max"),
        "ut_watch_rate_mean": reduce(pairs["watch_rate"], u_watch_rate, "mean"),
    }


def language_features(
    pairs: Mapping[str, np.ndarray], has: np.ndarray, u_completion_rate: np.ndarray, u_watch_rate: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-row language features: :func:`attribute_pairs` of the rows with a language
    (``has``, in row order); the others get share 0 and the user's own rates."""
    out = {
        "ul_affinity": np.zeros(len(has)),
        "ul_completion_rate": _f(u_completion_rate).copy(),
        "ul_watch_rate": _f(u_watch_rate).copy(),
    }
    out["ul_affinity"][has] = pairs["share"]
    out["ul_completion_rate"][has] = pairs["completion_rate"]
    out["ul_watch_rate"][has] = pairs["watch_rate"]
    return out
