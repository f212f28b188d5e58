"""The whole system's configuration: one typed section per stage, loadable from TOML."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vidrec.candidates.index import IndexConfig
from vidrec.candidates.merge import DEFAULT_QUOTAS
from vidrec.candidates.registry import GENERATORS as REGISTRY
from vidrec.config_check import check_section, unknown_key
from vidrec.errors import VidrecError
from vidrec.reranking.config import ReRankConfig
from vidrec.scoring.config import RankerConfig

GENERATORS = tuple(REGISTRY)
"""Every generator the pipeline knows; each has a config section of the same name."""
RANKERS = ("multitask",)
"""Scoring models the pipeline can build (``ranker_kind``)."""
RERANKERS = ("default",)
"""Re-rankers the pipeline can build (``reranker_kind``)."""


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


def _default_sections() -> dict[str, Any]:
    return {name: entry.config() for name, entry in REGISTRY.items()}


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's settings; the resolved copy is saved with each trained model.

    Each generator's section (``two_tower``, ``cowatch``, ...) is read as an attribute of
    the same name (``config.cowatch``); :data:`GENERATORS` lists them.
    """

    candidates: CandidatesConfig = field(default_factory=CandidatesConfig)
    sections: dict[str, Any] = field(default_factory=_default_sections)  # generator name -> its config
    index: IndexConfig = field(default_factory=IndexConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    rerank: ReRankConfig = field(default_factory=ReRankConfig)
    ranker_kind: str = "multitask"  # which scoring model (RANKERS)
    reranker_kind: str = "default"  # which re-ranker (RERANKERS)
    history_len: int = 50  # recent completed videos kept in the user state
    ranker_period: float = 0.3  # share of the training period (by time) the ranker learns from
    # The ranker's embedding features come from a two-tower trained only on events before that
    # period, so no training example's features have seen the example itself.

    def __post_init__(self) -> None:
        unknown = set(self.sections) - set(REGISTRY)
        if unknown:
            raise ValueError(f"unknown generator section(s) {sorted(unknown)}; expected some of {GENERATORS}")
        object.__setattr__(self, "sections", {**_default_sections(), **self.sections})
        if not 0.0 < self.ranker_period < 1.0:
            raise ValueError(f"ranker_period must be between 0 and 1, got {self.ranker_period}")
        if self.history_len < 1:
            raise ValueError("history_len must be at least 1")
        if self.ranker_kind not in RANKERS:
            raise ValueError(f"ranker_kind must be one of {RANKERS}, got {self.ranker_kind!r}")
        if self.reranker_kind not in RERANKERS:
            raise ValueError(f"reranker_kind must be one of {RERANKERS}, got {self.reranker_kind!r}")

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no setting {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every setting."""
        return {
            "candidates": asdict(self.candidates),
            **{name: REGISTRY[name].dump(section) for name, section in self.sections.items()},
            "index": asdict(self.index),
            "ranker": self.ranker.to_dict(),
            "rerank": self.rerank.to_dict(),
            "ranker_kind": self.ranker_kind,
            "reranker_kind": self.reranker_kind,
            "history_len": self.history_len,
            "ranker_period": self.ranker_period,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        """Build from a (possibly partial) dict; missing settings take their defaults."""
        known = {"candidates", "index", "ranker", "rerank", "ranker_kind", "reranker_kind", "history_len",
                 "ranker_period", *REGISTRY}  # fmt: skip
        sections = {"candidates": CandidatesConfig, "index": IndexConfig, "ranker": RankerConfig,
                    "rerank": ReRankConfig} | {name: entry.config for name, entry in REGISTRY.items()}  # fmt: skip
        for key in data:
            if key not in known:
                owners = [name for name, c in sections.items() if key in {f.name for f in fields(c)}]
                if owners:
                    raise ValueError(f"{key!r} is a setting of [{'] and ['.join(owners)}]: put it in that section")
                raise ValueError(unknown_key("config", key, sorted(known)))
        for key, cls_ in sections.items():
            if key in data:
                check_section(key, cls_, data[key])
        check_section("config", cls, {k: v for k, v in data.items() if k not in sections})
        kw: dict[str, Any] = {}
        if "candidates" in data:
            c = dict(data["candidates"])
            if "generators" in c:
                c["generators"] = tuple(c["generators"])
            kw["candidates"] = CandidatesConfig(**c)
        kw["sections"] = {name: REGISTRY[name].parse(data[name]) for name in REGISTRY if name in data}
        if "index" in data:
            kw["index"] = IndexConfig(**data["index"])
        if "ranker" in data:
            kw["ranker"] = RankerConfig.from_dict(data["ranker"])
        if "rerank" in data:
            kw["rerank"] = ReRankConfig.from_dict(data["rerank"])
        for key in ("history_len", "ranker_period", "ranker_kind", "reranker_kind"):
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
