"""Run types that are not neural networks, one table entry each (`CLASSICAL`): how a model reads examples,
its config section and its folder in a fold. `fit(inputs, label_ids, num_labels, config, seed)` and
`load(folder)` give a model with `predict_proba(inputs)` ([rows, labels]) and `save(folder)` (no pickle). A kind
with `warm_start` also takes `fit(..., init=model)`: a fitted model of its kind whose solution starts the solver.
`prepare(examples, config)`, when set, runs once on all of a run's rows (train and test) before the first fit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.markers import MarkerConfig
from ..data.schema import Example
from . import pair_prior, tfidf


@dataclass(frozen=True)
class Classical:
    fit: Callable[..., Any]
    load: Callable[[Path], Any]
    inputs: Callable[[list[Example], MarkerConfig], list[str]]
    settings: Callable[[Any], Any]  # the model's section of ModelConfig
    folder: str
    warm_start: bool = False
    prepare: Callable[[list[Example], Any], None] | None = None


CLASSICAL: dict[str, Classical] = {
    "tfidf": Classical(
        tfidf.fit, tfidf.load, tfidf.texts, lambda model: model.tfidf, "tfidf", warm_start=True, prepare=tfidf.prepare
    ),
    "prior": Classical(
        pair_prior.PairPrior.fit, pair_prior.PairPrior.load, pair_prior.pairs, lambda model: model.prior, "prior"
    ),
}
