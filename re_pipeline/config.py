"""The run configuration: every stage's section, YAML in (checked key by key), resolved YAML out.

The dataclass defaults are every key's reference value: `configs/reference.yaml` is `render(Config())`, written
by `re-pipeline config show > configs/reference.yaml`, and a test holds the two equal (the code's defaults train
the TF-IDF model, as configs/tfidf.yaml). Configs override only what they change, directly or on a `base:`
config; `configs/default.yaml`, what `make train` runs, is the chosen recipe. Each field's help lives on the field (`typed_config.option`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from .core.errors import PipelineError
from .core.typed_config import check, from_dict, help_of, option, set_key
from .data.augment import AugmentConfig
from .data.clean import CleanConfig
from .data.load import DataConfig
from .data.markers import MarkerConfig
from .models.packaged import is_packaged
from .models.relation import ModelConfig
from .submit.ensemble import EnsembleConfig
from .training.search_space import SearchConfig
from .training.tapt import TaptConfig
from .training.train import TrainConfig


@dataclass
class Config:
    """One experiment: every stage's settings, in pipeline order."""

    name: str = option("default", "the experiment's name: run folders are runs/<time>-<name>")
    seed: int = option(42, "seed of the split, the initial weights and the batches")
    data: DataConfig = option(help="where the data is and how to read it", factory=DataConfig)
    clean: CleanConfig = option(help="noise rules, each with an audit record per changed row", factory=CleanConfig)
    markers: MarkerConfig = option(help="how the entities are shown to the encoder", factory=MarkerConfig)
    augment: AugmentConfig = option(help="augmentation of the training rows", factory=AugmentConfig)
    model: ModelConfig = option(help="the encoder and the relation head", factory=ModelConfig)
    tapt: TaptConfig = option(help="task-adaptive pretraining (masked LM) before fine-tuning", factory=TaptConfig)
    train: TrainConfig = option(help="fine-tuning and validation", factory=TrainConfig)
    search: SearchConfig = option(help="what `re-pipeline hpsearch` searches", factory=SearchConfig)
    ensemble: EnsembleConfig = option(
        help="other configs trained after this one and combined with it (`re-pipeline train` runs them)",
        factory=EnsembleConfig,
    )

    def __post_init__(self) -> None:
        decided = (self.train.calibration, self.train.prior_shift, self.train.decision) != ("none", "none", "argmax")
        if self.ensemble.members and decided:
            raise PipelineError(
                "with ensemble.members the ensemble calibrates, shifts and decides (ensemble.calibration, prior_shift, "
                "decision): leave train.calibration, prior_shift and decision at none, none, argmax"
            )
        backbone = self.model.backbone
        if backbone.trim_vocab:
            packaged = f"false for {backbone.name or 'the offline default'} (trimming is for packaged backbones)"
            check("model.backbone.trim_vocab", is_packaged(backbone.name), packaged, True)
            frozen = "false with model.peft (the frozen base keeps its full vocabulary)"
            check("model.backbone.trim_vocab", not self.model.peft.enabled, frozen, True)
        if backbone.name is None:  # the offline default's positions must hold the longest input
            room = f"at least train.max_length + 2 ({self.train.max_length + 2})"
            check(
                "model.backbone.max_position",
                backbone.max_position >= self.train.max_length + 2,
                room,
                backbone.max_position,
            )
            most = f"at most model.backbone.max_position - 2 ({backbone.max_position - 2})"
            check("tapt.max_length", self.tapt.max_length <= backbone.max_position - 2, most, self.tapt.max_length)


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping; a `base: other.yaml` key (relative to the file) is read first and this file's
    keys override it, section by section."""
    if not path.exists():
        raise PipelineError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: invalid YAML ({exc})") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: config root: expected a mapping, got {type(data).__name__}")
    ensemble = data.get("ensemble")
    if isinstance(ensemble, dict) and isinstance(ensemble.get("members"), list):  # relative to this file, as base: is
        ensemble["members"] = [str((path.parent / str(member)).resolve()) for member in ensemble["members"]]
    if "base" not in data:
        return data
    base = (path.parent / str(data.pop("base"))).resolve()
    if base in seen:
        raise PipelineError(f"{path}: base {base} includes itself")
    return merged(read_yaml(base, (*seen, base)), data)


def merged(base: dict, top: dict) -> dict:
    """`top` over `base`, mappings merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_override(item: str) -> tuple[str, object]:
    """`section.key=value` as its dotted key and YAML value."""
    key, sep, raw = item.partition("=")
    if not sep:
        raise PipelineError(f"override {item!r} must look like section.key=value")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        raise PipelineError(f"override {item!r}: {raw!r} is not a valid YAML value") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (defaults when `path` is None; `base:` files first) and apply `key.sub=value`
    overrides."""
    data = {}
    if path is not None:
        path = Path(path)
        data = read_yaml(path, (path.resolve(),))
    for item in overrides or []:
        set_key(data, *parse_override(item))
    try:
        return from_dict(Config, data)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}" if path else str(exc)) from None


def with_values(config: Config, values: dict) -> Config:
    """A copy of `config` with dotted keys set to `values`, checked like a loaded config."""
    data = dataclasses.asdict(config)
    for key, value in values.items():
        set_key(data, key, value)
    return from_dict(Config, data)


def to_yaml(config: Config) -> str:
    """The fully resolved config, every default written out."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)


def render(config: Config, width: int = 40) -> str:
    """The resolved config as commented YAML: each key with its help, sections with theirs.

    `configs/reference.yaml` is `render(Config())`; `re-pipeline config show` prints it for any config.
    """
    lines = [
        "# The resolved config, each key with its help (`re-pipeline config show [--config FILE]`).",
        "# configs/reference.yaml is this output for the defaults; edit the defaults in the code, then regenerate it.",
    ]
    _render(config, 0, lines, width)
    return "\n".join(lines) + "\n"


def _render(node, depth: int, lines: list[str], width: int) -> None:
    indent = "  " * depth
    for f in dataclasses.fields(node):
        value, help_text = getattr(node, f.name), help_of(type(node), f.name)
        if dataclasses.is_dataclass(value):
            if depth == 0:
                lines.append("")
            lines.append(f"{indent}{f.name}:{'  # ' + help_text if help_text else ''}")
            _render(value, depth + 1, lines, width)
            continue
        dumped = yaml.safe_dump(
            {f.name: _plain(value)}, sort_keys=False, allow_unicode=True, default_flow_style=True, width=10**6
        )
        text = f"{indent}{dumped.strip()[1:-1]}"  # `{key: value}` without the braces
        lines.append(f"{text:<{width}} # {help_text}".rstrip() if help_text else text)


def _plain(value):
    """Lists and dicts of dataclasses as plain YAML data."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
