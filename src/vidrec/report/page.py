"""Assemble the report: every section's figures and tables in one self-contained HTML file.

Images are inline PNGs (``data:`` URIs) and the style sheet is inline, so the file opens on a
machine without a network and can be mailed as it is.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from vidrec import __version__
from vidrec.report import figures
from vidrec.report.inputs import Evaluation, ReportInputs, evaluate
from vidrec.report.render import Plot, render

log = logging.getLogger(__name__)

SECTIONS = ("stages", "funnel", "calibration", "reranking", "coverage", "oracle")
"""Every report has these sections, in this order (``oracle`` says so when there is no ground truth)."""


@dataclass
class Section:
    """One part of the page: a heading, a line saying what it is for, its figures and an optional table."""

    key: str
    heading: str
    intro: str
    plots: list[Plot] = field(default_factory=list)
    table: pl.DataFrame | None = None


def _timed(name: str, make: Callable[[], Section]) -> Section:
    start = time.perf_counter()
    section = make()
    log.info("report section %s: %.1f s", name, time.perf_counter() - start)
    return section


def stages_section(ev: Evaluation) -> Section:
    table, k = ev.table, ev.run.final_k
    best = table.sort(f"final_ndcg@{k}", descending=True, nulls_last=True)["model"][0]
    bars = Plot("stages", f"Final top-{k} quality of each model on the test split", "metric", "value (0-1)",
                f"NDCG, recall and precision@{k} against the test videos each user completed; best NDCG@{k}: {best}.",
                figures.final_metric_bars(table, k))  # fmt: skip
    lines = Plot("candidate-recall", "Candidate recall by list depth", "list depth k (videos, log scale)",
                 "recall@k (%)", "Share of each user's test interactions within the first k of the list: vidrec's "
                 "merged candidates beside the baselines' rankings.", figures.candidate_recall_lines(table),
                 percent=True)  # fmt: skip
    shown = table.select([c for c in table.columns if c.startswith(("model", "cand_", "final_", "n_"))])
    with_baselines = bool(table["model"].str.starts_with("vidrec").not_().any())
    intro = ("vidrec's candidates, scored list and final slate judged with the baselines (most-popular, iALS, EASE) "
             "by the same full-ranking protocol as `vidrec evaluate`.")  # fmt: skip
    if not with_baselines:
        intro += " The baselines were skipped (--no-baselines): vidrec's stages only."
    return Section("stages", "Each stage beside the baselines", intro, [bars, lines], shown)


def funnel_section(inputs: ReportInputs, ev: Evaluation, candidates: np.ndarray) -> Section:
    data = figures.funnel(candidates, ev.recommendations, inputs.data, ev.run.final_k)
    kept = data.series["completed in test"]
    plot = Plot("funnel", "Held-out videos kept at each stage", "stage", "held-out videos found (%)",
                f"Share of the test videos (interacted or completed) each stage still holds: {kept[0]:.0%} of the "
                f"completed ones are among the candidates, {kept[-1]:.0%} in the final slate.", data,
                percent=True)  # fmt: skip
    return Section("funnel", "From candidates to the slate", "How many of the videos users went on to watch survive "
                   "each stage, for the users judged above.", [plot])  # fmt: skip


def calibration_section(inputs: ReportInputs) -> Section:
    rel = figures.reliability(inputs.rec, inputs.data, inputs.test_events)
    n = int(rel.counts.sum())
    plot = Plot("calibration", f"Reliability of p_complete on held-out examples ({rel.bins} equal-width bins)",
                f"predicted p_complete (mean of each of {rel.bins} equal-width bins)",
                "observed completion rate (0-1)",
                f"{n:,} test-period examples (shown, then completed >= 80% or not), scored as served at the end of "
                f"training; points on the dashed line are calibrated; ECE {rel.ece:.4f} over the same bins.",
                rel)  # fmt: skip
    return Section("calibration", "Calibration of p_complete", "Whether the ranker's probability means what it says "
                   "on videos shown after training ended.", [plot])  # fmt: skip


def reranking_section(inputs: ReportInputs, ev: Evaluation) -> Section:
    data = figures.tradeoffs(inputs.rec, ev.run, inputs.data)
    plot = Plot("reranking", f"Re-ranking trade-offs ({data.users:,} users, the same scored candidates)",
                "", f"NDCG@{ev.run.final_k}",
                "Each knob moved alone from the model's re-ranking settings: accuracy against intra-list diversity "
                "(left) and against the share of fresh uploads (right); labels give the knob's value.", data)
    table = pl.DataFrame([{"knob": p.sweep or "-", "value": p.label, f"NDCG@{ev.run.final_k}": p.ndcg,
                           "diversity": p.diversity, "fresh share": p.fresh} for p in data.points])  # fmt: skip
    return Section("reranking", "Re-ranking trade-offs", "What diversity and freshness cost in accuracy, re-ranking "
                   "the candidates the ranker scored once.", [plot], table)  # fmt: skip


def coverage_section(inputs: ReportInputs, ev: Evaluation) -> Section:
    k, data = ev.run.final_k, inputs.data
    cov = figures.coverage(ev.recommendations, data, k)
    pop, medians = figures.popularity(ev.recommendations, data, k)
    final = figures.STAGE_NAMES["final"]
    cov_plot = Plot("coverage", f"Catalogue coverage of the top {k}", "model", "catalogue videos recommended (%)",
                    f"Share of the {len(data.videos):,} catalogue videos in at least one judged user's top {k}; "
                    "'held out' is the share the test users went on to watch.", cov, percent=True)  # fmt: skip
    pop_plot = Plot("popularity", f"Popularity of what is recommended (top {k}) and of what was held out",
                    "training interactions of the video + 1 (users, log scale)", "share of videos at or below (%)",
                    f"Distribution of the training popularity of recommended and held-out videos; median {final}: "
                    f"{medians.get(final, float('nan')):.0f}, held out: "
                    f"{medians.get('held out (test interactions)', float('nan')):.0f} users.", pop,
                    percent=True)  # fmt: skip
    return Section("coverage", "Coverage and popularity", "How much of the catalogue each model shows, and whether it "
                   "leans on popular videos more than users do.", [cov_plot, pop_plot])  # fmt: skip


def oracle_section(inputs: ReportInputs, ev: Evaluation, candidates: np.ndarray) -> Section:
    if inputs.truth is None:
        return Section("oracle", "Against the simulator's oracle", "Not available: the data has no ground truth "
                       "(only a platform made by `vidrec simulate` has one; pass it as --data).")  # fmt: skip
    table = figures.oracle_breakdown(inputs.rec, ev.run, inputs.data, candidates, ev.recommendations, inputs.truth,
                                     ev.run.final_k)  # fmt: skip
    shares = figures.Bars(table["ten per user from"].to_list(), {"share of the oracle": table["share of the oracle"]
                                                                 .to_list()})  # fmt: skip
    plot = Plot("oracle", "Expected completions against the oracle, stage by stage", "ten per user from",
                "share of the oracle's expected completions (%)",
                "The simulator's true P(complete) summed over each stage's ten, over the oracle's best ten "
                f"(ratio of totals, {len(ev.run.results):,} users, at the model's clock).", shares,
                percent=True)  # fmt: skip
    return Section("oracle", "Against the simulator's oracle", "Where expected completions are lost, judged by the "
                   "simulator's ground truth rather than by the logged test events.", [plot], table)  # fmt: skip


def build_sections(inputs: ReportInputs) -> list[Section]:
    """Every section's figures and tables (evaluating the model first unless ``inputs`` carries it)."""
    if inputs.evaluation is None:
        inputs.evaluation = evaluate(inputs.rec, inputs.data)
    ev = inputs.evaluation
    candidates = figures.candidate_matrix(inputs.rec, ev.run, inputs.data)  # whole lists: the funnel and the oracle
    makers: dict[str, Callable[[], Section]] = {
        "stages": lambda: stages_section(ev),
        "funnel": lambda: funnel_section(inputs, ev, candidates),
        "calibration": lambda: calibration_section(inputs),
        "reranking": lambda: reranking_section(inputs, ev),
        "coverage": lambda: coverage_section(inputs, ev),
        "oracle": lambda: oracle_section(inputs, ev, candidates),
    }
    return [_timed(key, makers[key]) for key in SECTIONS]


