"""ReRankConfig: defaults, validation with readable errors, JSON round trip."""

from __future__ import annotations

import json

import pytest

from vidrec.reranking import ReRankConfig


def test_defaults_match_the_documented_values() -> None:
    cfg = ReRankConfig()
    assert (cfg.fresh_boost, cfg.fresh_half_life_days) == (0.2, 7.0)
    assert (cfg.creator_cap, cfg.creator_window, cfg.creator_backfill) == (2, 10, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fresh_boost": -0.1}, "fresh_boost"),
        ({"fresh_boost": float("nan")}, "fresh_boost"),
        ({"fresh_half_life_days": 0.0}, "fresh_half_life_days"),
        ({"fresh_half_life_days": float("inf")}, "fresh_half_life_days"),
        ({"creator_window": 0}, "creator_window"),
        ({"creator_window": 2.5}, "creator_window"),
        ({"creator_cap": 0}, "creator_cap"),
        ({"creator_cap": 11}, "creator_cap"),
        ({"creator_cap": True}, "creator_cap"),
        ({"creator_backfill": "yes"}, "creator_backfill"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReRankConfig(**kwargs)


def test_cap_can_be_turned_off() -> None:
    assert ReRankConfig(creator_cap=None).creator_cap is None


def test_save_and_load_round_trip(tmp_path) -> None:
    cfg = ReRankConfig(fresh_boost=0.35, fresh_half_life_days=3.0, creator_cap=None, creator_window=5)
    path = cfg.save(tmp_path / "run" / "rerank.json")
    assert json.loads(path.read_text())["fresh_boost"] == 0.35
    assert ReRankConfig.load(path) == cfg


def test_load_names_the_file_and_the_unknown_key(tmp_path) -> None:
    path = tmp_path / "rerank.json"
    path.write_text(json.dumps({"fresh_boost": 0.1, "fresh_halflife": 3}))
    with pytest.raises(ValueError, match=r"rerank\.json.*'fresh_halflife'"):
        ReRankConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"rerank\.json"):
        ReRankConfig.load(path)
    path.write_text(json.dumps({"creator_cap": 0}))
    with pytest.raises(ValueError, match=r"rerank\.json: creator_cap"):
        ReRankConfig.load(path)
