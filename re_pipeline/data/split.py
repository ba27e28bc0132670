"""Validation splits of the training rows (`train.split`), one table entry each (`SPLITS`).

- `random`: stratified by label; rows sharing a group (an augmented row and its parent) stay together.
- `sentence`: rows sharing a sentence stay on one side.
- `entity`: entity words the model never saw. A random set of entity words (subject and object words, one
  namespace) is held out; validation = rows using a held-out word, training = rows using none whose
  sentence is not validated; the rest (rows sharing a sentence with a validation row) is left out. No
  validation (subject word, object word) pair occurs in training, as on the competition's test, where
  only 2.8% of pairs occur in train (57% of a random hold-out's do).

Rows sharing a sentence or an entity form one connected group covering most of KLUE-RE, so a plain group
split cannot do this: holding out words, not rows, can. With `validation: holdout`, words are held out
(in a seeded random order) until `holdout_fraction` of the rows are validated. With `kfold`, the words are
dealt into `folds` groups; fold k validates the rows whose first held-out word (in that order) is in
group k, and trains on the rows using no word of group k; so each row is validated once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from .schema import Example


@dataclass(frozen=True)
class Fold:
    """Row indices of one fold: trained on, validated, and left out of both."""

    train: np.ndarray
    val: np.ndarray

    def left_out(self, n: int) -> int:
        return n - len(self.train) - len(self.val)


def holdout_split(labels: list[str], groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) rows, `fraction` of them validated (rounded, at least one row each side), stratified by
    label: each label's share is its count times `fraction`, the rounding remainder going to the largest
    remainders. Rows sharing a group go together, counted under the label of their first row."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    strata: dict[str, list[str]] = defaultdict(list)
    for group, rows in members.items():
        strata[labels[rows[0]]].append(group)
    quota = {label: fraction * sum(len(members[g]) for g in gs) for label, gs in strata.items()}
    share = {label: int(q) for label, q in quota.items()}
    target = min(len(labels) - 1, max(1, round(fraction * len(labels))))
    for label in sorted(quota, key=lambda label: (share[label] - quota[label], label))[: target - sum(share.values())]:
        share[label] += 1
    rng, validation = np.random.default_rng(seed), []
    for label in sorted(strata):
        for k in rng.permutation(len(strata[label])):
            rows = members[strata[label][k]]
            if len(rows) <= share[label]:
                validation += rows
                share[label] -= len(rows)
    validation = np.sort(np.array(validation, dtype=int))
    return np.setdiff1d(np.arange(len(labels)), validation), validation


def _grouped(examples: list[Example], groups: list[str], validation: str, fraction: float, folds: int, seed: int):
    labels = [ex.label for ex in examples]
    n = len(examples)
    if validation == "kfold":
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [Fold(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), labels, groups)]
    return [Fold(*holdout_split(labels, groups, fraction, seed))]


def random_split(examples: list[Example], validation: str, fraction: float, folds: int, seed: int) -> list[Fold]:
    return _grouped(examples, [ex.parent_id or ex.id for ex in examples], validation, fraction, folds, seed)


def sentence_split(examples: list[Example], validation: str, fraction: float, folds: int, seed: int) -> list[Fold]:
    return _grouped(examples, [ex.sentence for ex in examples], validation, fraction, folds, seed)


def entity_split(examples: list[Example], validation: str, fraction: float, folds: int, seed: int) -> list[Fold]:
    words = sorted({e.word for ex in examples for e in (ex.subject, ex.object)})
    rank = dict(zip(words, np.random.default_rng(seed).permutation(len(words))))
    subj = np.array([rank[ex.subject.word] for ex in examples])
    obj = np.array([rank[ex.object.word] for ex in examples])
    first = np.minimum(subj, obj)  # a row is validated by its first held-out word
    sentences = np.array([ex.sentence for ex in examples], dtype=object)
    if validation == "kfold":  # words dealt round-robin, in their random order, into `folds` groups
        return [
            _entity_fold((subj % folds == k) | (obj % folds == k), np.flatnonzero(first % folds == k), sentences)
            for k in range(folds)
        ]
    cut = np.sort(first)[max(0, int(np.ceil(fraction * len(examples))) - 1)]  # the first `cut` words reach it
    val = np.flatnonzero(first <= cut)
    return [_entity_fold(first <= cut, val, sentences)]


def _entity_fold(uses_held_out: np.ndarray, val: np.ndarray, sentences: np.ndarray) -> Fold:
    validated = set(sentences[val])
    clean = ~uses_held_out & ~np.isin(sentences, list(validated))
    return Fold(np.flatnonzero(clean), val)


SPLITS: dict[str, Callable[[list[Example], str, float, int, int], list[Fold]]] = {
    "random": random_split,
    "sentence": sentence_split,
    "entity": entity_split,
}


def split_rows(
    examples: list[Example], scheme: str, validation: str, fraction: float, folds: int, seed: int
) -> list[Fold]:
    """The folds of `examples`: one with `validation: holdout`, `folds` with `kfold`, none validated with `none`."""
    if validation == "none":
        return [Fold(np.arange(len(examples)), np.arange(0))]
    return SPLITS[scheme](examples, validation, fraction, folds, seed)


def stratified_share(labels: list, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of `fraction` of the rows (all when `fraction` >= 1), each label kept at its share."""
    if fraction >= 1 or len(labels) < 2:
        return np.arange(len(labels))
    return holdout_split(labels, [str(i) for i in range(len(labels))], fraction, seed)[1]
