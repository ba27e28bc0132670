"""Configs: every shipped YAML loads; unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from re_pipeline.config import load_config, to_yaml
from re_pipeline.errors import PipelineError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path, tmp_path):
    config = load_config(path)
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(to_yaml(config), encoding="utf-8")
    assert load_config(resolved) == config


def test_overrides_and_numbers_written_without_a_dot():
    config = load_config(
        None, ["train.learning_rate=3e-4", "markers.format=entity_marker", "augment.methods=[{name: aeda, prob: 0.2}]"]
    )
    assert config.train.learning_rate == 3e-4 and config.markers.format == "entity_marker"
    assert config.augment.methods[0].name == "aeda" and config.augment.methods[0].prob == 0.2


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", "unknown key.*epoch.*known:"),
        ("model.pooling=max", "pooling must be one of"),
        ("train.batch_size=big", "train.batch_size: expected int"),
        ("tapt.enabled=3", "tapt.enabled: expected bool"),
        ("train.learning_rate=fast", "expected a number"),
        ("markers.format=xml", "format"),
        ("augment.methods=[{name: backtranslate}]", "backtranslate"),
        ("novel=1", "unknown key"),
    ],
)
def test_bad_configs_are_one_line_errors(override, message):
    with pytest.raises(PipelineError, match=message):
        load_config(None, [override])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed", encoding="utf-8")
    with pytest.raises(PipelineError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml")
