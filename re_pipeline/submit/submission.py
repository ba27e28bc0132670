"""Submission CSVs in the competition format: `id,pred_label,probs`.

`probs` holds one probability per label, in the label set's order, written as a list
literal (`[0.1, 0.2, ...]`). Row numbers in messages count data rows from 1 (the header
is not a row); blank lines are skipped, as pandas does.
"""

from __future__ import annotations

import ast
import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from ..core.errors import PipelineError
from ..core.io_utils import atomic_write
from ..core.labels import LabelSet
from ..data.io import row_ids
from ..data.load import LoadedData
from ..evaluation.metrics import PROB_SUM_TOLERANCE

HEADER = ["id", "pred_label", "probs"]
MAX_NAMED = 5


def write_submission(path: str | Path, ids: list[str], probs: np.ndarray, label_set: LabelSet) -> Path:
    """Write one row per id, in order; `pred_label` is the argmax label. Refuses invalid probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(ids), len(label_set)):
        raise PipelineError(
            f"probs have shape {probs.shape}, expected ({len(ids)}, {len(label_set)}) for {len(ids)} ids "
            f"and {len(label_set)} labels"
        )
    dups = _duplicates(ids)
    if dups:
        raise PipelineError(f"duplicate ids: {_name(dups)}")
    if not np.isfinite(probs).all():
        raise PipelineError(f"probs contain NaN or infinite values (first at row {_first_row(~np.isfinite(probs))})")
    if (probs < 0).any():
        raise PipelineError(f"probs contain negative values (first at row {_first_row(probs < 0)})")
    off = np.abs(probs.sum(axis=1) - 1.0) > PROB_SUM_TOLERANCE
    if off.any():
        row = _first_row(off)
        raise PipelineError(f"probs of row {row} sum to {probs[row - 1].sum():.6g}, not 1; pass softmax probabilities")
    path = Path(path)
    with atomic_write(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        for id_, p in zip(ids, probs):
            writer.writerow([id_, label_set.names[int(p.argmax())], _format_probs(p)])
    return path


def read_submission(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Return (ids, pred_labels, probs[n, C]); raises PipelineError on a malformed file."""
    header, rows = _read_rows(path)
    if header != HEADER:
        raise PipelineError(f"{path}: header is {header}, expected {HEADER}")
    ids, labels, probs = [], [], []
    for i, row in enumerate(rows, 1):
        if len(row) != 3:
            raise PipelineError(f"{path}: row {i} has {len(row)} fields, expected 3")
        try:
            probs.append(_parse_probs(row[2]))
        except ValueError:
            raise PipelineError(f"{path}: row {i} (id {row[0]!r}): cannot parse probs {row[2][:50]!r}") from None
        ids.append(row[0])
        labels.append(row[1])
    if len({len(p) for p in probs}) > 1:
        raise PipelineError(f"{path}: rows have probs lists of different lengths")
    return ids, labels, np.array(probs, dtype=np.float64) if probs else np.empty((0, 0))


def validate_submission(path: str | Path, test_ids: list[str], label_set: LabelSet) -> list[str]:
    """List every problem that would make the file an invalid submission; an empty list means valid."""
    header, rows = _read_rows(path)
    if header != HEADER:
        return [f"header is {header}, expected {HEADER}"]
    test_ids = [str(t) for t in test_ids]
    ids = [row[0] for row in rows]
    id_set, test_set = set(ids), set(test_ids)
    problems = []
    missing = [t for t in test_ids if t not in id_set]
    if missing:
        problems.append(f"{len(missing)} test ids missing: {_name(missing)}")
    extra = [i for i in ids if i not in test_set]
    if extra:
        problems.append(f"{len(extra)} ids not in the test file: {_name(extra)}")
    dups = _duplicates(ids)
    if dups:
        problems.append(f"{len(dups)} duplicate ids: {_name(dups)}")
    if not (missing or extra or dups) and ids != test_ids:
        i = next(i for i, (a, b) in enumerate(zip(ids, test_ids)) if a != b)
        problems.append(
            f"row order differs from the test file: row {i + 1} has id {ids[i]!r}, expected {test_ids[i]!r}"
        )

    found: dict[str, list[str]] = {}
    for i, row in enumerate(rows, 1):
        for kind, detail in _row_problems(row, label_set):
            found.setdefault(kind, []).append(f"row {i} (id {row[0]!r}{', ' + detail if detail else ''})")
    problems += [f"{kind}: {len(where)} row(s), first at {where[0]}" for kind, where in found.items()]
    return problems


def _row_problems(row: list[str], label_set: LabelSet) -> list[tuple[str, str]]:
    """(problem kind, detail) pairs for one data row."""
    if len(row) != 3:
        return [("wrong number of fields (expected 3)", f"{len(row)} fields")]
    _, label, text = row
    problems = [] if label in label_set else [("unknown pred_label", f"pred_label {label!r}")]
    try:
        probs = _parse_probs(text)
    except ValueError:
        return problems + [("unparseable probs", f"probs {text[:50]!r}")]
    if len(probs) != len(label_set):
        return problems + [(f"wrong number of probs (expected {len(label_set)})", f"{len(probs)} probs")]
    if not all(math.isfinite(p) for p in probs):
        return problems + [("NaN or infinite probs", "")]
    if any(p < 0 for p in probs):
        problems.append(("negative probs", f"min {min(probs)!r}"))
    total = math.fsum(probs)
    if abs(total - 1.0) > PROB_SUM_TOLERANCE:
        problems.append((f"probs not summing to 1 (tolerance {PROB_SUM_TOLERANCE})", f"sum {total:.6g}"))
    if label in label_set and probs[label_set.id(label)] != max(probs):
        argmax = label_set.names[probs.index(max(probs))]
        problems.append(("pred_label is not the argmax of probs", f"argmax {argmax!r}"))
    return problems


def _read_rows(path: str | Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PipelineError(f"cannot read submission {path}: {exc}") from None
    return (rows[0], rows[1:]) if rows else ([], [])


def _format_probs(row: np.ndarray) -> str:
    return "[" + ", ".join(repr(float(p)) for p in row) + "]"


def _parse_probs(text: str) -> list[float]:
    """Parse a list literal of numbers with json, falling back to ast.literal_eval; ValueError otherwise."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ValueError(text) from None
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in value
    ):
        raise ValueError(text)
    return [float(p) for p in value]


def _duplicates(ids: list[str]) -> list[str]:
    return [i for i, n in Counter(ids).items() if n > 1]


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0]) + 1


def _name(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def with_quarantined_rows(test: LoadedData, probs: np.ndarray, log) -> tuple[list[str], np.ndarray]:
    """Every test row gets a prediction, in file order (`row_ids`, as `validate-submission` reads the test
    file): quarantined rows get no_relation (probability 1)."""
    by_id = dict(zip((ex.id for ex in test.examples), probs))
    fallback = np.eye(probs.shape[1])[0]
    if test.ledger.removals:
        log(
            f"warning: {len(test.ledger.removals)} quarantined test rows are submitted as no_relation (see test.quarantine.csv)"
        )
    ids = row_ids(test.examples, test.ledger)
    return ids, np.stack([by_id.get(id_, fallback) for id_ in ids])
