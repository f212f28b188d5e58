"""Every candidate generator the system knows, in one place: its class, its config section, how to build it.

The config (:class:`vidrec.config.PipelineConfig` reads and writes each generator's section
under its name) and the pipeline (which builds, fits, saves and loads the generators named
in ``candidates.generators``) both read :data:`GENERATORS`, so adding a generator is its
module and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from vidrec.candidates.base import CandidateGenerator
from vidrec.candidates.cowatch import CoWatchConfig, CoWatchGenerator
from vidrec.candidates.creators import CreatorsConfig, CreatorsGenerator
from vidrec.candidates.demographic import DemographicConfig, DemographicGenerator
from vidrec.candidates.ease import EaseConfig, EaseGenerator
from vidrec.candidates.fresh import FreshConfig, FreshGenerator
from vidrec.candidates.generators import TrendingConfig, TrendingGenerator, TwoTowerGenerator
from vidrec.candidates.index import IndexConfig
from vidrec.candidates.two_tower.config import TwoTowerConfig

Logger = Callable[[str], None]


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    """TOML/JSON lists back to the tuples the frozen config sections hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


@dataclass(frozen=True)
class GeneratorEntry:
    """A generator type and its config section: defaults, parsing, writing, and construction."""

    kind: type[CandidateGenerator]
    config: type
    build: Callable[[Any, IndexConfig, Logger], CandidateGenerator]

    def parse(self, values: dict[str, Any]) -> Any:
        from_dict = getattr(self.config, "from_dict", None)
        return from_dict(values) if from_dict is not None else self.config(**_tuples(dict(values)))

    def dump(self, section: Any) -> dict[str, Any]:
        to_dict = getattr(section, "to_dict", None)
        return to_dict() if to_dict is not None else asdict(section)


GENERATORS: dict[str, GeneratorEntry] = {
    "two_tower": GeneratorEntry(TwoTowerGenerator, TwoTowerConfig,
                                lambda cfg, index, log: TwoTowerGenerator(cfg, index, log=log)),
    "trending": GeneratorEntry(TrendingGenerator, TrendingConfig, lambda cfg, index, log: TrendingGenerator(cfg)),
    "cowatch": GeneratorEntry(CoWatchGenerator, CoWatchConfig, lambda cfg, index, log: CoWatchGenerator(cfg)),
    "ease": GeneratorEntry(EaseGenerator, EaseConfig, lambda cfg, index, log: EaseGenerator(cfg)),
    "fresh": GeneratorEntry(FreshGenerator, FreshConfig, lambda cfg, index, log: FreshGenerator(cfg)),
    "creators": GeneratorEntry(CreatorsGenerator, CreatorsConfig, lambda cfg, index, log: CreatorsGenerator(cfg)),
    "demographic": GeneratorEntry(DemographicGenerator, DemographicConfig,
                                  lambda cfg, index, log: DemographicGenerator(cfg)),
}  # fmt: skip
"""Generator name -> entry; the name is also the config section and the ``source`` of its candidates."""
