"""Training loop of the two-tower model: the configured task's loss (binary or sampled softmax,
see ``tasks.py``), hard-negative mining, recall@K on a per-user temporal validation carve,
early stopping, optional refit.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from vidrec.candidates.index import ExactIndex, Exclusions
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import (
    NegativeSampler,
    Vocabulary,
    build_examples,
    catalogue_features,
    interacted_pairs,
    iterate_batches,
    shifted_index_lists,
)
from vidrec.candidates.two_tower.export import user_embeddings
from vidrec.candidates.two_tower.inputs import join_demographics
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.candidates.two_tower.tasks import Batch, Task, make_task
from vidrec.errors import DataError
from vidrec.features.user_state import build_user_state

Logger = Callable[[str], None]

_log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What training did: per-epoch figures, the chosen epoch and the time it took."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_recall: float = float("nan")
    seconds: float = 0.0
    refit_seconds: float = 0.0


def carve_validation(
    events: pl.DataFrame, fraction: float, min_interactions: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hold out each user's last ``fraction`` of interacted videos by time.

    Returns (events strictly before each carved user's cutoff, truth pairs ``user_id,
    video_id`` first interacted at or after the cutoff).
    """
    pairs = interacted_pairs(events).sort("user_id", "ts", "video_id")
    n = pl.len().over("user_id")
    pos = pl.int_range(pl.len()).over("user_id")
    n_val = (n.cast(pl.Float64) * fraction).floor().cast(pl.Int64).clip(lower_bound=1)
    pairs = pairs.with_columns(val=(pos >= n - n_val) & (n >= min_interactions))
    cutoff = pairs.filter("val").group_by("user_id").agg(cutoff=pl.col("ts").min())
    fit = events.join(cutoff, on="user_id", how="left").filter(
        pl.col("cutoff").is_null() | (pl.col("ts") < pl.col("cutoff"))
    ).drop("cutoff")
    truth = pairs.join(cutoff, on="user_id").filter(pl.col("ts") >= pl.col("cutoff"))
    truth = truth.join(interacted_pairs(fit), on=["user_id", "video_id"], how="anti")
    return fit, truth.select("user_id", "video_id")


def recall_at_k(
    model: TwoTowerModel, state: pl.DataFrame, truth: pl.DataFrame, k: int
) -> float:
    """Mean over users of |top-k ∩ truth| / |truth|, ranking all videos the user has not seen.

    ``state`` holds ``build_user_state`` rows of the truth users (their state at the cutoff).
    """
    index = ExactIndex()
    with torch.no_grad():
        model.eval()
        ids = torch.arange(1, len(model.vocab.videos) + 1)
        index.add(ids.numpy(), model.catalogue_tower(ids).numpy())
    seen = Exclusions(*shifted_index_lists(state["seen"], model.vocab.videos))
    _, top = index.search(user_embeddings(model, state), k, seen)
    got = pl.DataFrame({"user_id": state["user_id"], "video": pl.Series(top.tolist())}).explode("video")
    truth_idx = truth.with_columns(video=pl.Series(model.vocab.video_index(truth["video_id"])))
    hits = truth_idx.join(got, on=["user_id", "video"], how="left", coalesce=False)
    per_user = hits.group_by("user_id").agg(rec=pl.col("video_right").is_not_null().sum() / pl.len())
    return float(per_user["rec"].mean())


def validation_state(
    events: pl.DataFrame, videos: pl.DataFrame, truth: pl.DataFrame, history_len: int
) -> pl.DataFrame:
    """The state of every truth user built from ``events`` (cold users get empty lists)."""
    state = build_user_state(events, videos, history_len=history_len)
    users = truth.select("user_id").unique().sort("user_id")
    return users.join(state, on="user_id", how="left").with_columns(
        pl.col(c).fill_null(pl.lit([], dtype=pl.List(pl.String)))
        for c in ("recent_completed", "recent_watched", "seen", "disliked")
    )