def write_report(inputs: ReportInputs, out: str | Path) -> Path:
    """Write the report of ``inputs`` to ``out`` (one HTML file) and return its path."""
    start = time.perf_counter()
    sections = build_sections(inputs)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(inputs, sections), encoding="utf-8")
    log.info("wrote the report %s in %.1f s", path, time.perf_counter() - start)
    return path


# ---- HTML -------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9rem; color: #444; } dl { display: grid; grid-template-columns: max-content 1fr; }
dt { font-weight: 600; padding-right: 1rem; } dd { margin: 0; } pre { font-size: 0.75rem; overflow-x: auto; }
"""


def page(inputs: ReportInputs, sections: list[Section]) -> str:
    """The whole HTML document."""
    body = [_header(inputs)]
    body += [_section(s) for s in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>vidrec report: {html.escape(inputs.model_path.name)}</title>\n<style>{STYLE}</style>\n</head>\n"
            "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")  # fmt: skip


def config_summary(inputs: ReportInputs) -> dict[str, str]:
    """The settings that shape the results most, one line per stage."""
    c = inputs.rec.pipeline.config
    gens = ", ".join(g.name for g in inputs.rec.pipeline.generators)
    tt, rk, rr = c.two_tower, c.ranker, c.rerank
    return {
        "candidates": f"{gens}; {c.candidates.per_generator} per generator, {c.candidates.target} merged",
        "two-tower": f"{tt.embedding_dim}-d, {tt.objective}, {tt.epochs} epochs, index {c.index.kind}",
        "scoring": f"{c.ranker_kind} ({rk.architecture}, {rk.ensemble} averaged, {rk.calibration} calibration), "
                   f"trained on the last {c.ranker_period:.0%} of the training period",
        "re-ranking": f"{c.reranker_kind}: diversity {rr.diversity} {rr.diversity_weight:g}, creator cap "
                      f"{rr.creator_cap}, fresh boost {rr.fresh_boost:g}, fresh minimum {rr.min_fresh}",
    }  # fmt: skip


def _header(inputs: ReportInputs) -> str:
    rec, summary = inputs.rec, inputs.data.summary()
    rows = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC") + f" by vidrec {__version__}",
        "model": f"{inputs.model_path} (trained until {rec.trained_until:%Y-%m-%d %H:%M} UTC)",
        **{k: v for k, v in inputs.sources.items() if k != "model"},
        "data": f"{summary['users']:,} users with training history, {summary['videos']:,} videos; test: "
                f"{summary['candidate_pairs']:,} interacted and {summary['final_pairs']:,} completed pairs of "
                f"{summary['candidate_users']:,} users",
        **config_summary(inputs),
    }  # fmt: skip
    items = "\n".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows.items())
    full = html.escape(json.dumps(rec.pipeline.config.to_dict(), indent=1, default=str))
    return (f"<header>\n<h1>vidrec report</h1>\n<dl>\n{items}\n</dl>\n"
            f"<details><summary>resolved configuration</summary><pre>{full}</pre></details>\n</header>")  # fmt: skip


def _section(s: Section) -> str:
    parts = [f'<section id="{s.key}">', f"<h2>{html.escape(s.heading)}</h2>", f"<p>{html.escape(s.intro)}</p>"]
    for plot in s.plots:
        start = time.perf_counter()
        png = base64.b64encode(render(plot)).decode("ascii")
        log.debug("figure %s drawn in %.2f s", plot.key, time.perf_counter() - start)
        parts.append(f'<figure id="fig-{plot.key}"><img alt="{html.escape(plot.title)}" '
                     f'src="data:image/png;base64,{png}">\n<figcaption>{html.escape(plot.caption)}</figcaption>'
                     "</figure>")  # fmt: skip
    if s.table is not None:
        parts.append(_table(s.table))
    parts.append("</section>")
    return "\n".join(parts)


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = ["<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in frame.iter_rows()]
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
