"""Typed config sections: dataclasses whose fields carry their help, built from YAML mappings key by key.

Every config section (`DataConfig`, `TrainConfig`, ...) is a dataclass declared with `option(...)`, which
puts the field's help in its metadata, as `run_glue.py`'s argument dataclasses do; `re-pipeline config
show` prints it. `from_dict` checks every key and value type, so a typo is an error naming the key,
never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, field

from .errors import PipelineError


def option(default=MISSING, help: str = "", factory=MISSING):
    """A dataclass field with its `help` (`factory` for list and dict defaults)."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def help_of(cls, name: str) -> str:
    """The help text of field `name` of dataclass `cls` ('' if none)."""
    return next((f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name), "")


def check(where: str, ok: bool, expected: str, value) -> None:
    """A one-line PipelineError naming the key when a value is out of its range."""
    if not ok:
        raise PipelineError(f"{where} must be {expected}, not {value!r}")


def choice(where: str, value, table) -> None:
    """`value` must name an entry of `table` (a registry or a tuple of names)."""
    check(where, value in table, "one of " + ", ".join("null" if name is None else str(name) for name in table), value)


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
