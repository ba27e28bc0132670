"""Train versus test: validation metrics reweighted to the test's observable make-up, and the shift table.

The test file has no labels, but its rows show their entity type pair and source. Validation rows are
weighted by raking (iterative proportional fitting) so that their weighted type-pair and source shares
equal the test's; categories the validation rows lack are left out of the targets. The reweighted
metrics say what the validation would be on rows shaped like the test's, not what the test gives.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..core.labels import LabelSet
from ..data.schema import Example

KEYS = {"type pair": lambda ex: f"{ex.subject.type}|{ex.object.type}", "source": lambda ex: ex.source or "-"}


def raking_weights(
    rows: dict[str, list[str]], targets: dict[str, dict[str, float]], iterations: int = 200
) -> np.ndarray:
    """Row weights (mean 1) whose weighted share of each category of each key in `rows` matches `targets`.

    `rows[key]` holds each row's category; `targets[key]` the wanted shares (categories missing from the rows
    are dropped and the rest renormalised). Rows of a category the targets lack get weight 0.
    """
    n = len(next(iter(rows.values())))
    weights = np.ones(n)
    wanted = {}
    for key, cats in rows.items():
        present = {c: share for c, share in targets[key].items() if c in set(cats)}
        total = sum(present.values())
        wanted[key] = {c: share / total for c, share in present.items()} if total else {}
    codes = {key: np.array(cats, dtype=object) for key, cats in rows.items()}
    for _ in range(iterations):
        for key, cats in codes.items():
            shares = {c: weights[cats == c].sum() / weights.sum() for c in set(cats)}
            weights = weights * np.array([wanted[key].get(c, 0.0) / shares[c] if shares[c] else 0.0 for c in cats])
            if not weights.sum():
                return np.ones(n)  # nothing in common with the targets: unweighted
    return weights / weights.mean()


def shares(examples: list[Example], key) -> dict[str, float]:
    counts = Counter(key(ex) for ex in examples)
    return {c: n / len(examples) for c, n in counts.items()}


def weights_like_test(val: list[Example], test: list[Example]) -> np.ndarray:
    """Weights of the validation rows that give them the test's type-pair and source shares."""
    rows = {name: [key(ex) for ex in val] for name, key in KEYS.items()}
    return raking_weights(rows, {name: shares(test, key) for name, key in KEYS.items()})


def _share_rows(name: str, groups: dict[str, dict[str, float]], top: int = 15) -> list[dict]:
    cats = sorted(set().union(*groups.values()), key=lambda c: -max(g.get(c, 0.0) for g in groups.values()))
    return [
        {name: c, **{f"{g} %": round(100 * part.get(c, 0.0), 1) for g, part in groups.items()}} for c in cats[:top]
    ]


def _seen(train: list[Example], rows: list[Example]) -> dict[str, float]:
    subjects, objects = {ex.subject.word for ex in train}, {ex.object.word for ex in train}
    pairs = {(ex.subject.word, ex.object.word) for ex in train}
    n = max(1, len(rows))
    return {
        "subject word seen as a training subject %": round(
            100 * sum(ex.subject.word in subjects for ex in rows) / n, 1
        ),
        "object word seen as a training object %": round(100 * sum(ex.object.word in objects for ex in rows) / n, 1),
        "(subject, object) pair seen in training %": round(
            100 * sum((ex.subject.word, ex.object.word) in pairs for ex in rows) / n, 1
        ),
    }


def shift_tables(
    train: list[Example], val: list[Example], test: list[Example], test_probs: np.ndarray | None, label_set: LabelSet
) -> dict[str, list[dict]]:
    """Titled tables (lists of rows with the same keys) comparing training, validation and test rows:
    type pairs, sources, lengths, seen entity words and pairs, and predicted labels against the prior."""
    groups = {"train": train, "validation": val, "test": test}
    groups = {g: rows for g, rows in groups.items() if rows}
    tables = {
        name: _share_rows(name, {g: shares(rows, key) for g, rows in groups.items()}) for name, key in KEYS.items()
    }
    tables["sentence length (characters)"] = [
        {"rows": g, **{f"p{q}": int(np.percentile([len(ex.sentence) for ex in rows], q)) for q in (10, 50, 90, 99)}}
        for g, rows in groups.items()
    ]
    seen = {g: _seen(train, rows) for g, rows in groups.items() if g != "train"}
    tables["seen in training"] = [
        {"measure": m, **{f"{g} %": s[m] for g, s in seen.items()}} for m in next(iter(seen.values()), {})
    ]
    if test_probs is not None and len(test_probs):
        predicted = Counter(label_set.names[i] for i in test_probs.argmax(axis=1))
        prior = shares(train, lambda ex: ex.label)
        tables["predicted labels"] = _share_rows(
            "label",
            {"training prior": prior, "test predicted": {c: k / len(test_probs) for c, k in predicted.items()}},
        )
    return tables
