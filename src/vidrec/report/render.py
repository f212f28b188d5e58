"""Draw the report's figures as PNG bytes (matplotlib, Agg backend, imported only here).

Every figure has a title, axis labels with units and a legend placed outside the axes, so
that it never covers a curve or a bar.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vidrec.errors import VidrecError
from vidrec.report.figures import Bars, Lines, Reliability, Tradeoffs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 8.0, 4.2, 110

COLOURS = {
    "most-popular": "#7f7f7f", "EASE": "#1f77b4", "iALS": "#2ca02c", "vidrec candidates": "#ff7f0e",
    "vidrec scored": "#9467bd", "vidrec final": "#d62728", "held out (test)": "#000000",
    "held out (test interactions)": "#000000", "best ten within the candidates (ceiling)": "#bbbbbb",
    "merged candidate order": "#ff7f0e", "scoring stage": "#9467bd", "final slate": "#d62728",
}  # fmt: skip
"""One colour per model in every figure, so that a reader matches them at a glance."""
OTHERS = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#1f77b4", "#ff7f0e")


def colour(name: str, i: int) -> str:
    return COLOURS.get(name, OTHERS[i % len(OTHERS)])


@dataclass(frozen=True)
class Plot:
    """One figure of the report: what it shows (data), how it is labelled and its one-line caption."""

    key: str  # the figure's id in the page
    title: str
    xlabel: str
    ylabel: str
    caption: str
    data: Bars | Lines | Reliability | Tradeoffs
    percent: bool = False  # y (and, for trade-offs, x) values are shares shown as %


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise VidrecError("the report needs matplotlib, which is not installed",
                          "reinstall vidrec (`pip install -e .`): matplotlib is one of its dependencies") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def render(plot: Plot) -> bytes:
    """The figure as PNG bytes."""
    plt = _pyplot()
    data = plot.data
    if isinstance(data, Reliability):
        fig = _reliability(plt, plot, data)
    elif isinstance(data, Tradeoffs):
        fig = _tradeoffs(plt, plot, data)
    else:
        fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT), layout="constrained")
        if isinstance(data, Bars):
            _bars(ax, data, plot.percent)
        else:
            _lines(ax, data)
        _labels(ax, plot)
        _legend(fig, ax)
    fig.suptitle(plot.title)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return out.getvalue()


def _labels(ax: Axes, plot: Plot) -> None:
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.grid(alpha=0.3)
    if plot.percent:
        _percent(ax, "y")


def _percent(ax: Axes, axis: str) -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0))


def _legend(fig: Figure, ax: Axes, columns: int = 3) -> None:
    """The legend below the axes (outside them), only when there is more than one series."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(columns, len(labels)), fontsize=8,
                   frameon=False)  # fmt: skip


def _bars(ax: Axes, data: Bars, percent: bool) -> None:
    n = max(len(data.series), 1)
    width = 0.8 / n
    x = np.arange(len(data.groups))
    for i, (name, values) in enumerate(data.series.items()):
        if n == 1:  # one series over named groups (models): colour each bar as its model
            colours = [colour(g, j) for j, g in enumerate(data.groups)]
            bars = ax.bar(x, values, width, color=colours, label=name)
        else:
            bars = ax.bar(x + (i - (n - 1) / 2) * width, values, width, color=colour(name, i), label=name)
        labels = [f"{v:.0%}" if percent else f"{v:.3f}" for v in values]
        ax.bar_label(bars, labels, fontsize=6 if n > 3 else 7, padding=1, rotation=90 if n > 3 else 0)
    ax.set_xticks(x, [textwrap.fill(g, 16) for g in data.groups], fontsize=8)
    ax.margins(y=0.2)  # head room for the value labels


def _lines(ax: Axes, data: Lines) -> None:
    from matplotlib.ticker import FuncFormatter

    ticks: set[float] = set()
    for i, (name, (x, y)) in enumerate(data.series.items()):
        width = 2.0 if name.startswith("held out") else 1.3
        if data.steps:
            ax.step(x, y, where="post", label=name, color=colour(name, i), linewidth=width)
        else:
            ax.plot(x, y, marker="o", markersize=4, label=name, color=colour(name, i), linewidth=width)
            ticks.update(float(v) for v in x)
    if data.log_x:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if ticks and len(ticks) <= 8:  # points at a few depths: tick exactly those
        ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])


def _reliability(plt: Any, plot: Plot, data: Reliability) -> Figure:
    """Calibration curve above, examples per bin below, on the same equal-width bins."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(WIDTH, HEIGHT * 1.35), layout="constrained", sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})  # fmt: skip
    filled = data.counts > 0
    edges = np.linspace(0.0, 1.0, data.bins + 1)
    top = float(edges[min(int(np.flatnonzero(filled).max(initial=0)) + 1, data.bins)])
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    ax.plot(data.predicted[filled], data.observed[filled], marker="o", markersize=4,
            label=f"vidrec's p_complete (ECE {data.ece:.4f})")  # fmt: skip
    ax.axhline(data.positive_rate, color="tab:green", linewidth=1, linestyle=":",
               label=f"overall completion rate ({data.positive_rate:.1%})")  # fmt: skip
    ax.set_xlim(0, top)
    ax.set_ylim(0, max(top, float(np.nanmax(data.observed[filled], initial=0.0)) * 1.05))
    ax.set_ylabel(plot.ylabel)
    ax.grid(alpha=0.3)
    hist.bar(edges[:-1], data.counts / max(data.counts.sum(), 1), width=1.0 / data.bins, align="edge",
             color="tab:blue", alpha=0.5, edgecolor="white")  # fmt: skip
    hist.set_ylabel("examples (%)")
    _percent(hist, "y")
    hist.set_xlabel(plot.xlabel)
    hist.grid(alpha=0.3)
    _legend(fig, ax)
    return fig


def _tradeoffs(plt: Any, plot: Plot, data: Tradeoffs) -> Figure:
    """NDCG against diversity (left) and against freshness (right), one line per knob's sweep."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH * 1.25, HEIGHT), layout="constrained", sharey=True)
    sweeps = list(dict.fromkeys(p.sweep for p in data.points if p.sweep is not None))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = ((axes[0], "diversity", f"intra-list diversity (1 - mean cosine of {data.diversity_by})"),
              (axes[1], "fresh", f"fresh videos in the slate (%, uploaded < {data.fresh_days:g} days before)"))
    for ax, attr, xlabel in panels:
        for colour, sweep in zip(colours, sweeps):
            pts = [p for p in data.points if p.sweep == sweep]
            xs, ys = [getattr(p, attr) for p in pts], [p.ndcg for p in pts]
            ax.plot(xs, ys, marker="o", markersize=4, color=colour, label=sweep)
            for p, x, y in zip(pts, xs, ys):
                ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7, color=colour)
        for label, marker, colour in (("off", "X", "black"), ("model's settings", "*", "red")):
            for p in (p for p in data.points if p.label == label and p.sweep is None):
                ax.scatter([getattr(p, attr)], [p.ndcg], marker=marker, s=110, color=colour, zorder=5,
                           label=f"{label} (NDCG {p.ndcg:.4f})")  # fmt: skip
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(alpha=0.3)
    _percent(axes[1], "x")
    axes[0].set_ylabel(plot.ylabel)
    _legend(fig, axes[0], columns=5)
    return fig
