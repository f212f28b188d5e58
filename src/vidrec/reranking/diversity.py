"""Creator cap: at most ``cap`` videos of one creator in each window of ``window`` slots.

A slate filled by one prolific creator wastes the user's attention and the other
creators' chances. The cap is greedy in score order, exactly as if the slate were
filled slot by slot: a video whose creator already has ``cap`` videos in the current
window waits for the next window, and the slot goes to the next best video.

The loop runs over windows (``ceil(k / window)`` of them), never over users: each
window is filled for all users at once with window functions.
"""

from __future__ import annotations

import math

import polars as pl

from vidrec.reranking.filters import CREATOR

POS = "__pos"
"""0-based position of a candidate in its user's list ordered by final score (no ties)."""
BLOCKED = "__capped"
"""True once the cap kept a candidate out of a window it would otherwise have entered."""
CAP_CODE = "__cap_code"
"""``creator_cap:deferred`` / ``creator_cap:relaxed`` on slate rows the cap moved, else null."""
KEYS = ["user_id", "video_id"]
_HEAD = 4
"""The greedy first runs on each user's best ``_HEAD * k`` eligible videos (see cap_creators)."""


def order_by_score(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort each user's candidates by final score (ties by video_id) and number them."""
    ordered = frame.sort(
        ["user_id", "final_score", "video_id"], descending=[False, True, False], nulls_last=True
    )
    return ordered.with_columns(pl.int_range(pl.len()).over("user_id").alias(POS))


def _rank_over(*by: str) -> pl.Expr:
    """1-based rank of each row by natural position within the groups ``by``."""
    return pl.col(POS).rank("ordinal").over(*by).cast(pl.Int32)


def _fill_window(
    remaining: pl.DataFrame, cap: int, start: int, slots: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Fill one window for every user in ``remaining``: (picked keys with rank, blocked keys)."""
    cur = remaining.with_columns(
        _rank_over("user_id", CREATOR).alias("__crank"),
        _rank_over("user_id").alias("__urank"),
    )
    allowed = pl.col("__crank") <= cap
    picked = (
        cur.filter(allowed)
        .with_columns(_rank_over("user_id").alias("__brank"))
        .filter(pl.col("__brank") <= slots)
        .select(*KEYS, (pl.col("__brank") + start).alias("rank"))
    )
    blocked = cur.filter(~allowed & (pl.col("__urank") <= slots)).select(KEYS)
    return picked, blocked


def _greedy(
    cands: pl.DataFrame, k: int, cap: int, window: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The cap-respecting slates: (slate keys with rank, blocked keys, users that ran short)."""
    remaining = cands.select(*KEYS, CREATOR, POS)
    users = remaining.select("user_id").unique()
    slates, blocks = [], []
    for block in range(math.ceil(k / window)):
        start = block * window
        slots = min(window, k - start)
        picked, blocked = _fill_window(remaining, cap, start, slots)
        slates.append(picked)
        blocks.append(blocked)
        # a user whose window came out short has run out of videos that respect the cap
        full = picked.group_by("user_id").agg(pl.len().alias("__n")).filter(pl.col("__n") == slots)
        remaining = remaining.join(picked, on=KEYS, how="anti").join(full, on="user_id", how="semi")
        if remaining.height == 0:
            break
    slate = pl.concat(slates, how="vertical")
    complete = slate.group_by("user_id").agg(pl.len().alias("__n")).filter(pl.col("__n") == k)
    short = users.join(complete, on="user_id", how="anti")
    return slate, pl.concat(blocks, how="vertical").unique(), short


def _capped_greedy(
    ordered: pl.DataFrame, k: int, cap: int, window: int
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """:func:`_greedy` on each user's best ``_HEAD * k`` videos, redone where that mattered.

    The greedy on a prefix of a user's list gives the same slate as on the full list
    unless a window came out short while videos were left out; those users are redone
    on their full list, less the videos that cannot matter: a creator's videos enter a
    slate in score order, at most ``cap`` per window, so one beyond its creator's first
    ``cap * windows`` can only enter by backfill, which takes from the top ``k``.
    Returns (slate keys with rank, blocked keys, the candidate rows considered).
    """
    head_len = _HEAD * k
    pool = ordered.filter(pl.col(POS) < head_len)
    slate, blocked, short = _greedy(pool, k, cap, window)
    truncated = ordered.filter(pl.col(POS) == head_len).select("user_id")
    redo = short.join(truncated, on="user_id", how="semi")
    if redo.height:
        limit = cap * math.ceil(k / window)
        full = ordered.join(redo, on="user_id", how="semi")
        full = full.filter((_rank_over("user_id", CREATOR) <= limit) | (pl.col(POS) < k))
        slate2, blocked2, _ = _greedy(full, k, cap, window)
        slate = pl.concat([slate.join(redo, on="user_id", how="anti"), slate2])
        blocked = pl.concat([blocked.join(redo, on="user_id", how="anti"), blocked2])
        pool = pl.concat([pool.join(redo, on="user_id", how="anti"), full])
    return slate, blocked, pool


def cap_creators(
    ordered: pl.DataFrame,
    k: int,
    cap: int | None,
    window: int,
    backfill: bool = True,
    leftover: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Pick each user's slate of at most ``k`` under the creator cap.

    ``ordered`` comes from :func:`order_by_score` and carries the creator column.
    Returns ``(slate, leftover)``: the slate has an Int32 ``rank`` (1-based) and
    :data:`CAP_CODE`; the leftover (None unless asked for) has the :data:`BLOCKED`
    flag, telling "cut by the cap" from "below the cut". Slate rows moved to a later
    window are ``creator_cap:deferred``. When the cap leaves a slate short and
    ``backfill`` is set, the best capped videos fill it as ``creator_cap:relaxed``;
    otherwise the slate stays short.
    """
    no_code = pl.lit(None, dtype=pl.String).alias(CAP_CODE)
    if cap is None:
        rank = (pl.col(POS) + 1).cast(pl.Int32).alias("rank")
        slate = ordered.filter(pl.col(POS) < k).with_columns(rank, no_code)
        rest = ordered.filter(pl.col(POS) >= k).with_columns(pl.lit(False).alias(BLOCKED))
        return slate, rest if leftover else None
    keys, blocked, pool = _capped_greedy(ordered, k, cap, window)
    flag = blocked.with_columns(pl.lit(True).alias(BLOCKED))
    code = pl.when(pl.col(BLOCKED)).then(pl.lit("creator_cap:deferred")).otherwise(no_code)
    slate = (
        pool.join(keys, on=KEYS, how="inner")
        .join(flag, on=KEYS, how="left")
        .with_columns(code.alias(CAP_CODE))
        .drop(BLOCKED)
    )
    if backfill:
        filled = _backfill(pool.join(keys, on=KEYS, how="anti"), keys, k)
        slate = pl.concat([slate, filled], how="vertical")
    if not leftover:
        return slate, None
    rest = ordered.join(slate.select(KEYS), on=KEYS, how="anti")
    return slate, rest.join(flag, on=KEYS, how="left").with_columns(pl.col(BLOCKED).fill_null(False))


def _backfill(rest: pl.DataFrame, placed: pl.DataFrame, k: int) -> pl.DataFrame:
    """Fill the rest of each short slate with the best remaining videos, cap relaxed."""
    counts = placed.group_by("user_id").agg(pl.len().cast(pl.Int32).alias("__n"))
    return (
        rest.filter(pl.col(POS) < k)  # enough: at most n of the top k were placed
        .join(counts, on="user_id", how="left")
        .with_columns(pl.col("__n").fill_null(0))
        .filter(pl.col("__n") < k)
        .with_columns((_rank_over("user_id") + pl.col("__n")).alias("rank"))
        .filter(pl.col("rank") <= k)
        .drop("__n")
        .with_columns(pl.lit("creator_cap:relaxed").alias(CAP_CODE))
    )
