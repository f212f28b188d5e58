"""User x video-attribute affinities as of a point in time: the video's tags and language.

The category affinity of :mod:`vidrec.features.point_in_time` is coarse: one category
holds many topics, and a user who loves one of them is indifferent to the rest. Tags
name the topic, so the user's history with a candidate's tags is the sharpest
interest signal a log carries without a model. Language is the other attribute real
platforms show strong per-user preferences for (a user rarely completes videos in a
language they do not speak). Both follow the same recipe as every other point-in-time
feature: cumulative counts per (key, ts), read with a strictly-before as-of join, and
beta-binomial smoothing towards the population so a single view does not look like
a passion.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from vidrec.features import derive
from vidrec.features.asof import asof, cumulate

CROSS_TABLE_KEYS: dict[str, list[str]] = {
    "user_tag": ["user_id", "tag"],
    "tag": ["tag"],
    "user_lang": ["user_id", "language"],
    "lang": ["language"],
}
"""Tables this module adds to ``EventTables`` and the keys each one is cumulated over."""

CROSS_COLUMNS: tuple[str, ...] = (
    "u_watch_rate",
    "ut_affinity_max", "ut_lift_max", "ut_completion_rate_max", "ut_watch_rate_max", "ut_watch_rate_mean",
    "ul_affinity", "ul_completion_rate", "ul_watch_rate",
)  # fmt: skip
"""Features added per row.

``u_watch_rate`` is the user's exposure rate (share of impressions watched). Over the
candidate's tags: the largest smoothed share of the user's views with that tag, its
log-lift over the population's share, the user's smoothed completion rate on it, and the
user's largest and mean watch rate when shown it. The same share, completion rate and
watch rate for the video's language.

With ``title_words`` the words of a video's title count as tags too (prefixed
``title:``): titles name the topic more often and more precisely than a few tags do.

Watch rates per impression are the unbiased interest signal where the log has
impressions: a share of views also reflects what the platform chose to show. Without
impressions (MovieLens) they are constant and the model ignores them."""


TITLE_WORD_MIN_LENGTH = 3  # shorter title tokens (articles, "of", "2") carry no topic


def cross_tags(videos: pl.DataFrame, title_words: bool = False) -> pl.DataFrame:
    """``video_id, tags``: a video's tags, plus its distinct title words if asked and titled."""
    tags = pl.col("tags") if "tags" in videos.columns else pl.lit([], pl.List(pl.String))
    if not (title_words and "title" in videos.columns):
        return videos.select("video_id", tags=tags)
    words = (
        pl.col("title").fill_null("").str.to_lowercase().str.extract_all(r"[^\W_]+")
        .list.eval(pl.element().filter(pl.element().str.len_chars() >= TITLE_WORD_MIN_LENGTH))
        .list.unique(maintain_order=True).list.eval(pl.lit("title:") + pl.element())
    )  # fmt: skip
    return videos.select("video_id", tags=pl.concat_list(tags.fill_null([]), words))


def build_cross_tables(events: pl.DataFrame | pl.LazyFrame, videos: pl.DataFrame, title_words: bool = False,
                       since: datetime | None = None) -> dict[str, pl.DataFrame]:  # fmt: skip
    """Cumulative impressions, views and completions per (user, tag), tag, (user, language), language.

    ``events`` (impressions and watches are used) with a boolean ``completed``
    column and ``ts`` in the canonical timestamp type. Videos without tags or language
    simply add no rows. ``since``: answer only from then on (see :func:`cumulate`); the
    events x tags join is then never held whole.
    """
    base = events.lazy().filter(pl.col("event").is_in(["impression", "watch"])).select(
        "user_id", "video_id", "ts", "event", "completed"
    )
    e = pl.col("event")
    counts = {
        "impressions": (e == "impression").sum().cast(pl.Int64),
        "views": (e == "watch").sum().cast(pl.Int64),
        "completions": pl.col("completed").fill_null(False).sum().cast(pl.Int64),
    }
    tags = cross_tags(videos, title_words).select("video_id", tag=pl.col("tags")).explode("tag").drop_nulls("tag")
    tagged = base.lazy().join(tags.lazy(), on="video_id", how="inner")
    if "language" in videos.columns:
        langs = videos.select("video_id", "language").drop_nulls("language")
    else:
        langs = pl.DataFrame(schema={"video_id": pl.String, "language": pl.String})
    spoken = base.lazy().join(langs.lazy(), on="video_id", how="inner")
    return {
        "user_tag": cumulate(tagged, ["user_id", "tag"], counts, since),
        "tag": cumulate(tagged, ["tag"], {"views": counts["views"]}, since),
        "user_lang": cumulate(spoken, ["user_id", "language"], counts, since),
        "lang": cumulate(spoken, ["language"], {"views": counts["views"]}, since),
    }


