"""``vidrec report`` on a tiny simulated platform: one self-contained HTML file with every section."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_platform import small_config, two_audiences
from vidrec.cli import main
from vidrec.data.dataset import read_dataset, write_dataset
from vidrec.data.simulator import SimulatorConfig, simulate
from vidrec.data.splits import SplitConfig, write_split
from vidrec.recommender import Recommender
from vidrec.report import SECTIONS, evaluate, load_inputs, write_report
from vidrec.report.figures import candidate_matrix, funnel, oracle_breakdown, reliability_bins

VOID = {"meta", "img", "br", "hr", "link", "input"}
FIGURES = {"stages": 2, "funnel": 1, "calibration": 1, "reranking": 1, "coverage": 2, "oracle": 1}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated platform (with ground truth), its per-user split and a model trained on it."""
    root = tmp_path_factory.mktemp("report")
    simulate(SimulatorConfig(users=120, videos=100, days=10, seed=0), root / "platform")
    write_split(read_dataset(root / "platform"), root / "split", SplitConfig())
    Recommender.train(read_dataset(root / "split" / "train"), small_config(), log=lambda m: None).save(root / "model")
    return root


class _Page(HTMLParser):
    """Checks that tags nest and close, and collects sections, images and every link-like attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.section: str | None = None
        self.images: dict[str, list[str]] = {}
        self.links: list[str] = []
        self.captions = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "section":
            self.section = values.get("id")
            self.images[self.section or ""] = []
        if tag == "img" and self.section is not None:
            self.images[self.section].append(values.get("src") or "")
        self.captions += tag == "figcaption"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "section":
            self.section = None


def test_report_is_one_self_contained_page(platform: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = platform / "out" / "report.html"
    args = ["report", "--model", str(platform / "model"), "--data", str(platform / "platform"),
            "--split", str(platform / "split"), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = _Page()
    page.feed(text)
    page.close()
    assert page.errors == [] and page.stack == []
    assert list(page.images) == list(SECTIONS)
    assert {key: len(srcs) for key, srcs in page.images.items()} == FIGURES
    assert page.captions == sum(FIGURES.values())
    for src in (s for srcs in page.images.values() for s in srcs):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [link for link in page.links if re.match(r"(https?:)?//", link)]  # nothing to fetch
    assert "http://" not in text and "https://" not in text
    for name in ("most-popular", "EASE", "iALS", "vidrec candidates", "vidrec scored", "vidrec final"):
        assert name in text  # every model in the stage table
    assert str(platform / "model") in text and "generated" in text and "re-ranking" in text


def test_figures_read_one_evaluation(platform: Path) -> None:
    inputs = load_inputs(platform / "model", platform / "platform", platform / "split")
    ev = inputs.evaluation = evaluate(inputs.rec, inputs.data, baselines=False)
    candidates = candidate_matrix(inputs.rec, ev.run, inputs.data)
    assert (candidates[:, :10] == ev.recommendations["vidrec candidates"][:, :10]).all()  # the lists judged
    kept = funnel(candidates, ev.recommendations, inputs.data)
    for shares in kept.series.values():  # the scored and final lists are drawn from the candidates
        assert 0.0 <= shares[2] <= shares[0] <= 1.0 and shares[1] <= shares[0]
    assert inputs.truth is not None
    table = oracle_breakdown(inputs.rec, ev.run, inputs.data, candidates, ev.recommendations, inputs.truth)
    share = dict(zip(table["ten per user from"], table["share of the oracle"]))
    ceiling = share.pop("best ten within the candidates (ceiling)")
    assert all(0.0 < s <= ceiling + 1e-9 for s in share.values()) and ceiling <= 1.0 + 1e-9
    other = ev.recommendations | {"a baseline": ev.recommendations["vidrec final"]}  # any other model, judged alike
    more = oracle_breakdown(inputs.rec, ev.run, inputs.data, candidates, other, inputs.truth)
    assert more["ten per user from"].to_list()[-1] == "a baseline"
    assert more["share of the oracle"][-1] == pytest.approx(share["final slate"])
    path = write_report(inputs, platform / "no-baselines.html")  # the given evaluation is drawn, not redone
    text = path.read_text()
    assert "<td>vidrec final</td>" in text and "<td>iALS</td>" not in text and "baselines were skipped" in text


def test_reliability_bins_are_the_ece_bins() -> None:
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95])
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    rel = reliability_bins(p, y, bins=10)
    assert rel.counts.tolist() == [4, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert rel.observed[0] == pytest.approx(0.25) and rel.observed[9] == pytest.approx(1.0)
    assert rel.ece == pytest.approx((4 * 0.2 + 2 * 0.05) / 6)  # |0.05 - 0.25| and |0.95 - 1| weighted by size
    assert rel.positive_rate == pytest.approx(0.5)


def test_bad_inputs_are_one_readable_error(platform: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r.html")
    cases = {
        "no trained model here": ["--model", str(tmp_path / "missing"), "--data", str(platform / "split")],
        "no such directory": ["--model", str(platform / "model"), "--data", str(tmp_path / "missing")],
        "not a split directory": ["--model", str(platform / "model"), "--data", str(platform / "platform")],
    }
    for message, args in cases.items():
        assert main(["report", *args, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not Path(out).exists()


def test_a_log_without_impressions_or_ground_truth(tmp_path: Path) -> None:
    """MovieLens-like data (watches only) passed as the split itself: no oracle, every other figure."""
    write_dataset(two_audiences(), tmp_path / "data")
    write_split(read_dataset(tmp_path / "data"), tmp_path / "split", SplitConfig())
    Recommender.train(read_dataset(tmp_path / "split" / "train"), small_config(), log=lambda m: None).save(tmp_path / "m")
    out = tmp_path / "r.html"
    assert main(["report", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "split"), "--out", str(out),
                 "--no-baselines"]) == 0  # fmt: skip
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    assert page.errors == [] and list(page.images) == list(SECTIONS)
    assert {key: len(srcs) for key, srcs in page.images.items()} == {**FIGURES, "oracle": 0}
    assert "no ground truth" in out.read_text(encoding="utf-8")
