"""Configs: every shipped YAML loads; unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import Config, load_config, render, to_yaml
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.typed_config import help_of

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_reference_yaml_is_the_code_defaults():
    path = ROOT / "configs" / "reference.yaml"
    assert load_config(path) == Config() == load_config(None)
    assert path.read_text(encoding="utf-8") == render(Config()), (
        "configs/reference.yaml differs from the code's defaults: re-pipeline config show > configs/reference.yaml"
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


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_size=0", "train.batch_size must be at least 1, not 0"),
        ("train.eval_batch_size=-2", "train.eval_batch_size must be at least 1"),
        ("train.learning_rate=-1", "train.learning_rate must be above 0, not -1.0"),
        ("train.epochs=-1", "train.epochs must be above 0, not -1.0"),
        ("train.max_steps=0", "train.max_steps must be -1 (run the epochs) or at least 1, not 0"),
        ("train.holdout_fraction=1.5", "train.holdout_fraction must be between 0 and 1 (exclusive), not 1.5"),
        ("train.holdout_fraction=0", "train.holdout_fraction must be between 0 and 1"),
        ("train.folds=1", "train.folds must be at least 2"),
        ("train.warmup_ratio=1.2", "train.warmup_ratio must be in [0, 1)"),
        ("train.weight_decay=-0.1", "train.weight_decay must be at least 0"),
        ("train.max_length=4", "train.max_length must be at least 16"),
        ("train.eval_steps=0", "train.eval_steps must be null or at least 1"),
        ("train.early_stopping_patience=-1", "train.early_stopping_patience must be at least 0"),
        ("train.num_proc=0", "train.num_proc must be at least 1"),
        ("train.logging_steps=0", "train.logging_steps must be at least 1"),
        (
            "model.backbone.num_heads=3",
            "model.backbone.num_heads must be a divisor of model.backbone.hidden_size (256), not 3",
        ),
        ("model.backbone.hidden_size=0", "model.backbone.hidden_size must be at least 1"),
        ("model.backbone.num_layers=0", "model.backbone.num_layers must be at least 1"),
        ("model.backbone.dropout=1", "model.backbone.dropout must be in [0, 1)"),
        ("model.backbone.vocab_size=0", "model.backbone.vocab_size must be at least 1"),
        ("model.backbone.max_position=100", "model.backbone.max_position must be at least train.max_length + 2 (258)"),
        ("model.dropout=-0.5", "model.dropout must be in [0, 1)"),
        ("tapt.batch_size=0", "tapt.batch_size must be at least 1"),
        ("tapt.learning_rate=0", "tapt.learning_rate must be above 0"),
        ("tapt.epochs=0", "tapt.epochs must be above 0"),
        ("tapt.steps=0", "tapt.steps must be null or at least 1"),
        ("tapt.mlm_probability=0", "tapt.mlm_probability must be in (0, 1]"),
        ("tapt.max_length=400", "tapt.max_length must be at most model.backbone.max_position - 2 (256)"),
        ("data.end_offsets=half", "data.end_offsets must be one of inclusive, exclusive, auto"),
    ],
)
def test_out_of_range_values_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(PipelineError) as err:
        load_config(None, [override])
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_pretrained_encoder_is_not_held_to_the_offline_default_sizes():
    config = load_config(None, ["model.backbone.name=klue/roberta-large", "model.backbone.max_position=10"])
    assert config.model.backbone.max_position == 10


def test_a_config_overrides_its_base_section_by_section(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ntrain:\n  epochs: 7\n  learning_rate: 1.0e-4\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "top.yaml").write_text("base: ../base.yaml\nname: top\ntrain:\n  epochs: 2\n")
    config = load_config(tmp_path / "sub" / "top.yaml")
    assert (config.name, config.train.epochs, config.train.learning_rate) == ("top", 2, 1e-4)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(PipelineError, match="includes itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "missing.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(PipelineError, match="config file not found: .*nowhere.yaml"):
        load_config(tmp_path / "missing.yaml")
