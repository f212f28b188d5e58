"""Build-time tuning of approximate search: the cheapest parameters that reach a target recall.

Recall@k is measured against exact inner-product search over the same stored vectors, on a
sample of queries; recall grows with ``ef_search`` / ``nprobe``, so a binary search over a
geometric ladder finds the smallest setting that reaches the target in a few trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vidrec.candidates.index.faiss_index import FaissIndex


@dataclass
class TuneReport:
    """What tuning chose and why: the parameters in force and the recall they reached."""

    kind: str
    k: int
    target: float
    n_queries: int
    params: dict[str, int]
    recall: float
    reached: bool
    trials: list[dict[str, Any]] = field(default_factory=list)  # each: params + recall
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneReport:
        return cls(**data)

    def summary(self) -> str:
        status = "reached" if self.reached else "NOT reached (best effort)"
        return (
            f"{self.kind}: {self.params} gives recall@{self.k} {self.recall:.4f} on {self.n_queries} "
            f"queries, target {self.target} {status}; {len(self.trials)} trials in {self.seconds:.1f}s"
        )


def recall_at_k(want: np.ndarray, got: np.ndarray) -> float:
    """Mean share of each row's true top-k (``want``, -1 pads ignored) found in ``got``."""
    n, k = want.shape
    span = np.int64(max(int(want.max(initial=0)), int(got.max(initial=0))) + 2)
    rows = np.arange(n, dtype=np.int64)[:, None] * span
    got_keys = np.sort((rows + got + 1)[got >= 0])
    valid = want >= 0
    keys = (rows + want + 1)[valid]
    pos = np.clip(np.searchsorted(got_keys, keys), 0, max(len(got_keys) - 1, 0))
    hits = np.zeros(want.shape, dtype=bool)
    hits[valid] = got_keys[pos] == keys if len(got_keys) else False
    per_row = hits.sum(1) / np.maximum(valid.sum(1), 1)
    return float(per_row.mean())


def ladder(lo: int, hi: int, step: float = 1.25) -> list[int]:
    """Integers from ``lo`` to ``hi`` growing geometrically (both ends included)."""
    out, x = [], float(lo)
    while x < hi:
        out.append(int(round(x)))
        x = max(x * step, x + 1)
    return sorted(set(out + [hi]))


def _lowest_passing(
    values: list[int],
    measure: Callable[[int], float],
    target: float,
    trials: list[dict[str, Any]],
    name: str,
    extra: dict[str, int] | None = None,
) -> tuple[int, float, bool]:
    """Binary search for the smallest value whose recall reaches ``target`` (recall is monotone)."""
    seen: dict[int, float] = {}

    def at(i: int) -> float:
        if i not in seen:
            seen[i] = measure(values[i])
            trials.append({**(extra or {}), name: values[i], "recall": seen[i]})
        return seen[i]

    lo, hi = 0, len(values) - 1
    if at(hi) < target:
        return values[hi], seen[hi], False
    while lo < hi:
        mid = (lo + hi) // 2
        if at(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return values[lo], at(lo), True


def tune(index: FaissIndex, queries: np.ndarray, k: int, target: float) -> TuneReport:
    """Choose ``index.params`` reaching ``target`` recall@k on ``queries``; returns the report."""
    start = time.perf_counter()
    k = min(k, len(index))
    _, want = index.exact_raw(queries, k)
    trials: list[dict[str, Any]] = []

    def measure(params: dict[str, int]) -> float:
        return recall_at_k(want, index.raw_search(queries, k, params=params)[1])

    if index.kind == "hnsw":
        values = ladder(max(1, k // 2), max(16 * k, 1024))
        ef, recall, reached = _lowest_passing(values, lambda v: measure({"ef_search": v}), target, trials, "ef_search")
        params = {"ef_search": ef}
    elif index.kind == "ivfpq":
        nlist = index.nlist
        base = index.config.rescore_factor
        for k_factor in (base, 2 * base, 4 * base):
            found = _lowest_passing(
                ladder(1, nlist),
                lambda v, f=k_factor: measure({"nprobe": v, "k_factor": f}),
                target,
                trials,
                "nprobe",
                {"k_factor": k_factor},
            )
            nprobe, recall, reached = found
            params = {"nprobe": nprobe, "k_factor": k_factor}
            if reached:
                break
    else:
        params, recall, reached = {}, 1.0, True
    index.params = params
    return TuneReport(
        index.kind or "flat", k, target, len(queries), params, recall, reached, trials, time.perf_counter() - start
    )
