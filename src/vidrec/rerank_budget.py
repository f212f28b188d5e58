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

Where no time has enough such users (each user comes once, or the log has no meaningful
time order), each user's last watches are held out instead and the pipeline is trained again
on the rest (:func:`per_user_window`): on unseen data, at the price of a second training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import polars as pl

from vidrec.catalogue import Catalogue
from vidrec.data.dataset import Dataset
from vidrec.data.schema import epoch_us, from_epoch_us, with_derived
from vidrec.data.simulator import GroundTruth
from vidrec.data.splits import per_user_cut, split_at_cuts
from vidrec.features.store.snapshot import VersionState
from vidrec.pipeline import Pipeline
from vidrec.reranking.budget import Window, changes, choose_within_budget
from vidrec.reranking.config import ReRankConfig
from vidrec.reranking.reranker import DefaultReRanker

log = logging.getLogger(__name__)
BATCH = 32  # requests served together while scoring the window
HELD_OUT = 0.2
"""Share of each user's watches held out where the log has no shared validation period: the
offline evaluation's protocol, so the budget is measured the way the system is judged."""


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
    before = train.events.filter(pl.col("ts") < since)
    return _served(pipeline, train.users, before, derived.filter(pl.col("ts") >= since), since, users_max,
                   min_users, seed, k)  # fmt: skip


def per_user_window(pipeline: Pipeline, train: Dataset, derived: pl.DataFrame, users_max: int, min_users: int = 1,
                    seed: int = 0, k: int = 10) -> tuple[Window, Pipeline] | None:  # fmt: skip
    """For logs without a shared validation period (users who each come once, or no meaningful
    time order): each user's last :data:`HELD_OUT` of watches held out, as the offline evaluation
    does, the whole pipeline trained again on the rest with the soft objectives as configured,
    and the held-out users served by it as of the end of the rest. Returns the window and that
    pipeline (the re-ranker is bound to its catalogue and counts), or None with too few users."""
    cuts = per_user_cut(train.events, HELD_OUT)
    fit, _ = split_at_cuts(train.events, cuts)
    _, held = split_at_cuts(derived, cuts)
    if held["user_id"].n_unique() < min_users:
        return None
    # the settings the first training chose, without choosing them again
    sections = {**pipeline.config.sections, "two_tower": replace(pipeline.config.two_tower, search_seconds=0.0)}
    config = replace(pipeline.config, rerank=replace(pipeline.config.rerank, budget=1.0), sections=sections)
    shadow = Pipeline.fit(Dataset(fit, train.videos, train.users), config, log=log.debug)
    since = cast(datetime, fit["ts"].max()) + timedelta(microseconds=1)
    window = _served(shadow, train.users, fit, held, since, users_max, min_users, seed, k)
    return None if window is None else (window, shadow)


def _served(pipeline: Pipeline, users_table: pl.DataFrame, before: pl.DataFrame, after: pl.DataFrame,
            since: datetime, users_max: int, min_users: int, seed: int, k: int) -> Window | None:  # fmt: skip
    """Users who have events in ``before`` and complete a video in ``after`` they had not seen
    (at most ``users_max``, a seeded sample), served through the real path as of ``since`` from
    the state of ``before`` (``after``: derived events, with ``completed``)."""
    from vidrec.recommender import Recommender, store_config  # the serving path, built as it serves

    catalogue = pipeline.catalogue
    assert catalogue is not None, "fit the pipeline first"
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
    state = VersionState.build(before, catalogue, users_table, store_config(pipeline.config))
    rec = Recommender(pipeline, catalogue, users_table, state, since)
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


