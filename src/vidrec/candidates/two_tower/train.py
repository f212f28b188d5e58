"""Training loop of the two-tower model: the configured task's loss (binary or sampled softmax,
see ``tasks.py``), hard-negative mining, recall@K on a per-user temporal validation carve,
early stopping, optional refit.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

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
    best_epoch: float = 0.0  # epochs of training behind the kept model (fractions: a round inside an epoch)
    best_recall: float = float("nan")
    seconds: float = 0.0
    refit_seconds: float = 0.0
    search: list[dict[str, Any]] = field(default_factory=list)  # the hyperparameter trials, in order (search)


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
    got = pl.DataFrame({"user_id": state["user_id"].gather(np.repeat(np.arange(len(top)), top.shape[1])),
                        "video": top.ravel()})  # fmt: skip
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
    epochs: float,
    evaluate: Callable[[TwoTowerModel], float] | None,
    log: Logger,
    parallel: Parallel,
    users: pl.DataFrame | None = None,
    catalogue: dict[str, torch.Tensor] | None = None,
    checkpoint: str | Path | None = None,
    start: dict | None = None,
) -> tuple[TwoTowerModel, _Loop]:
    """Train from a fresh seeded initialisation (or from ``start``: :func:`_warm_start` of an
    earlier loop) for at most ``epochs`` (fractions allowed); returns the model and the loop,
    whose ``stats`` hold one row per round and ``best_epoch`` the epochs behind the kept model.

    A round ends every ``config.eval_every`` examples (evenly within an epoch, at least once
    per epoch): with ``evaluate`` it measures validation recall, keeps the best round's
    weights and stops after ``config.patience`` rounds without improvement, so on a large
    log early stopping costs a few rounds, not a few passes over the log. Each round ends
    with a checkpoint (``checkpoint``: a file, one per rank under torchrun) that a rerun
    resumes from, mid-epoch included, to the model of an uninterrupted run.
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
    # fused: one kernel per step over all parameters (measured 10-15% faster steps on CPU than the loop)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    loop = _Loop(epochs=epochs)
    saved = _checkpoint(checkpoint, parallel, config, epochs, ex)
    state = saved.load()
    if start is not None and state is None:
        model.load_state_dict(start["model"])
        opt.load_state_dict(start["opt"])
        task.load_state_dict(start["task"])
    if state is not None:
        loop = state["loop"]
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        task.load_state_dict(state["task"])
        set_rng_state(rng, state["rng"])
    step_loss = parallel.step(model, task)
    if state is not None:
        torch.set_rng_state(state["torch_rng"])  # after ``step``: under DDP it reseeds each rank
    global_batch = config.batch_size * parallel.world_size
    n_batches = -(-len(ex) // global_batch)
    if parallel.world_size > 1 and len(ex) - (n_batches - 1) * global_batch < parallel.world_size:
        n_batches -= 1  # the ranks skip a last global batch too small to give each a row
    ends = _round_ends(n_batches, len(ex), config.eval_every)
    clock = EpochClock(int(np.ceil(epochs * len(ends))))
    per_positive = config.negatives_per_positive if config.objective == "binary" else 0
    for epoch in range(loop.epoch + 1, int(np.ceil(epochs)) + 1):
        if loop.stopped:
            break
        limit = n_batches if epoch <= epochs else round((epochs - (epoch - 1)) * n_batches)
        stops = sorted({e for e in ends if e < limit} | {limit})
        if loop.batch == 0:  # a fresh epoch (else resuming inside one: its arrays were saved)
            neg, valid = sampler.sample(ex.user, per_positive)
            order = torch.from_numpy(parallel.order_rng(rng, epoch).permutation(len(ex)))
        else:
            neg, valid, order = loop.arrays
        model.train()
        clock.start()
        batches = parallel.shard(iterate_batches(ex, neg, valid, global_batch, order=order, start=loop.batch))
        total, weight, seen = 0.0, 0.0, 0
        with deterministic_kernels(config.deterministic):
            for i, batch in zip(range(loop.batch, limit), bar(batches, limit - loop.batch, f"two-tower epoch {epoch}")):
                if _mine_now(config, task, epoch, i, loop.step):
                    task.miner.refresh(model)
                loss, w = step_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * w
                weight += w
                seen += len(batch["video"]) * parallel.world_size
                loop.step += 1
                if i + 1 not in stops:
                    continue
                loop.epoch, loop.batch = (epoch, 0) if i + 1 == n_batches else (epoch - 1, i + 1)
                if _end_round(loop, epoch - 1 + (i + 1) / n_batches, (total, weight, seen), parallel, clock,
                              evaluate, model, config, log):  # fmt: skip
                    loop.best_opt, loop.best_task = copy.deepcopy(opt.state_dict()), copy.deepcopy(task.state_dict())
                loop.arrays = (neg, valid, order) if loop.batch else None
                saved.save({"loop": loop, "model": model.state_dict(), "opt": opt.state_dict(),
                            "task": task.state_dict(), "rng": rng_state(rng), "torch_rng": torch.get_rng_state()})
                if loop.stopped:
                    break
                total, weight, seen = 0.0, 0.0, 0
                model.train()
                clock.start()
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    model.eval()
    return model, loop


def _warm_start(loop: _Loop, config: TwoTowerConfig) -> dict:
    """What a refit continues from: the best round's weights and optimizer state, and the
    streaming log-q estimate (the hard-negative pools and exact counts belong to the search's
    examples, so the refit builds its own)."""
    frequency = (loop.best_task or {}).get("frequency") if config.logq_correction == "streaming" else None
    return {"model": loop.best_state, "opt": loop.best_opt, "task": {"miner": None, "frequency": frequency}}


@contextlib.contextmanager
def deterministic_kernels(on: bool) -> Iterator[None]:
    """Torch's deterministic kernels while ``on``: the threaded backward of the embedding tables
    otherwise sums floats in a varying order, so one seed gave different models run to run.
    They keep every thread busy (measured 1.40x the examples/s of the single thread this
    used to need, on 2 cores); the model still depends on the thread count."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(on or before)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


MAX_ROUNDS_PER_EPOCH = 4
"""Validation measures recall against the whole catalogue for up to ``val_max_users`` users,
a cost that grows with the catalogue, not with the examples: at most this many per epoch
keeps it a small share of a large log's training time."""


def _round_ends(n_batches: int, n_examples: int, every: int) -> list[int]:
    """Batch counts at which an epoch's rounds end: evenly spaced, one per ``every`` examples
    (at least one per epoch, at its end; at most :data:`MAX_ROUNDS_PER_EPOCH`)."""
    rounds = max(1, min(n_batches, MAX_ROUNDS_PER_EPOCH, -(-n_examples // every))) if every > 0 else 1
    return [round(n_batches * j / rounds) for j in range(1, rounds + 1)]


def _end_round(
    loop: _Loop, epochs_done: float, sums: tuple[float, float, int], parallel: Parallel, clock: EpochClock,
    evaluate: Callable[[TwoTowerModel], float] | None, model: TwoTowerModel, config: TwoTowerConfig, log: Logger,
) -> bool:
    """A round's figures, its log line and the early-stopping decision; True when the round is the best yet."""
    total, weight = parallel.total(*sums[:2])
    loop.rounds += 1
    secs = clock.stop(loop.rounds)
    row = {"epoch": round(epochs_done, 4), "loss": total / weight, "seconds": secs, "examples_per_s": sums[2] / secs}
    if evaluate is not None:
        row["val_recall"] = evaluate(model)
    loop.stats.append(row)
    log(
        f"epoch {_epochs(epochs_done):>6}/{loop.epochs:g}  loss {row['loss']:.4f}  "
        f"{row['examples_per_s']:,.0f} examples/s"
        + (f"  val recall@{config.eval_k} {row['val_recall']:.4f}" if evaluate else "") + clock.left()
    )
    if evaluate is None:
        return False
    if row["val_recall"] > loop.best:
        loop.best, loop.best_epoch, loop.stale = row["val_recall"], epochs_done, 0
        loop.best_state = copy.deepcopy(model.state_dict())
        return True
    loop.stale += 1
    if loop.stale >= config.patience:
        log(f"early stop: no improvement in {config.patience} rounds (best at epoch {_epochs(loop.best_epoch)})")
        loop.stopped = True
    return False


def _epochs(value: float) -> str:
    """An epoch count as logged: whole numbers plain, fractions with two decimals."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


@dataclass
class _Loop:
    """The training loop's own progress: what a checkpoint needs besides the model and optimizer."""

    epochs: float
    epoch: int = 0  # epochs finished
    batch: int = 0  # batches done of the epoch after them (a checkpoint inside an epoch)
    rounds: int = 0
    step: int = 0
    stats: list[dict[str, float]] = field(default_factory=list)
    best: float = -1.0
    best_epoch: float = 0.0
    best_state: dict[str, torch.Tensor] | None = None
    best_opt: dict | None = None  # the optimizer and task state of the best round: where a warm refit starts
    best_task: dict | None = None
    stale: int = 0
    stopped: bool = False
    arrays: tuple | None = None  # the epoch's negatives and order, when a checkpoint falls inside it

    def __post_init__(self) -> None:
        self.best_epoch = self.epochs  # without validation the whole run is the model


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
    epochs: float | None = None,
) -> tuple[TwoTowerModel, TrainReport]:
    """Train a two-tower model on an event log and the videos table.

    With ``val_fraction > 0`` the epoch count is chosen by recall@``eval_k`` on each user's
    last interactions, then (``refit_full``) the model trains on all events, so the most recent
    interactions are not lost to validation: ``refit_warm_epochs`` more passes from the search's
    best round, or, with 0, as
    many epochs as the search chose from a fresh initialisation.
    ``parallel`` runs one shard per process under torchrun (see ``distributed.py``).
    ``users`` (the users table) feeds the demographics when ``config.user_demographics``.
    ``checkpoints``: a directory for the loops' checkpoints; a rerun with the same inputs resumes.
    ``epochs``: train exactly this long (fractions allowed) without validation, for example the
    length another model's early stopping chose.
    """
    if epochs is not None:
        config = replace(config or TwoTowerConfig(), val_fraction=0.0, epochs=max(1, int(np.ceil(epochs))))
    config = config or TwoTowerConfig()
    if config.processes > 1 and parallel is None:
        from vidrec.candidates.two_tower.distributed import fit_processes

        return fit_processes(events, videos, config, log, users, checkpoints, epochs)
    config = config or TwoTowerConfig()
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _fit(events, videos, config, log, parallel or Parallel(), users, checkpoints, epochs)
    finally:
        torch.set_num_threads(previous_threads)


def _best_recall(loop: _Loop) -> float:
    return max((r["val_recall"] for r in loop.stats), default=float("-inf"))


def _hyper_search(
    config: TwoTowerConfig, trial: Callable[[TwoTowerConfig, str], tuple[TwoTowerModel, _Loop]],
    parallel: Parallel, log: Logger,
) -> tuple[TwoTowerConfig, TwoTowerModel, _Loop, list[dict[str, Any]]]:
    """The configured model, then ``config.search``'s values one key at a time from the best so
    far, each trained on the carve with early stopping; the best validation recall wins. No
    trial starts once ``search_seconds`` have passed since the first ended. Returns the chosen
    config, its model and loop (a warm refit continues from them) and one row per trial."""
    t0 = time.perf_counter()
    model, loop = trial(config, "search")
    best = _best_recall(loop)
    rows: list[dict[str, Any]] = [{"setting": None, "value": None, "val_recall": best,
                                   "seconds": time.perf_counter() - t0, "kept": True}]  # fmt: skip
    if not config.search or config.search_seconds <= 0:
        return config, model, loop, rows
    if parallel.world_size > 1:  # every process would have to agree on the clock
        log("hyperparameter search skipped: it runs in one process only (processes = 1)")
        return config, model, loop, rows
    start = time.perf_counter()
    for key, values in config.search.items():
        for value in values:
            if value == getattr(config, key):
                continue
            if time.perf_counter() - start > config.search_seconds:
                log(f"hyperparameter search: time budget of {config.search_seconds:g} s spent")
                return config, model, loop, rows
            cfg = replace(config, **{key: value})
            log(f"hyperparameter search: {key} = {value!r} (best so far recall@{config.eval_k} {best:.4f})")
            t1 = time.perf_counter()
            m, run = trial(cfg, f"search-{key}-{value}")
            recall = _best_recall(run)
            rows.append({"setting": key, "value": value, "val_recall": recall,
                         "seconds": time.perf_counter() - t1, "kept": recall > best})  # fmt: skip
            if recall > best:
                config, model, loop, best = cfg, m, run, recall
    chosen = {r["setting"]: r["value"] for r in rows if r["kept"] and r["setting"] is not None}
    log(f"hyperparameter search: {len(rows)} trials, chosen {chosen or 'the configured values'} "
        f"(recall@{config.eval_k} {best:.4f})")  # fmt: skip
    return config, model, loop, rows


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
    users: pl.DataFrame | None = None, checkpoints: str | Path | None = None, length: float | None = None,
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

        def trial(cfg: TwoTowerConfig, name: str) -> tuple[TwoTowerModel, _Loop]:
            return _train(fit, videos, vocab, cfg, cfg.epochs, evaluate, log, parallel, users, catalogue, where(name))

        config, model, search, report.search = _hyper_search(config, trial, parallel, log)
        report.epochs, report.best_epoch = search.stats, search.best_epoch
        report.best_recall = max(r["val_recall"] for r in report.epochs)
        report.seconds = time.perf_counter() - t0
        if config.refit_full:
            t1 = time.perf_counter()
            warm = config.refit_warm_epochs > 0
            refit_len = config.refit_warm_epochs if warm else report.best_epoch
            log(f"refit on all events for {refit_len:g} epoch{'' if refit_len == 1 else 's'}"
                + (f" from the search's best (epoch {_epochs(report.best_epoch)})" if warm else ""))  # fmt: skip
            model, _ = _train(
                events, videos, vocab, config, refit_len, None, log, parallel, users, catalogue,
                where("refit"), _warm_start(search, config) if warm else None,
            )
            report.refit_seconds = time.perf_counter() - t1
    else:
        model, run = _train(
            events, videos, vocab, config, length or config.epochs, None, log, parallel, users, catalogue,
            where("train"),
        )
        report.epochs, report.best_epoch = run.stats, run.best_epoch
        report.seconds = time.perf_counter() - t0
    return model, report
