"""Training loop of the two-tower model: the configured task's loss (binary or sampled softmax,
see ``tasks.py``), hard-negative mining, recall@K on a per-user temporal validation carve,
early stopping, optional refit.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch

from vidrec.candidates.index import ExactIndex, Exclusions
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import (
    Examples,
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
from vidrec.checkpoint import Checkpoint, input_key, rng_state, set_rng_state
from vidrec.errors import DataError
from vidrec.features.user_state import build_user_state
from vidrec.progress import EpochClock, bar

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
    checkpoint: str | Path | None = None,
) -> tuple[TwoTowerModel, list[dict[str, float]], int]:
    """Train from a fresh seeded initialisation; keep the best epoch when ``evaluate`` is given.

    ``catalogue`` holds the videos' tower inputs (``catalogue_features``), computed once per fit.
    ``checkpoint``: a file the loop's state is saved to after every epoch and resumed from
    (one per rank under torchrun); a resumed run ends with the model of an uninterrupted one.
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
    loop = _Loop(epochs=epochs)
    saved = _checkpoint(checkpoint, parallel, config, epochs, ex)
    state = saved.load()
    if state is not None:
        loop = state["loop"]
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        task.load_state_dict(state["task"])
        set_rng_state(rng, state["rng"])
    step_loss = parallel.step(model, task)
    if state is not None:
        torch.set_rng_state(state["torch_rng"])  # after ``step``: under DDP it reseeds each rank
    clock = EpochClock(epochs)
    global_batch = config.batch_size * parallel.world_size
    for epoch in range(loop.epoch + 1, epochs + 1):
        if loop.stopped:
            break
        model.train()
        clock.start()
        per_positive = config.negatives_per_positive if config.objective == "binary" else 0
        neg, valid = sampler.sample(ex.user, per_positive)
        total, weight = 0.0, 0.0
        order_rng = parallel.order_rng(rng, epoch)
        batches = iterate_batches(ex, neg, valid, global_batch, order_rng)
        outer_threads = torch.get_num_threads()
        if config.deterministic:  # parallel reductions in backward would change the float sums run to run
            torch.set_num_threads(1)
        try:
            steps = bar(parallel.shard(batches), -(-len(ex) // global_batch), f"two-tower epoch {epoch}")
            for i, batch in enumerate(steps):
                if _mine_now(config, task, epoch, i, loop.step):
                    task.miner.refresh(model)
                loss, w = step_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * w
                weight += w
                loop.step += 1
        finally:
            torch.set_num_threads(outer_threads)
        total, weight = parallel.total(total, weight)
        secs = clock.stop(epoch)
        row = {"epoch": epoch, "loss": total / weight, "seconds": secs, "examples_per_s": len(ex) / secs}
        if evaluate is not None:
            row["val_recall"] = evaluate(model)
        loop.stats.append(row)
        log(
            f"epoch {epoch:3d}/{epochs}  loss {row['loss']:.4f}  {row['examples_per_s']:,.0f} examples/s"
            + (f"  val recall@{config.eval_k} {row['val_recall']:.4f}" if evaluate else "") + clock.left()
        )
        loop.epoch = epoch
        if evaluate is not None:
            if row["val_recall"] > loop.best:
                loop.best, loop.best_epoch, loop.stale = row["val_recall"], epoch, 0
                loop.best_state = copy.deepcopy(model.state_dict())
            else:
                loop.stale += 1
                if loop.stale >= config.patience:
                    log(f"early stop: no improvement for {config.patience} epochs (best epoch {loop.best_epoch})")
                    loop.stopped = True
        saved.save({"loop": loop, "model": model.state_dict(), "opt": opt.state_dict(), "task": task.state_dict(),
                    "rng": rng_state(rng), "torch_rng": torch.get_rng_state()})  # fmt: skip
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    model.eval()
    return model, loop.stats, loop.best_epoch


@dataclass
class _Loop:
    """The training loop's own progress: what a checkpoint needs besides the model and optimizer."""

    epochs: int
    epoch: int = 0  # epochs finished
    step: int = 0
    stats: list[dict[str, float]] = field(default_factory=list)
    best: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    stopped: bool = False

    def __post_init__(self) -> None:
        self.best_epoch = self.epochs  # without validation the last epoch is the model


def _checkpoint(
    path: str | Path | None, parallel: Parallel, config: TwoTowerConfig, epochs: int, ex: Examples
) -> Checkpoint:
    """The loop's checkpoint: keyed by the config, the epoch budget and the examples; one file per rank."""
    key = input_key(asdict(config) | {"epochs": epochs, "world_size": parallel.world_size},
                    ex.user, ex.video, ex.history, ex.interacted_keys)  # fmt: skip
    if path is None:
        return Checkpoint(None, key)
    path = Path(path)
    rank = getattr(parallel, "rank", 0)
    return Checkpoint(path if parallel.world_size == 1 else path.with_suffix(f".rank{rank}.pt"), key)


def fit_two_tower(
    events: pl.DataFrame,
    videos: pl.DataFrame,
    config: TwoTowerConfig | None = None,
    log: Logger = _log.info,
    parallel: Parallel | None = None,
    users: pl.DataFrame | None = None,
    checkpoints: str | Path | None = None,
) -> tuple[TwoTowerModel, TrainReport]:
    """Train a two-tower model on an event log and the videos table.

    With ``val_fraction > 0`` the epoch count is chosen by recall@``eval_k`` on each user's
    last interactions, then (``refit_full``) the model is retrained on all events for
    that many epochs, so the most recent interactions are not lost to validation.
    ``parallel`` runs one shard per process under torchrun (see ``distributed.py``).
    ``users`` (the users table) feeds the demographics when ``config.user_demographics``.
    ``checkpoints``: a directory for the loops' checkpoints; a rerun with the same inputs resumes.
    """
    config = config or TwoTowerConfig()
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _fit(events, videos, config, log, parallel or Parallel(), users, checkpoints)
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
    users: pl.DataFrame | None = None, checkpoints: str | Path | None = None,
) -> tuple[TwoTowerModel, TrainReport]:
    where = (lambda name: None) if checkpoints is None else (lambda name: Path(checkpoints) / f"{name}.pt")
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
            fit, videos, vocab, config, config.epochs, evaluate, log, parallel, users, catalogue, where("search")
        )
        report.best_recall = max(r["val_recall"] for r in report.epochs)
        report.seconds = time.perf_counter() - t0
        if config.refit_full:
            t1 = time.perf_counter()
            log(f"refit on all events for {report.best_epoch} epochs")
            model, _, _ = _train(
                events, videos, vocab, config, report.best_epoch, None, log, parallel, users, catalogue,
                where("refit"),
            )
            report.refit_seconds = time.perf_counter() - t1
    else:
        model, report.epochs, report.best_epoch = _train(
            events, videos, vocab, config, config.epochs, None, log, parallel, users, catalogue, where("train")
        )
        report.seconds = time.perf_counter() - t0
    return model, report
