"""ReRankConfig: defaults, validation with readable errors, JSON round trip."""

from __future__ import annotations

import json

import pytest

from vidrec.reranking import ReRankConfig


def test_defaults_match_the_documented_values() -> None:
    cfg = ReRankConfig()
    assert (cfg.fresh_boost, cfg.fresh_half_life_days) == (0.2, 7.0)
    assert (cfg.creator_cap, cfg.creator_window, cfg.creator_backfill) == (3, 10, True)
    assert (cfg.diversity, cfg.diversity_weight, cfg.min_fresh, cfg.fresh_days) == ("dpp", 0.02, 1, 7.0)
    assert cfg.greedy_pool == 100
    assert (cfg.calibration_weight, cfg.fair_min_share, cfg.rewatch_after_days) == (0.0, 0.0, None)
    assert (cfg.fatigue_filter_days, cfg.fatigue_recover_days, cfg.fatigue_floor) == (14.0, 140.0, 0.2)
    assert (cfg.fatigue_prior_dislikes, cfg.fatigue_prior_completions) == (0.5, 2.0)
    assert (cfg.fatigue_hide_share, cfg.fatigue_hide_confidence) == (0.5, 0.9)


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
        ({"fatigue_prior_dislikes": 0.0}, "fatigue_prior_dislikes"),
        ({"fatigue_prior_completions": float("inf")}, "fatigue_prior_completions"),
        ({"fatigue_hide_share": 1.0}, "fatigue_hide_share"),
        ({"fatigue_hide_confidence": 1.5}, "fatigue_hide_confidence"),
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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"diversity": "xquad"}, "diversity"),
        ({"diversity_weight": 1.0}, "diversity_weight"),
        ({"calibration_weight": 1.5}, "calibration_weight"),
        ({"calibration_alpha": 0.0}, "calibration_alpha"),
        ({"min_fresh": -1}, "min_fresh"),
        ({"min_fresh": 1.5}, "min_fresh"),
        ({"fair_min_share": -0.1}, "fair_min_share"),
        ({"fatigue_floor": 2.0}, "fatigue_floor"),
        ({"fatigue_filter_days": float("nan")}, "fatigue_filter_days"),
        ({"rewatch_after_days": -1.0}, "rewatch_after_days"),
        ({"rewatch_categories": [3]}, "rewatch_categories"),
        ({"greedy_pool": 0}, "greedy_pool"),
    ],
)
def test_new_knobs_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReRankConfig(**kwargs)


def test_a_config_saved_before_the_new_knobs_still_loads(tmp_path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"creator_backfill": True, "creator_cap": 2, "creator_window": 10,
                                "fresh_boost": 0.2, "fresh_half_life_days": 7.0}))
    assert ReRankConfig.load(path) == ReRankConfig(creator_cap=2)  # the saved value wins, the rest default


def test_new_knobs_round_trip_through_json(tmp_path) -> None:
    cfg = ReRankConfig(diversity="dpp", rewatch_after_days=30.0, rewatch_categories=["music"], min_fresh=2)
    assert cfg.rewatch_categories == ("music",)
    assert ReRankConfig.load(cfg.save(tmp_path / "c.json")) == cfg
