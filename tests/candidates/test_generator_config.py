"""The new generators are switchable and configurable through PipelineConfig."""

import pytest

from vidrec.candidates.cowatch import CoWatchConfig
from vidrec.candidates.demographic import DemographicConfig
from vidrec.config import GENERATORS, PipelineConfig


def test_sections_round_trip_through_dict():
    cfg = PipelineConfig.from_dict(
        {
            "candidates": {"generators": ["cowatch", "demographic"], "quotas": {"demographic": 5}},
            "cowatch": {"normalisation": "lift", "history": 7},
            "demographic": {"group_by": ["country"], "max_history": None},
        }
    )
    assert cfg.cowatch == CoWatchConfig(normalisation="lift", history=7)
    assert cfg.demographic == DemographicConfig(group_by=("country",), max_history=None)
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg


def test_one_registry_serves_the_config_and_the_pipeline():
    from vidrec.candidates.registry import GENERATORS as REGISTRY

    assert set(REGISTRY) == set(GENERATORS)
    assert all(REGISTRY[name].kind.name == name for name in GENERATORS)
    config = PipelineConfig()
    for name, entry in REGISTRY.items():
        section = getattr(config, name)  # every entry is a config section of the same name
        assert isinstance(section, entry.config)
        assert entry.parse(entry.dump(section)) == section
        assert entry.build(section, config.index, lambda m: None).name == name


def test_bad_sections_are_rejected():
    with pytest.raises(ValueError, match="cowatch.signal"):
        PipelineConfig.from_dict({"cowatch": {"signal": "liked"}})
    with pytest.raises(ValueError, match="generators"):
        PipelineConfig.from_dict({"candidates": {"generators": ["nearest"]}})
