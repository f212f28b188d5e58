"""The re-ranking budget at training time: a validation window carved from the end of the
training log, served as of its start, and the soft objectives chosen on it.

The window is the ranker's own validation period (the latest ``val_fraction`` of its
examples, which its network never trained on), started earlier where that period holds too
few users (:func:`window_start`; there the ranker did train on part of it, so its order looks
better than on unseen data and the objectives' cost is, if anything, overstated): each
sampled user's request is hydrated
from the events before the window, runs the candidate and scoring stages as served, and
is judged on the videos the user completed in the window. The candidate pool comes from
generators that did see the window, so the pool is somewhat better than on unseen data;
the budget is a share of the scored order's NDCG within that pool, so the cost of each soft
objective is measured where it acts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import numpy as np
import polars as pl

from vidrec.data.dataset import Dataset
from vidrec.data.schema import epoch_us, from_epoch_us, with_derived
from vidrec.features.store.snapshot import VersionState
from vidrec.pipeline import Pipeline
from vidrec.reranking.budget import Window, changes, choose_within_budget
from vidrec.reranking.reranker import DefaultReRanker

log = logging.getLogger(__name__)
BATCH = 32  # requests served together while scoring the window


def window_start(pipeline: Pipeline, train: Dataset, derived: pl.DataFrame, min_users: int) -> datetime | None:
    """Where the validation window begins: the ranker's validation period (the examples its
    network never trained on), widened back to the latest time at which at least ``min_users``
    users have an event before and a completion after, when the period holds fewer; None when
    no time has that many (a log whose users each come once)."""
    since = pipeline.ranker.report.get("validation_since")
    done = derived.filter(pl.col("completed")).group_by("user_id").agg(last=pl.col("ts").max())
    spans = train.events.group_by("user_id").agg(first=pl.col("ts").min()).join(done, on="user_id")
    firsts = np.sort(spans["first"].dt.epoch("us").to_numpy())
    lasts = np.sort(spans["last"].dt.epoch("us").to_numpy())
    start = lasts.max(initial=0) if since is None else epoch_us(datetime.fromisoformat(since))
    times = np.unique(np.append(lasts[lasts <= start], start))[::-1]  # latest first
    # users with their first event before t and their last completion at or after t
    active = np.searchsorted(firsts, times, "left") - np.searchsorted(lasts, times, "left")
    enough = np.flatnonzero(active >= min_users)
    return None if enough.size == 0 else from_epoch_us(int(times[enough[0]]))


def validation_window(pipeline: Pipeline, train: Dataset, derived: pl.DataFrame, since: datetime, users_max: int,
                      min_users: int = 1, seed: int = 0, k: int = 10) -> Window | None:  # fmt: skip
    """The window's requests, scored as served at ``since``, and each user's completions after it
    (``derived``: the training events ``with_derived``)."""
    from vidrec.recommender import Recommender, store_config  # the serving path, built as it serves

    catalogue = pipeline.catalogue
    assert catalogue is not None, "fit the pipeline first"
    before = train.events.filter(pl.col("ts") < since)
    after = derived.filter(pl.col("ts") >= since)
    seen = before.select("user_id", "video_id").unique()
    done = (
        after.filter(pl.col("completed")).select("user_id", "video_id").unique()
        .join(seen, on=["user_id", "video_id"], how="anti")
        .filter(pl.col("user_id").is_in(before["user_id"].unique().implode()))
    )  # fmt: skip
    users = done["user_id"].unique().sort()
    if users.len() < min_users:
        return None
    if users.len() > users_max:
        users = users.sample(users_max, seed=seed).sort()
    done = done.filter(pl.col("user_id").is_in(users.implode()))
    state = VersionState.build(before, catalogue, train.users, store_config(pipeline.config))
    rec = Recommender(pipeline, catalogue, train.users, state, since)
    rec.attach(":memory:")
    asks = [(u, k) for u in users.to_list()]
    results = [r for i in range(0, len(asks), BATCH) for r in rec.run_many(asks[i : i + BATCH], since, "scored")]
    truth = {u: catalogue.rows_of(g["video_id"]) for (u,), g in done.group_by("user_id")}
    return Window(
        requests=[r.request for r in results],
        rows=[r.candidates.rows for r in results],
        scores=[np.asarray(cast(dict, r.scored)["score"]) for r in results],
        truth=[truth[u][truth[u] >= 0] for u, _ in asks],
        k=k,
    )


def tune_reranking(pipeline: Pipeline, train: Dataset, log: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Choose the re-ranking soft objectives within ``rerank.budget`` and install them in ``pipeline``.

    Returns what was measured (saved beside the re-ranking config as ``budget.json``)."""
    config = pipeline.config.rerank
    if config.budget is None or config.budget >= 1.0:
        return {"budget": config.budget}  # the soft objectives as set, nothing measured
    derived = with_derived(train.events, train.videos)  # completions, once for both steps
    since = window_start(pipeline, train, derived, config.budget_min_users)
    window = (None if since is None else validation_window(pipeline, train, derived, since, config.budget_users,
                                                           config.budget_min_users))  # fmt: skip
    if window is None:
        log(f"[reranking] no validation window with {config.budget_min_users} users who come back and complete "
            "a video: the soft objectives are kept as configured")
        return {"budget": config.budget, "users": 0}
    live = pipeline.live
    evaluate = window.evaluator(cast(Any, pipeline.catalogue), live, pipeline.video_vectors())
    chosen, trace = choose_within_budget(evaluate, config, config.budget)
    turned = changes(config, chosen)
    reference, kept = trace[0]["ndcg"], next(r for r in reversed(trace) if r["kept"])
    log(f"[reranking] budget {config.budget:.0%} of NDCG@{window.k} on {len(window.requests):,} validation users "
        f"from {since:%Y-%m-%d %H:%M}: soft objectives off {reference:.4f}, as configured {trace[1]['ndcg']:.4f} "
        f"(cost {trace[1]['cost']:.1%}), chosen {kept['ndcg']:.4f} (cost {kept['cost']:.1%})")  # fmt: skip
    for knob, (was, now) in turned.items():
        log(f"[reranking]   {knob}: {was} -> {now}")
    pipeline.config = replace(pipeline.config, rerank=chosen)
    pipeline.reranker = DefaultReRanker(chosen)
    return {"budget": config.budget, "users": len(window.requests), "since": since.isoformat(), "k": window.k,
            "configured": {k: was for k, (was, _) in turned.items()}, "chosen": {k: v for k, (_, v) in turned.items()},
            "trace": trace}  # fmt: skip
