"""The `search` config section: what `re-pipeline hpsearch` searches (see `experiments/hpsearch.py`), kept apart from the
search itself so the config can hold it without importing the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import PipelineError
from ..core.typed_config import choice, option

PARAM_TYPES = ("float", "int", "categorical")
METRICS = ("micro_f1", "auprc", "accuracy")


@dataclass
class ParamSpace:
    """One searched key: a `float` or `int` from `low` to `high` (`log` scale, `step`), or one of `choices`."""

    type: str = option(help="float | int | categorical")
    low: float | None = option(None, "float | int: lowest value")
    high: float | None = option(None, "float | int: highest value")
    log: bool = option(False, "float | int: sample on a log scale")
    step: float | None = option(None, "float | int: grid step")
    choices: list[Any] | None = option(None, "categorical: the values")

    def check(self, where: str) -> None:
        if self.type not in PARAM_TYPES:
            raise PipelineError(f"{where}: type must be one of {', '.join(PARAM_TYPES)}, not {self.type!r}")
        if self.type == "categorical":
            if not self.choices or not all(c is None or isinstance(c, (str, int, float, bool)) for c in self.choices):
                raise PipelineError(
                    f"{where}: a categorical parameter needs a list of plain choices (strings, numbers, booleans)"
                )
        elif self.low is None or self.high is None or self.low > self.high:
            raise PipelineError(f"{where}: a {self.type} parameter needs low <= high")
        elif self.log and self.low <= 0:
            raise PipelineError(f"{where}: a log-scale parameter needs low > 0")

    def first(self):
        """A value in the space (to check the key before any trial runs)."""
        return self.choices[0] if self.type == "categorical" else int(self.low) if self.type == "int" else self.low

    def suggest(self, trial, name: str):
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


@dataclass
class SearchConfig:
    """What `re-pipeline hpsearch` searches, the metric it optimises and how it prunes."""

    space: dict[str, ParamSpace] = option(help="dotted config keys (as for --set) -> their search space", factory=dict)
    metric: str = option("micro_f1", "validation metric optimised: " + " | ".join(METRICS))
    direction: str = option("maximize", "maximize | minimize")
    pruner: str | None = option("median", "median (stops a trial whose evaluations trail the others') | null")
    startup_trials: int = option(5, "trials the median pruner waits for before pruning")

    def __post_init__(self) -> None:
        choice("search.metric", self.metric, METRICS)
        choice("search.direction", self.direction, ("maximize", "minimize"))
        choice("search.pruner", self.pruner, (None, "median"))
        for key, spec in self.space.items():
            spec.check(f"search.space.{key}")