def _find_window(pipeline: Pipeline, train: Dataset, derived: pl.DataFrame, config: ReRankConfig,
                 log: Callable[[str], None]) -> tuple[Window, Pipeline, dict[str, Any]] | None:  # fmt: skip
    """The validation window ``config.budget_window`` asks for, the pipeline that scored it and where it is."""
    need, most = config.budget_min_users, config.budget_users
    if config.budget_window in ("auto", "time"):
        since = window_start(pipeline, train, derived, need)
        window = None if since is None else validation_window(pipeline, train, derived, since, most, need)
        if window is not None:
            return window, pipeline, {"window": "time", "since": since.isoformat()}
    if config.budget_window == "auto" and train.events.height > config.budget_retrain_events:
        log(f"[reranking] no time with {need} users who come back and complete a video, and at "
            f"{train.events.height:,} events a second training for a per-user carve is over budget_retrain_events "
            f"({config.budget_retrain_events:,}; budget_window = \"per-user\" forces it)")  # fmt: skip
        return None
    if config.budget_window in ("auto", "per-user"):
        auto = config.budget_window == "auto"
        why = f"no time with {need} users who come back and complete a video: " if auto else ""
        log(f"[reranking] {why}measuring the budget on each user's last {HELD_OUT:.0%} of watches, with the "
            "pipeline trained again on the rest")  # fmt: skip
        found = per_user_window(pipeline, train, derived, most, need)
        if found is not None:
            return *found, {"window": "per-user", "held_out": HELD_OUT}
    return None


def tune_reranking(pipeline: Pipeline, train: Dataset, log: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Choose the re-ranking soft objectives within ``rerank.budget`` and install them in ``pipeline``.

    Returns what was measured (saved beside the re-ranking config as ``budget.json``)."""
    config = pipeline.config.rerank
    if config.budget is None or config.budget >= 1.0:
        return {"budget": config.budget}  # the soft objectives as set, nothing measured
    derived = with_derived(train.events, train.videos)  # completions, once for every step
    found = _find_window(pipeline, train, derived, config, log)
    if found is None:
        log(f"[reranking] no validation window with {config.budget_min_users} users who complete a video they "
            "had not seen: the soft objectives are kept as configured")
        return {"budget": config.budget, "users": 0}
    window, scored_by, where = found
    catalogue = cast(Catalogue, scored_by.catalogue)
    measure = None if config.budget_truth is None else truth_measure(config.budget_truth, window, catalogue)
    what = f"NDCG@{window.k}" if measure is None else f"true expected completions per {window.k}"
    evaluate = window.evaluator(catalogue, scored_by.live, scored_by.video_vectors(), measure)
    chosen, trace = choose_within_budget(evaluate, config, config.budget)
    turned = changes(config, chosen)
    reference, kept = trace[0]["measured"], next(r for r in reversed(trace) if r["kept"])
    log(f"[reranking] budget {config.budget:.0%} of {what} on {len(window.requests):,} validation users "
        f"({_where(where)}): soft objectives off {reference:.4f}, as configured {trace[1]['measured']:.4f} "
        f"(cost {trace[1]['cost']:.1%}), chosen {kept['measured']:.4f} (cost {kept['cost']:.1%})")  # fmt: skip
    for knob, (was, now) in turned.items():
        log(f"[reranking]   {knob}: {was} -> {now}")
    pipeline.config = replace(pipeline.config, rerank=chosen)
    pipeline.reranker = DefaultReRanker(chosen)
    return {"budget": config.budget, "users": len(window.requests), **where, "k": window.k, "measure": what,
            "configured": {k: was for k, (was, _) in turned.items()}, "chosen": {k: v for k, (_, v) in turned.items()},
            "trace": trace}  # fmt: skip


def truth_measure(platform: str, window: Window, catalogue: Catalogue) -> Callable[[list[np.ndarray]], float]:
    """The simulator's true expected completions per slate, as of the window start: what a
    simulated platform's users would complete if shown the slates (``platform``: the directory
    `vidrec simulate` wrote; its ground truth must cover the catalogue's videos and the users)."""
    truth = GroundTruth.load(platform)
    users = np.array([r.user_id for r in window.requests], dtype=object)
    at = from_epoch_us(window.requests[0].now_us)
    ids = np.asarray(catalogue.ids, dtype=object)

    def measure(slates: list[np.ndarray]) -> float:
        rows = np.concatenate(slates) if slates else np.zeros(0, np.int64)
        who = np.repeat(users, [len(s) for s in slates])
        return float(truth.p_complete(who.tolist(), ids[rows].tolist(), at).sum()) / max(len(slates), 1)

    return measure


def _where(where: dict[str, Any]) -> str:
    """The window in words, for the log line."""
    if where["window"] == "time":
        return f"from {datetime.fromisoformat(where['since']):%Y-%m-%d %H:%M}"
    return f"each user's last {where['held_out']:.0%} of watches"
