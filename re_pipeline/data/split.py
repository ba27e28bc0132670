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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, StratifiedShuffleSplit

from .schema import Example


@dataclass(frozen=True)
class Fold:
    """Row indices of one fold: trained on, validated, and left out of both."""

    train: np.ndarray
    val: np.ndarray

    def left_out(self, n: int) -> int:
        return n - len(self.train) - len(self.val)


def _grouped(examples: list[Example], groups: list[str], validation: str, fraction: float, folds: int, seed: int):
    labels = [ex.label for ex in examples]
    n = len(examples)
    if validation == "kfold":
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [Fold(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(n), labels, groups)]
    if len(set(groups)) == n:  # no group holds two rows: an exactly stratified hold-out of `fraction`
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        a, b = next(splitter.split(np.zeros(n), labels))
    else:
        a, b = next(
            GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(np.zeros(n), groups=groups)
        )
    return [Fold(np.sort(a), np.sort(b))]


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
