"""The benchmark figures: re-ranking trade-off curves and reliability diagrams (PNG, Agg backend).

matplotlib is an optional extra (``pip install vidrec[plots]``): it is imported inside the
functions, and :func:`available` lets a script print its tables and skip the figures when
it is missing. Figures go to ``docs/figures/`` unless a path says otherwise.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def available() -> bool:
    """Whether matplotlib is installed (the figures are skipped, with a note, when not)."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


@dataclass(frozen=True)
class Point:
    """One re-ranking config's result: which sweep it belongs to (None for off/defaults) and its metrics."""

    label: str
    knob: str | None
    value: object
    ndcg: float
    diversity: float
    freshness: float


def tradeoff_curves(
    points: Sequence[Point],
    title: str,
    path: Path,
    diversity_knobs: Sequence[str] = ("mmr", "dpp", "calibration", "fair_min_share", "creator_cap"),
    freshness_knobs: Sequence[str] = ("fresh_boost", "fresh_half_life", "min_fresh"),
) -> Path:
    """Accuracy vs diversity and accuracy vs freshness along each knob's sweep.

    One curve per knob (points in sweep order, labelled with the knob's value); "off"
    (hard rules only) is a black cross and "defaults" a red star on both panels.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = ((axes[0], "diversity", diversity_knobs, "intra-list diversity (1 - mean cosine, two-tower)"),
              (axes[1], "freshness", freshness_knobs, "share of fresh videos (uploaded < 7 days)"))
    for ax, attr, knobs, xlabel in panels:
        for knob in knobs:
            sweep = [p for p in points if p.knob == knob]
            if not sweep:
                continue
            xs = [getattr(p, attr) for p in sweep]
            ys = [p.ndcg for p in sweep]
            (line,) = ax.plot(xs, ys, marker="o", markersize=4, label=knob)
            for p, x, y in zip(sweep, xs, ys):
                ax.annotate(str(p.value), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7,
                            color=line.get_color())
        for label, marker, colour in (("off", "X", "black"), ("defaults", "*", "red")):
            for p in points:
                if p.label == label:
                    ax.scatter([getattr(p, attr)], [p.ndcg], marker=marker, s=140, color=colour, zorder=5,
                               label=f"{label} (NDCG {p.ndcg:.4f})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("NDCG@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


@dataclass(frozen=True)
class Reliability:
    """Predicted probabilities and 0/1 outcomes of one model's head, raw or calibrated."""

    head: str
    label: str
    p: np.ndarray
    y: np.ndarray
    ece: float


def reliability_bins(p: np.ndarray, y: np.ndarray, bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted, observed rate, count) per bin of equal counts (rare events get bins too)."""
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, min(bins, len(p))) if len(c)]
    return (np.array([p[c].mean() for c in chunks]), np.array([y[c].mean() for c in chunks]),
            np.array([len(c) for c in chunks]))


def reliability_diagram(series: Sequence[Reliability], title: str, path: Path, bins: int = 15) -> Path:
    """One panel per head: mean predicted vs observed rate per bin, each series with its ECE."""
    plt = _pyplot()
    heads = list(dict.fromkeys(s.head for s in series))
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads), 4.2), squeeze=False)
    for ax, head in zip(axes[0], heads):
        top = 0.0
        for s in (s for s in series if s.head == head):
            pred, obs, _ = reliability_bins(np.asarray(s.p, float), np.asarray(s.y, float), bins)
            top = max(top, pred.max(initial=0.0), obs.max(initial=0.0))
            ax.plot(pred, obs, marker="o", markersize=3, label=f"{s.label} (ECE {s.ece:.4f})")
        top = min(1.0, top * 1.05) or 1.0
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_title(head)
        ax.set_xlabel(f"mean predicted ({bins} equal-count bins)")
        ax.set_ylabel("observed rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
