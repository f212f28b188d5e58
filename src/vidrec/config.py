"""The whole system's configuration: one typed section per stage, loadable from TOML."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vidrec.candidates.generators import TrendingConfig
from vidrec.candidates.index import IndexConfig
from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.errors import VidrecError
from vidrec.reranking.config import ReRankConfig
from vidrec.scoring.config import RankerConfig

GENERATORS = ("two_tower", "trending")


@dataclass(frozen=True)
class CandidatesConfig:
    """Which generators run, how many each nominates, and the merged list size."""

    generators: tuple[str, ...] = GENERATORS
    per_generator: int = 300  # candidates each generator nominates per user
    target: int = 300  # merged candidates per user handed to scoring
    quotas: dict[str, int] = field(default_factory=lambda: {"trending": 100})

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
