"""Typed run configuration: YAML in, dataclasses checked key by key, resolved YAML out.

Unknown keys and wrong types are errors that name the key, so a typo never silently
turns a feature off.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .data.augment import AugmentConfig
from .data.clean import CleanConfig
from .data.markers import MarkerConfig
from .errors import PipelineError
from .hpsearch import SearchConfig
from .models.relation import ModelConfig
from .tapt import TaptConfig
from .train import TrainConfig


@dataclass
class DataConfig:
    """Where the data is and how to read it.

    `labels`: `auto` (the competition's order when every label is a KLUE-RE label, else
    read from the data), `klue`, `data`, or a path to a label JSON.
    """

    train: str = "data/raw/train.csv"
    test: str | None = "data/raw/test_data.csv"
    labels: str = "auto"
    no_relation: str | None = None
    end_offsets: str = "auto"
    unlabelled_values: list[str] = field(default_factory=lambda: ["100", ""])


@dataclass
class Config:
    """One experiment: every stage's settings, in pipeline order."""

    name: str = "default"
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    markers: MarkerConfig = field(default_factory=MarkerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tapt: TaptConfig = field(default_factory=TaptConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass `cls` from a mapping, checking every key and value type."""
    data = data or {}
    if not isinstance(data, dict):
        raise PipelineError(f"config {where or 'root'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PipelineError(
            f"config {where or 'root'}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    values = {key: _coerce(hints[key], value, f"{where}.{key}".lstrip(".")) for key, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"config {where or 'root'}: {exc}") from None


def _coerce(hint, value, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except PipelineError:
                continue
        raise PipelineError(f"config {where}: {value!r} is not a valid {hint}")
    if origin is list:
        if not isinstance(value, list):
            raise PipelineError(f"config {where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(hint) or (typing.Any,)
        return [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PipelineError(f"config {where}: expected a mapping, got {value!r}")
        _, arg = typing.get_args(hint) or (str, typing.Any)
        return {str(k): _coerce(arg, v, f"{where}.{k}") for k, v in value.items()}
    if hint is typing.Any:
        return value
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # YAML reads 3e-4 (no dot) as a string
            return float(value)
        except ValueError:
            raise PipelineError(f"config {where}: expected a number, got {value!r}") from None
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise PipelineError(f"config {where}: expected {hint.__name__}, got {value!r}")
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (defaults when `path` is None) and apply `key.sub=value` overrides."""
    data = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise PipelineError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise PipelineError(f"{path}: invalid YAML ({exc})") from None
        except UnicodeDecodeError:
            raise PipelineError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from None
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise PipelineError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise PipelineError(f"override {item!r}: {raw!r} is not a valid YAML value") from None
        set_key(data, key.strip(), value)
    try:
        return from_dict(Config, data)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}" if path else str(exc)) from None


def set_key(data: dict, key: str, value) -> None:
    """Set dotted `key` (section.key) in a config mapping."""
    node = data
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(node, dict):
            break
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise PipelineError(f"override {key}: {key} is not inside a section")
    node[last] = value


def with_values(config: Config, values: dict) -> Config:
    """A copy of `config` with dotted keys set to `values`, checked like a loaded config."""
    data = dataclasses.asdict(config)
    for key, value in values.items():
        set_key(data, key, value)
    return from_dict(Config, data)


def to_yaml(config: Config) -> str:
    """The fully resolved config, every default written out."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