def cross_features(
    df: pl.DataFrame,
    tables: dict[str, pl.DataFrame],
    videos: pl.DataFrame,
    user_prior_weight: float,
    title_words: bool = False,
) -> pl.DataFrame:
    """``df`` with :data:`CROSS_COLUMNS` added, reading only events strictly before each row's ts.

    ``df`` needs ``_row`` (a unique row id), ``user_id``, ``video_id``, ``ts``, and the
    as-of counts and rates :func:`vidrec.features.point_in_time.point_in_time_features`
    has already attached (``g_``/``u_``/``v_`` impressions and views, ``u_completion_rate``).
    A video without tags (or language) gets the neutral values: share 0, lift 0 and the
    user's overall rates. The formulas are :mod:`vidrec.features.derive`'s.
    """
    w = user_prior_weight
    df = df.with_columns(u_watch_rate=pl.Series(derive.user_watch_rate(
        _np(df, "u_views"), _np(df, "u_impressions"), _np(df, "g_views"), _np(df, "g_impressions"), w
    )))  # fmt: skip
    has_lang = "language" in videos.columns
    language = pl.col("language") if has_lang else pl.lit(None, pl.String).alias("language")
    needed = videos.join(df.select("video_id").unique(), on="video_id", how="semi")  # titles parsed for these only
    meta = cross_tags(needed, title_words).join(needed.select("video_id", language), on="video_id", how="left")
    need = df.select("_row", "user_id", "video_id", "ts", "u_views", "g_views", "u_completion_rate", "u_watch_rate")
    x = need.join(meta, on="video_id", how="left", maintain_order="left")
    n_tags = max(int(tables["tag"]["tag"].n_unique()), 1)
    n_langs = max(int(tables["lang"]["language"].n_unique()), 1)
    cols = ["impressions", "views", "completions"]

    t = x.drop("language").rename({"tags": "tag"}).explode("tag").drop_nulls("tag").sort("ts")
    t = asof(t, tables["user_tag"], ["user_id", "tag"], "ut_", cols, fill=True)
    t = asof(t, tables["tag"], ["tag"], "tag_", ["views"], fill=True).sort("_row", maintain_order=True)
    rows = df["_row"].to_numpy()
    order = np.argsort(rows, kind="stable")  # df rows by _row: the pairs' grouping order
    per_row = np.bincount(np.searchsorted(rows[order], t["_row"].to_numpy()), minlength=len(rows))
    offsets = np.concatenate([[0], np.cumsum(per_row)])
    tag = derive.tag_features(
        _pairs(t, "ut_", "tag_views", n_tags, w), offsets,
        _np(df, "u_completion_rate")[order], _np(df, "u_watch_rate")[order],
    )  # fmt: skip

    lang = x.drop("tags").filter(pl.col("language").is_not_null()).sort("ts")
    lang = asof(lang, tables["user_lang"], ["user_id", "language"], "ul_", cols, fill=True)
    lang = asof(lang, tables["lang"], ["language"], "lang_", ["views"], fill=True)
    spoken = pl.DataFrame({"_row": rows}).join(lang, on="_row", how="left", maintain_order="left")
    has = spoken["language"].is_not_null().to_numpy()
    lang_feats = derive.language_features(
        _pairs(spoken.filter(pl.Series(has)), "ul_", "lang_views", n_langs, w), has,
        _np(df, "u_completion_rate"), _np(df, "u_watch_rate"),
    )  # fmt: skip
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return df.with_columns(
        *(pl.Series(name, values[inverse], dtype=pl.Float64) for name, values in tag.items()),
        *(pl.Series(name, values, dtype=pl.Float64) for name, values in lang_feats.items()),
    )


def _np(df: pl.DataFrame, name: str) -> np.ndarray:
    return df[name].cast(pl.Float64).to_numpy()


def _pairs(pairs: pl.DataFrame, prefix: str, attr_views: str, n_attrs: int, w: float) -> dict[str, np.ndarray]:
    """:func:`vidrec.features.derive.attribute_pairs` of (row, attribute) rows with as-of counts."""
    return derive.attribute_pairs(
        _np(pairs, prefix + "views"), _np(pairs, prefix + "completions"), _np(pairs, prefix + "impressions"),
        _np(pairs, attr_views), n_attrs, _np(pairs, "u_views"), _np(pairs, "g_views"),
        _np(pairs, "u_completion_rate"), _np(pairs, "u_watch_rate"), w,
    )  # fmt: skip
