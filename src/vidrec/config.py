"""The whole system's configuration: one typed section per stage, loadable from TOML."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vidrec.candidates.cowatch import CoWatchConfig
from vidrec.candidates.creators import CreatorsConfig
from vidrec.candidates.demographic import DemographicConfig
from vidrec.candidates.fresh import FreshConfig
from vidrec.candidates.generators import TrendingConfig
from vidrec.candidates.merge import DEFAULT_QUOTAS
from vidrec.candidates.index import IndexConfig
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.errors import VidrecError
from vidrec.reranking.config import ReRankConfig
from vidrec.scoring.config import RankerConfig

GENERATORS = ("two_tower", "trending", "cowatch", "fresh", "creators", "demographic")
"""Every generator the pipeline knows; each has a config section of the same name."""


@dataclass(frozen=True)
class CandidatesConfig:
    """Which generators run, how many each nominates, and the merged list size."""

    # Merge priority follows this order; chosen on ML-100K's validation carve (notes/generators.md).
    generators: tuple[str, ...] = ("two_tower", "cowatch", "trending")
    per_generator: int = 300  # candidates each generator nominates per user
    target: int = 300  # merged candidates per user handed to scoring
    quotas: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))

    def __post_init__(self) -> None:
        unknown = set(self.generators) - set(GENERATORS)
        if unknown or not self.generators:
            raise ValueError(
                f"candidates.generators must be a non-empty subset of {GENERATORS}, got {self.generators}"
            )
        if self.per_generator < 1 or self.target < 1:
            raise ValueError("candidates.per_generator and candidates.target must be at least 1")


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's settings; the resolved copy is saved with each trained model."""

    candidates: CandidatesConfig = field(default_factory=CandidatesConfig)
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    trending: TrendingConfig = field(default_factory=TrendingConfig)
    cowatch: CoWatchConfig = field(default_factory=CoWatchConfig)
    fresh: FreshConfig = field(default_factory=FreshConfig)
    creators: CreatorsConfig = field(default_factory=CreatorsConfig)
    demographic: DemographicConfig = field(default_factory=DemographicConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    rerank: ReRankConfig = field(default_factory=ReRankConfig)
    history_len: int = 50  # recent completed videos kept in the user state
    ranker_period: float = 0.3  # share of the training period (by time) the ranker learns from
    # The ranker's embedding features come from a two-tower trained only on events before that
    # period, so no training example's features have seen the example itself.

    def __post_init__(self) -> None:
        if not 0.0 < self.ranker_period < 1.0:
            raise ValueError(f"ranker_period must be between 0 and 1, got {self.ranker_period}")
        if self.history_len < 1:
            raise ValueError("history_len must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every setting."""
        return {
            "candidates": asdict(self.candidates),
            "two_tower": self.two_tower.to_dict(),
            "index": asdict(self.index),
            "trending": asdict(self.trending),
            **{name: asdict(getattr(self, name)) for name in _GENERATOR_SECTIONS},
            "ranker": self.ranker.to_dict(),
            "rerank": self.rerank.to_dict(),
            "history_len": self.history_len,
            "ranker_period": self.ranker_period,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        """Build from a (possibly partial) dict; missing settings take their defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; expected {sorted(known)}")
        kw: dict[str, Any] = {}
        if "candidates" in data:
            c = dict(data["candidates"])
            if "generators" in c:
                c["generators"] = tuple(c["generators"])
            kw["candidates"] = CandidatesConfig(**c)
        if "two_tower" in data:
            kw["two_tower"] = TwoTowerConfig.from_dict(data["two_tower"])
        if "index" in data:
            kw["index"] = IndexConfig(**data["index"])
        if "trending" in data:
            kw["trending"] = TrendingConfig(**data["trending"])
        for name, section in _GENERATOR_SECTIONS.items():
            if name in data:
                kw[name] = section(**_tuples(dict(data[name])))
        if "ranker" in data:
            kw["ranker"] = RankerConfig.from_dict(data["ranker"])
        if "rerank" in data:
            kw["rerank"] = ReRankConfig.from_dict(data["rerank"])
        for key in ("history_len", "ranker_period"):
            if key in data:
                kw[key] = data[key]
        return cls(**kw)

    def save(self, path: str | Path) -> None:
        """Write the resolved config as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str))


_GENERATOR_SECTIONS: dict[str, type] = {
    "cowatch": CoWatchConfig,
    "fresh": FreshConfig,
    "creators": CreatorsConfig,
    "demographic": DemographicConfig,
}


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    """TOML/JSON lists back to the tuples the frozen config sections hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


def load_config(path: str | Path | None) -> PipelineConfig:
    """Read a TOML (or JSON) config file; ``None`` gives the defaults."""
    if path is None:
        return PipelineConfig()
    p = Path(path)
    if not p.is_file():
        raise VidrecError(f"{p}: config file not found", "pass an existing TOML file to --config")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
        return PipelineConfig.from_dict(data)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise VidrecError(f"{p}: not valid TOML/JSON ({exc})", "fix the syntax at that position") from None
    except (TypeError, ValueError) as exc:
        raise VidrecError(f"{p}: {exc}", "see the configuration section of the README") from None
