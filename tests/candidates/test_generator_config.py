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


def test_every_generator_has_a_registered_type():
    from vidrec.pipeline import GENERATOR_TYPES

    assert set(GENERATOR_TYPES) == set(GENERATORS)
    assert all(GENERATOR_TYPES[name].name == name for name in GENERATORS)


def test_bad_sections_are_rejected():
    with pytest.raises(ValueError, match="cowatch.signal"):
        PipelineConfig.from_dict({"cowatch": {"signal": "liked"}})
    with pytest.raises(ValueError, match="generators"):
        PipelineConfig.from_dict({"candidates": {"generators": ["nearest"]}})
