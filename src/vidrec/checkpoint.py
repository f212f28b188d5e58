"""Checkpoints of training loops: the whole state after the last finished epoch, so an
interrupted ``vidrec train`` resumes where it stopped and ends with the model it would
have trained without the interruption.

One file per loop (and per rank under torchrun), written to a temporary name and renamed,
so a kill during the write leaves the previous checkpoint intact. Each file carries a key
of the loop's inputs (config and data); a checkpoint of other inputs is ignored, never
resumed from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

_log = logging.getLogger(__name__)


def input_key(config: dict[str, Any], *arrays: np.ndarray | torch.Tensor) -> str:
    """A digest of a loop's inputs: the config and the training arrays (shapes and bytes)."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for array in arrays:
        a = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(memoryview(np.ascontiguousarray(a)).cast("B"))  # no copy of a large matrix
    return digest.hexdigest()


class Checkpoint:
    """Where one training loop keeps its state; ``path=None`` keeps nothing (a no-op)."""

    def __init__(self, path: str | Path | None, key: str) -> None:
        self.path = None if path is None else Path(path)
        self.key = key

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it was written for other inputs."""
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            _log.warning("%s is unreadable (%s); training from the start", self.path, exc)
            return None
        if saved.get("key") != self.key:
            _log.warning("%s was written for other data or settings; training from the start", self.path)
            return None
        state = saved["state"]
        loop = state.get("loop")  # the two-tower's loop keeps its own counts
        epochs = getattr(loop, "epoch", None) if loop is not None else state.get("epoch")
        _log.info("resuming from %s (%s epochs done)", self.path, "?" if epochs is None else epochs)
        return saved["state"]

    def save(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint with ``state`` atomically."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"key": self.key, "state": state}, tmp)
        os.replace(tmp, self.path)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A numpy generator's state (restore with :func:`set_rng_state`)."""
    return dict(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Put ``rng`` back where :func:`rng_state` saw it."""
    rng.bit_generator.state = state
