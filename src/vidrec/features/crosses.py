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

import polars as pl

from vidrec.features.asof import asof, cumulate
from vidrec.features.video_stats import global_watch_rate, smoothed_rate, watch_rate

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


def build_cross_tables(events: pl.DataFrame, videos: pl.DataFrame,
                       title_words: bool = False) -> dict[str, pl.DataFrame]:
    """Cumulative impressions, views and completions per (user, tag), tag, (user, language), language.

    ``events`` (impressions and watches are used) with a boolean ``completed``
    column and ``ts`` in the canonical timestamp type. Videos without tags or language
    simply add no rows.
    """
    base = events.filter(pl.col("event").is_in(["impression", "watch"])).select(
        "user_id", "video_id", "ts", "event", "completed"
    )
    e = pl.col("event")
    counts = {
        "impressions": (e == "impression").sum().cast(pl.Int64),
        "views": (e == "watch").sum().cast(pl.Int64),
        "completions": pl.col("completed").fill_null(False).sum().cast(pl.Int64),
    }
    tags = cross_tags(videos, title_words).select("video_id", tag=pl.col("tags")).explode("tag").drop_nulls("tag")
    tagged = base.join(tags, on="video_id", how="inner")
    if "language" in videos.columns:
        langs = videos.select("video_id", "language").drop_nulls("language")
    else:
        langs = pl.DataFrame(schema={"video_id": pl.String, "language": pl.String})
    spoken = base.join(langs, on="video_id", how="inner")
    return {
        "user_tag": cumulate(tagged, ["user_id", "tag"], counts),
        "tag": cumulate(tagged, ["tag"], {"views": counts["views"]}),
        "user_lang": cumulate(spoken, ["user_id", "language"], counts),
        "lang": cumulate(spoken, ["language"], {"views": counts["views"]}),
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
    user's overall rates.
    """
    w = user_prior_weight
    g_rate = global_watch_rate(pl.col("g_views"), pl.col("g_impressions"))
    df = df.with_columns(u_watch_rate=watch_rate("u_views", "u_impressions", g_rate, w))
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
    t = asof(t, tables["tag"], ["tag"], "tag_", ["views"], fill=True)
    tag_share = (pl.col("tag_views") + 1.0) / (pl.col("g_views") + n_tags)
    t = t.with_columns(_p=tag_share).with_columns(
        _share=smoothed_rate("ut_views", "u_views", pl.col("_p"), w),
        _crate=smoothed_rate("ut_completions", "ut_views", pl.col("u_completion_rate"), w),
        _wrate=watch_rate("ut_views", "ut_impressions", pl.col("u_watch_rate"), w),
    )
    per_row = t.group_by("_row").agg(
        ut_affinity_max=pl.col("_share").max(),
        ut_lift_max=((pl.col("_share") + 1e-6) / pl.col("_p")).log().max(),
        ut_completion_rate_max=pl.col("_crate").max(),
        ut_watch_rate_max=pl.col("_wrate").max(),
        ut_watch_rate_mean=pl.col("_wrate").mean(),
    )

    lang = x.drop("tags").filter(pl.col("language").is_not_null()).sort("ts")
    lang = asof(lang, tables["user_lang"], ["user_id", "language"], "ul_", cols, fill=True)
    lang = asof(lang, tables["lang"], ["language"], "lang_", ["views"], fill=True)
    lang_share = (pl.col("lang_views") + 1.0) / (pl.col("g_views") + n_langs)
    lang = lang.select(
        "_row",
        ul_affinity=smoothed_rate("ul_views", "u_views", lang_share, w),
        ul_completion_rate=smoothed_rate("ul_completions", "ul_views", pl.col("u_completion_rate"), w),
        ul_watch_rate=watch_rate("ul_views", "ul_impressions", pl.col("u_watch_rate"), w),
    )
    out = df.join(per_row, on="_row", how="left", maintain_order="left").join(
        lang, on="_row", how="left", maintain_order="left"
    )
    rate, watch = pl.col("u_completion_rate"), pl.col("u_watch_rate")
    return out.with_columns(
        pl.col("ut_affinity_max").fill_null(0.0),
        pl.col("ut_lift_max").fill_null(0.0),
        pl.col("ut_completion_rate_max").fill_null(rate),
        pl.col("ut_watch_rate_max").fill_null(watch),
        pl.col("ut_watch_rate_mean").fill_null(watch),
        pl.col("ul_affinity").fill_null(0.0),
        pl.col("ul_completion_rate").fill_null(rate),
        pl.col("ul_watch_rate").fill_null(watch),
    )