class Parallel:
    """The hooks through which the loop runs on several processes; these defaults (one
    process) change nothing. ``distributed.DistributedParallel`` overrides them under torchrun."""

    world_size = 1

    def order_rng(self, rng: np.random.Generator, epoch: int) -> np.random.Generator:
        """The generator shuffling an epoch's examples (under torchrun: the same on every rank)."""
        return rng

    def shard(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """This process's part of each batch of ``world_size * batch_size`` examples."""
        return batches

    def step(self, model: TwoTowerModel, task: Task) -> Callable[[Batch], tuple[torch.Tensor, float]]:
        """One step's (loss, weight) function; where the model gets wrapped for gradient sync."""
        return lambda batch: task.loss(model, batch)

    def total(self, loss_sum: float, weight: float) -> tuple[float, float]:
        """An epoch's loss sum and weight over all processes."""
        return loss_sum, weight

    def recall(self, model: TwoTowerModel, state: pl.DataFrame, truth: pl.DataFrame, k: int) -> float:
        """Validation recall@k, identical on every process (so early stopping agrees)."""
        return recall_at_k(model, state, truth, k)


def _mine_now(config: TwoTowerConfig, task: Task, epoch: int, batch_in_epoch: int, step: int) -> bool:
    """Re-mine hard negatives after the warm-up: at each epoch start, or every N steps."""
    if task.miner is None or epoch <= config.hard_negative_warmup_epochs:
        return False
    if task.miner.refreshes == 0 or not config.hard_negative_refresh_steps:
        return batch_in_epoch == 0
    return step % config.hard_negative_refresh_steps == 0


def _train(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    vocab: Vocabulary,
    config: TwoTowerConfig,
    epochs: int,
    evaluate: Callable[[TwoTowerModel], float] | None,
    log: Logger,
    parallel: Parallel,
    users: pl.DataFrame | None = None,
    catalogue: dict[str, torch.Tensor] | None = None,
) -> tuple[TwoTowerModel, list[dict[str, float]], int]:
    """Train from a fresh seeded initialisation; keep the best epoch when ``evaluate`` is given.

    ``catalogue`` holds the videos' tower inputs (``catalogue_features``), computed once per fit.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = TwoTowerModel(config, vocab)
    model.set_catalogue(catalogue if catalogue is not None else catalogue_features(vocab, videos, config))
    ex = build_examples(
        events, videos, vocab, config.history_len, config.user_hash_buckets, config.user_hash_functions,
        config=config, users=users,
    )
    if len(ex) == 0:
        raise DataError("two-tower training: no watch or like events on known videos", "check the events table")
    sampler = NegativeSampler(
        len(vocab.videos), ex.video.numpy(), ex.interacted_keys,
        config.popularity_negative_share, config.popularity_exponent, rng,
    )
    task = make_task(config, ex, len(vocab.videos), rng)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step_loss = parallel.step(model, task)
    stats: list[dict[str, float]] = []
    best, best_epoch, best_state, stale, step = -1.0, epochs, None, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        per_positive = config.negatives_per_positive if config.objective == "binary" else 0
        neg, valid = sampler.sample(ex.user, per_positive)
        total, weight = 0.0, 0.0
        order_rng = parallel.order_rng(rng, epoch)
        batches = iterate_batches(ex, neg, valid, config.batch_size * parallel.world_size, order_rng)
        outer_threads = torch.get_num_threads()
        if config.deterministic:  # parallel reductions in backward would change the float sums run to run
            torch.set_num_threads(1)
        try:
            for i, batch in enumerate(parallel.shard(batches)):
                if _mine_now(config, task, epoch, i, step):
                    task.miner.refresh(model)
                loss, w = step_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * w
                weight += w
                step += 1
        finally:
            torch.set_num_threads(outer_threads)
        total, weight = parallel.total(total, weight)
        secs = time.perf_counter() - t0
        row = {"epoch": epoch, "loss": total / weight, "seconds": secs, "examples_per_s": len(ex) / secs}
        if evaluate is not None:
            row["val_recall"] = evaluate(model)
        stats.append(row)
        log(
            f"epoch {epoch:3d}  loss {row['loss']:.4f}  {row['examples_per_s']:,.0f} examples/s"
            + (f"  val recall@{config.eval_k} {row['val_recall']:.4f}" if evaluate else "")
        )
        if evaluate is None:
            continue
        if row["val_recall"] > best:
            best, best_epoch, best_state, stale = row["val_recall"], epoch, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                log(f"early stop: no improvement for {config.patience} epochs (best epoch {best_epoch})")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, stats, best_epoch


def fit_two_tower(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    config: TwoTowerConfig | None = None,
    log: Logger = _log.info,
    parallel: Parallel | None = None,
    users: pl.DataFrame | None = None,
) -> tuple[TwoTowerModel, TrainReport]:
    """Train a two-tower model on an event log and the videos table.

    With ``val_fraction > 0`` the epoch count is chosen by recall@``eval_k`` on each user's
    last interactions, then (``refit_full``) the model is retrained on all events for
    that many epochs, so the most recent interactions are not lost to validation.
    ``parallel`` runs one shard per process under torchrun (see ``distributed.py``).
    ``users`` (the users table) feeds the demographics when ``config.user_demographics``.
    """
    config = config or TwoTowerConfig()
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _fit(events, videos, config, log, parallel or Parallel(), users)
    finally:
        torch.set_num_threads(previous_threads)


def _sample_users(truth: pl.DataFrame, most: int, seed: int) -> pl.DataFrame:
    """``truth`` of at most ``most`` of its users, a seeded sample: validation recall is an
    estimate, and its cost (every validation user against the whole catalogue) must not grow
    with the platform."""
    users = truth["user_id"].unique().sort()
    if len(users) <= most:
        return truth
    keep = users.sample(most, seed=seed)
    return truth.filter(pl.col("user_id").is_in(keep.implode()))


def _fit(
    events: pl.DataFrame, videos: pl.DataFrame, config: TwoTowerConfig, log: Logger, parallel: Parallel,
    users: pl.DataFrame | None = None,
) -> tuple[TwoTowerModel, TrainReport]:
    vocab = Vocabulary.from_videos(videos, users if config.user_demographics else None)
    catalogue = catalogue_features(vocab, videos, config)  # title vectors (if any) computed once here
    report = TrainReport()
    t0 = time.perf_counter()
    if config.val_fraction > 0:
        fit, truth = carve_validation(events, config.val_fraction, config.val_min_interactions)
    if config.val_fraction > 0 and truth.height:
        truth = _sample_users(truth, config.val_max_users, config.seed)
        state = validation_state(fit, videos, truth, config.history_len)
        # Richer user inputs: demographics, and requests at the end of the fit period (as served).
        state = join_demographics(state, users, vocab.user_fields).with_columns(request_ts=fit["ts"].max())
        evaluate = lambda m: parallel.recall(m, state, truth, config.eval_k)  # noqa: E731
        model, report.epochs, report.best_epoch = _train(
            fit, videos, vocab, config, config.epochs, evaluate, log, parallel, users, catalogue
        )
        report.best_recall = max(r["val_recall"] for r in report.epochs)
        report.seconds = time.perf_counter() - t0
        if config.refit_full:
            t1 = time.perf_counter()
            log(f"refit on all events for {report.best_epoch} epochs")
            model, _, _ = _train(
                events, videos, vocab, config, report.best_epoch, None, log, parallel, users, catalogue
            )
            report.refit_seconds = time.perf_counter() - t1
    else:
        model, report.epochs, report.best_epoch = _train(
            events, videos, vocab, config, config.epochs, None, log, parallel, users, catalogue
        )
        report.seconds = time.perf_counter() - t0
    return model, report
