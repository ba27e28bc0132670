"""Run types that are not neural networks, one table entry each (`CLASSICAL`): how a model reads examples,
its config section and its folder in a fold. Each model class has `fit(inputs, label_ids, num_labels, config,
seed)`, `predict_proba(inputs)` ([rows, labels]), `save(folder)` and `load(folder)` (no pickle)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data.markers import MarkerConfig
from ..data.schema import Example
from . import pair_prior, tfidf


@dataclass(frozen=True)
class Classical:
    model: type
    inputs: Callable[[list[Example], MarkerConfig], list[str]]
    settings: Callable[[Any], Any]  # the model's section of ModelConfig
    folder: str


CLASSICAL: dict[str, Classical] = {
    "tfidf": Classical(tfidf.TfidfModel, tfidf.texts, lambda model: model.tfidf, "tfidf"),
    "prior": Classical(pair_prior.PairPrior, pair_prior.pairs, lambda model: model.prior, "prior"),
}
