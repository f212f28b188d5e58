"""Offline video embeddings (computed once, indexed) and request-time user embeddings."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch

from vidrec.candidates.two_tower.data import hash_ids, padded_indices
from vidrec.candidates.two_tower.inputs import demographic_indices, epoch_us, time_context
from vidrec.candidates.two_tower.model import TwoTowerModel
from vidrec.data.schema import TIMESTAMP
from vidrec.features.titles import title_embeddings


@torch.no_grad()
def video_embeddings(
    model: TwoTowerModel, videos: pl.DataFrame, batch_size: int = 8192
) -> tuple[pl.Series, np.ndarray]:
    """Embed every row of ``videos`` from its own columns: (video_ids, float32 (n, d)).

    Videos unknown to the model are embedded from their content (category, tags, creator,
    duration, language, title) alone.
    """
    model.eval()
    feats = model.vocab.encode_videos(videos, max_tags=model.video_tags.shape[1])
    if model.config.video_titles:
        feats["title"] = video_title_vectors(model, videos, feats["video"])
    out = np.empty((videos.height, model.config.embedding_dim), dtype=np.float32)
    for s in range(0, videos.height, batch_size):
        part = {k: v[s : s + batch_size] for k, v in feats.items()}
        out[s : s + batch_size] = model.video_tower(**part).numpy()
    return videos["video_id"], out


def video_title_vectors(model: TwoTowerModel, videos: pl.DataFrame, video: torch.Tensor) -> torch.Tensor:
    """(n, TITLE_DIM) title vectors of ``videos`` rows (shifted indices ``video``): the ones
    stored at fit for known videos, computed now from the title for unknown ones only."""
    out = model.video_title[video].clone()  # unknown rows read row 0: zeros
    cold = (video == 0).numpy()
    if cold.any():
        out[torch.from_numpy(cold)] = torch.from_numpy(title_embeddings(videos.filter(pl.Series(cold))))
    return out


def serving_user_inputs(
    model: TwoTowerModel, user_state: pl.DataFrame, now: datetime | None = None
) -> dict[str, np.ndarray]:
    """The user-tower inputs of ``build_user_state`` rows at request time ``now``.

    Dislikes come from ``disliked``; demographics from extra columns of the frame
    (``age_bucket``, ``country`` ...; absent ones are unknown); hour and day of week from
    ``now``, else from a per-row ``request_ts`` column (unknown without either); the example age is
    left out, which means zero.
    """
    cfg, n = model.config, user_state.height
    out = {
        "user_buckets": hash_ids(user_state["user_id"], cfg.user_hash_buckets, cfg.user_hash_functions),
        "history": padded_indices(user_state["recent_completed"], model.vocab.videos, cfg.history_len),
    }
    if cfg.dislike_len and "disliked" in user_state.columns:
        out["dislikes"] = padded_indices(
            user_state["disliked"].fill_null([]), model.vocab.videos, cfg.dislike_len
        )
    if cfg.user_demographics:
        out["demographics"] = demographic_indices(user_state, model.vocab.user_fields)
    if cfg.request_context and (now is not None or "request_ts" in user_state.columns):
        ts = (
            np.full(n, epoch_us(now), dtype=np.int64) if now is not None
            else user_state["request_ts"].cast(TIMESTAMP).dt.epoch("us").fill_null(0).to_numpy()
        )
        out["hour"], out["dow"] = time_context(ts)
    return out


@torch.no_grad()
def user_embeddings(
    model: TwoTowerModel, user_state: pl.DataFrame, batch_size: int = 8192, now: datetime | None = None
) -> np.ndarray:
    """Embed users from their current state (``build_user_state`` rows, optionally with
    demographic columns) at request time ``now``: float32 (n, d)."""
    model.eval()
    arrays = serving_user_inputs(model, user_state, now)
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    out = np.empty((user_state.height, model.config.embedding_dim), dtype=np.float32)
    for s in range(0, user_state.height, batch_size):
        part = {k: v[s : s + batch_size] for k, v in inputs.items()}
        out[s : s + batch_size] = model.embed_users(part).numpy()
    return out


def right_aligned(lists: list[np.ndarray], width: int) -> np.ndarray:
    """(n, width) int64: the last ``width`` values of each list, right-aligned (0 pads on the left)."""
    out = np.zeros((len(lists), width), dtype=np.int64)
    for i, values in enumerate(lists):  # one row per request in the batch (usually one)
        tail = values[len(values) - min(width, len(values)):]
        if len(tail):
            out[i, width - len(tail):] = tail
    return out


class _UserTower(torch.nn.Module):
    """The user tower over positional inputs (what ``torch.jit.trace`` takes)."""

    def __init__(self, model: TwoTowerModel, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model.embed_users(dict(zip(self.keys, inputs)))


def _trace(model: TwoTowerModel, inputs: dict[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
    """The eval-mode user tower traced for inputs shaped like ``inputs``; eager when tracing fails."""
    tower = _UserTower(model, tuple(inputs)).eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(tower, tuple(inputs.values()), check_trace=False))
        if torch.allclose(traced(*inputs.values()), tower(*inputs.values()), atol=1e-6):
            return traced
    except (RuntimeError, torch.jit.Error):  # an exotic layer the tracer cannot follow: stay eager
        pass
    return tower


class RequestInputs:
    """The user tower's inputs for hydrated requests, from catalogue rows (ids are mapped once, at bind).

    ``vocab_of_row`` gives the model's shifted video index of every catalogue row (0 for videos
    the model never saw); ``context`` adds dislikes, demographics and the request's hour and
    day, as the retrieval tower reads them (the ranker's feature tower reads the history only).
    """

    def __init__(self, model: TwoTowerModel, vocab_of_row: np.ndarray, context: bool = True) -> None:
        self.model, self.vocab_of_row, self.context = model, vocab_of_row, context
        self._traced: dict[tuple, tuple[Callable[..., torch.Tensor], set[int]]] = {}  # layout -> (tower, sizes seen)
        self._demographics = {
            name: {v: i + 1 for i, v in enumerate(vocab.ids.to_list())}
            for name, vocab in model.vocab.user_fields.items()
        }

    def extend(self, n_rows: int, vocab_of_new: np.ndarray | None = None) -> None:
        """Grow the row map after uploads (new rows are unknown to the model unless given)."""
        add = np.zeros(n_rows - len(self.vocab_of_row), dtype=np.int64) if vocab_of_new is None else vocab_of_new
        self.vocab_of_row = np.concatenate([self.vocab_of_row, add])

    def __call__(self, requests: list, histories: list[np.ndarray] | None = None) -> dict[str, torch.Tensor]:
        """Tensors for ``requests`` (:class:`vidrec.request.Request`); ``histories`` override their
        recent completions (rows, most recent last)."""
        cfg, v = self.model.config, self.vocab_of_row
        hist = histories if histories is not None else [r.recent_completed for r in requests]
        out = {
            "user_buckets": hash_ids([r.user_id for r in requests], cfg.user_hash_buckets, cfg.user_hash_functions),
            "history": right_aligned([v[h] for h in hist], cfg.history_len),
        }
        if self.context:
            if cfg.dislike_len:
                out["dislikes"] = right_aligned([v[r.disliked] for r in requests], cfg.dislike_len)
            if cfg.user_demographics:
                fields = list(self._demographics.items())
                out["demographics"] = np.array(
                    [[codes.get(r.profile.get(name), 0) for name, codes in fields] for r in requests], dtype=np.int64
                ).reshape(len(requests), len(fields))
            if cfg.request_context:
                out["hour"], out["dow"] = time_context(np.array([r.now_us for r in requests], dtype=np.int64))
        return {k: torch.from_numpy(np.ascontiguousarray(x)) for k, x in out.items()}

    @torch.no_grad()
    def vectors(self, requests: list, histories: list[np.ndarray] | None = None) -> np.ndarray:
        """float32 (n, d) user vectors of the requests (the tower traced once per input layout:
        a request's few tensors then run without Python per layer)."""
        inputs = self(requests, histories)
        key = tuple(inputs)
        if key not in self._traced:
            self._traced[key] = (_trace(self.model, inputs), {len(requests)})
        traced, sizes = self._traced[key]
        out = traced(*inputs.values())
        if len(requests) not in sizes:  # a new batch size: check the trace once against the eager tower
            eager = _UserTower(self.model, key).eval()
            if not torch.allclose(out, eager(*inputs.values()), atol=1e-6):
                self._traced[key] = (eager, sizes)
                return eager(*inputs.values()).numpy()
            sizes.add(len(requests))
        return out.numpy()


def save_video_embeddings(path: str | Path, video_ids: pl.Series, vectors: np.ndarray) -> Path:
    """Write ``video_id`` and ``embedding`` (fixed-size float32 array) as Parquet."""
    dim = vectors.shape[1]
    frame = pl.DataFrame(
        {
            "video_id": pl.Series(video_ids, dtype=pl.String),
            "embedding": pl.Series(vectors.astype(np.float32), dtype=pl.Array(pl.Float32, dim)),
        }
    )
    frame.write_parquet(path)
    return Path(path)


def load_video_embeddings(path: str | Path) -> tuple[pl.Series, np.ndarray]:
    """Read embeddings written by :func:`save_video_embeddings`: (video_ids, float32 (n, d))."""
    frame = pl.read_parquet(path)
    return frame["video_id"], np.ascontiguousarray(frame["embedding"].to_numpy(), dtype=np.float32)
