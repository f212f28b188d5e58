"""Progress of long loops: a bar with an ETA on a terminal, and epoch lines that say how long
is left, so a run of hours says where it is without flooding logs that are not a terminal.

The bar (tqdm, on stderr) shows only when stderr is a terminal and the ``vidrec`` logger
shows INFO; ``-q`` hides it. Epoch lines go through the caller's log function.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def bars_enabled() -> bool:
    """Bars only for people watching: INFO logging on and (tqdm decides) a terminal."""
    return logging.getLogger("vidrec").isEnabledFor(logging.INFO)


def bar(items: Iterable[T], total: int | None, desc: str, unit: str = "batch") -> Iterator[T]:
    """``items`` with a progress bar (rate and ETA) while it runs; gone when done."""
    yield from tqdm(
        items, total=total, desc=desc, unit=unit, leave=False, mininterval=1.0,
        disable=None if bars_enabled() else True, dynamic_ncols=True,
    )  # fmt: skip


def peak_memory_gib() -> float:
    """This process's peak resident memory so far, GiB. It only grows, so read after each stage
    of a long job it says which stage set the peak."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # bytes on macOS, KiB on Linux


def minutes(seconds: float) -> str:
    """``seconds`` as a short duration: 45 s, 12.5 min, 3.2 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class EpochClock:
    """Mean epoch time and what is left of a loop of at most ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        self.epochs, self.done, self.spent, self.epoch = epochs, 0, 0.0, 0
        self._t0 = time.perf_counter()

    def start(self) -> None:
        """The next epoch (or round) starts now."""
        self._t0 = time.perf_counter()

    def stop(self, epoch: int) -> float:
        """Seconds of the epoch just finished (``epoch`` counts from 1)."""
        seconds = time.perf_counter() - self._t0
        self.done, self.spent = self.done + 1, self.spent + seconds
        self.epoch = epoch
        return seconds

    def left(self) -> str:
        """'at most N left' at the mean pace (early stopping may end the loop sooner)."""
        remaining = self.epochs - self.epoch
        if remaining <= 0 or not self.done:
            return ""
        return f"  (at most {minutes(remaining * self.spent / self.done)} left)"
