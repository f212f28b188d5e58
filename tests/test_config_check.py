"""A config mistake is one line naming the section, key, value and what was expected, before any work."""

from __future__ import annotations

import pytest

from vidrec.config import PipelineConfig, load_config
from vidrec.errors import VidrecError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[two_tower]\nembedding_dim = 32.5\n", "[two_tower] embedding_dim = 32.5: expected an integer (default 64)"),
        ('[two_tower]\ndeterministic = "yes"\n', "[two_tower] deterministic = 'yes': expected true or false"),
        ("[two_tower]\nembeding_dim = 32\n", "[two_tower] has no setting 'embeding_dim'; did you mean 'embedding_dim'?"),
        ("[ranker]\nhidden = 128\n", "[ranker] hidden = 128: expected a list (default [128, 64])"),
        ("hidden = [128]\n", "'hidden' is a setting of [ranker]: put it in that section"),
        ("[ranker.examples]\ntreshold = 0.7\n", "[ranker.examples] has no setting 'treshold'; did you mean 'threshold'?"),
        ('ranker_period = "a"\n', "[config] ranker_period = 'a': expected a number (default 0.3)"),
        ("[rerank]\ncreator_cap = true\n", "[rerank] creator_cap = True: expected an integer"),
        ("[index]\nkind = 3\n", "[index] kind = 3: expected a string"),
        ("zzz = 1\n", "[config] has no setting 'zzz'; known: candidates,"),
    ],
)  # fmt: skip
def test_each_mistake_is_one_readable_line(tmp_path, text, message) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(VidrecError) as caught:
        load_config(path)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_valid_values_pass_and_saved_configs_load_back(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("ranker_period = 0.5\n[rerank]\nfresh_boost = 1\n[demographic]\nmax_history = 3\n"
                    "[candidates]\nquotas = { cowatch = 10 }\n[ranker.examples]\nsession_window = 600\n")  # fmt: skip
    config = load_config(path)
    assert config.ranker_period == 0.5 and config.rerank.fresh_boost == 1
    assert PipelineConfig.from_dict(config.to_dict()) == config
