"""Configs: every shipped YAML loads; unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import Config, load_config, render, to_yaml
from re_pipeline.errors import PipelineError
from re_pipeline.typed_config import help_of

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_default_yaml_is_the_code_defaults():
    path = ROOT / "configs" / "default.yaml"
    assert load_config(path) == Config() == load_config(None)
    assert path.read_text(encoding="utf-8") == render(Config()), (
        "configs/default.yaml differs from the code's defaults: re-pipeline config show > configs/default.yaml"
    )


def sections(node, where="") -> list[tuple[str, type, str]]:
    """(dotted key, dataclass, field name) of every config field, nested sections included."""
    out = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        out.append((f"{where}{f.name}", type(node), f.name))
        if dataclasses.is_dataclass(value):
            out += sections(value, f"{where}{f.name}.")
    return out


def test_every_config_key_has_help():
    missing = [key for key, cls, name in sections(Config()) if not help_of(cls, name)]
    assert not missing, f"config keys without help: {missing}"


def test_config_show_prints_the_resolved_config_with_help(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text("train: {epochs: 3}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "show", "--config", str(config), "--set", "markers.format=baseline"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    epochs = next(line for line in lines if line.strip().startswith("epochs: 3.0"))
    assert "# passes over the training rows" in epochs
    assert any(line.strip().startswith("format: baseline") for line in lines)
    assert load_config(config, ["markers.format=baseline"]) == Config(
        train=dataclasses.replace(Config().train, epochs=3.0),
        markers=dataclasses.replace(Config().markers, format="baseline"),
    )


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
