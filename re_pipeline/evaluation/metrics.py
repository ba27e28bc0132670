"""The competition's metrics: micro-F1 without the no-relation class, and AUPRC over all classes.

Every score is in percent (0-100), like the competition's leaderboard. Class id 0 is the
no-relation class (see `LabelSet`).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from ..core.errors import PipelineError
from ..core.labels import LabelSet

PROB_SUM_TOLERANCE = 1e-4


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise PipelineError(f"labels must be a 1-D array, got shape {labels.shape}")
    if labels.size == 0:
        raise PipelineError("cannot compute metrics on an empty set of examples")
    if not np.issubdtype(labels.dtype, np.integer):
        raise PipelineError(f"labels must be integer class ids, got dtype {labels.dtype}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise PipelineError(
            f"label id {labels[bad][0]} is out of range for {num_classes} classes (valid ids: 0..{num_classes - 1})"
        )
    return labels


def _check_preds(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels = _check_labels(labels, num_classes)
    preds = np.asarray(preds)
    if preds.shape != labels.shape:
        raise PipelineError(f"predictions have shape {preds.shape} but labels have shape {labels.shape}")
    try:
        _check_labels(preds, num_classes)
    except PipelineError as exc:
        raise PipelineError(f"predictions: {exc}") from None
    return labels, preds


def _check_probs(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise PipelineError(f"probs must be a 2-D array (examples x classes), got shape {probs.shape}")
    labels = _check_labels(labels, probs.shape[1])
    if probs.shape[0] != labels.shape[0]:
        raise PipelineError(f"probs have {probs.shape[0]} rows but there are {labels.shape[0]} labels")
    if not np.isfinite(probs).all():
        raise PipelineError("probs contain NaN or infinite values")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero((probs < 0).any(axis=1) | (np.abs(sums - 1.0) > PROB_SUM_TOLERANCE))
    if bad.size:
        raise PipelineError(
            f"probs row {bad[0]} is not a probability distribution (sum {sums[bad[0]]:.6g}); "
            "pass softmax(logits), not logits"
        )
    return labels, probs


def micro_f1(labels: np.ndarray, preds: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> float:
    """The competition's micro-F1 over every class except the no-relation id 0, in percent (rows weighted
    by `weights` when given)."""
    labels, preds = _check_preds(labels, preds, num_classes)
    score = f1_score(
        labels, preds, average="micro", labels=list(range(1, num_classes)), zero_division=0.0, sample_weight=weights
    )
    return float(score) * 100.0


def accuracy(labels: np.ndarray, preds: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> float:
    """Share of exact predictions, no-relation included, in percent (weighted by `weights` when given)."""
    labels, preds = _check_preds(labels, preds, num_classes)
    return float(np.average(labels == preds, weights=weights)) * 100.0


def _pr_area(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    """Area under one class's PR curve, computed as `sklearn.metrics.precision_recall_curve` then `auc` do
    (one point per distinct score, the closing point (recall 0, precision 1), trapezoids over recall).
    Written out because scikit-learn's input checks cost about 2 ms a call, and fitting ensemble weights for
    AUPRC scores thousands of candidate weightings of 30 classes: a minute of checks on the bundled sample."""
    order = np.argsort(score, kind="stable")[::-1]
    score, positive, weights = score[order], positive[order], weights[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tps = np.cumsum(positive * weights)[last]
    fps = np.cumsum((1.0 - positive) * weights)[last]
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(-np.trapezoid(np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]))


def auprc(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The competition's AUPRC: one-vs-rest PR-curve area per class, averaged over all C classes, in percent.

    A class with no positive example scores exactly 0.5. That is what the competition's code
    returns with the scikit-learn this project requires: since 1.1 `precision_recall_curve`
    then warns and sets recall to 1 at every threshold with precision 0, so the curve's only
    area is the closing segment from (recall 1, precision 0) to (recall 0, precision 1).
    (Older scikit-learn gave NaN there.) With `weights`, each row counts with its weight in the
    precision-recall curves (rows of weight 0 are left out, as scikit-learn does).
    """
    labels, probs = _check_probs(labels, probs)
    if weights is None:
        weights = np.ones(len(labels))
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != labels.shape:
            raise PipelineError(f"{weights.shape[0] if weights.ndim else 0} weights for {len(labels)} rows")
        kept = weights != 0
        labels, probs, weights = labels[kept], probs[kept], weights[kept]
    scores = np.empty(probs.shape[1])
    for c in range(probs.shape[1]):
        positive = (labels == c).astype(np.float64)
        scores[c] = _pr_area(positive, probs[:, c], weights) if weights @ positive > 0 else 0.5
    return float(scores.mean()) * 100.0


def compute_metrics(labels: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """`micro_f1`, `auprc` and `accuracy` (percent) from softmax probabilities; preds are the argmax. With
    `weights` (one per row), every metric counts each row with its weight."""
    labels, probs = _check_probs(labels, probs)
    if weights is not None and (
        len(weights) != len(labels) or not np.all(np.isfinite(weights)) or (weights < 0).any()
    ):
        raise PipelineError(f"weights must be {len(labels)} finite non-negative numbers, one per row")
    preds = probs.argmax(axis=1)
    num_classes = probs.shape[1]
    return {
        "micro_f1": micro_f1(labels, preds, num_classes, weights),
        "auprc": auprc(labels, probs, weights),
        "accuracy": accuracy(labels, preds, num_classes, weights),
    }


def per_class_report(labels: np.ndarray, probs_or_preds: np.ndarray, label_set: LabelSet) -> list[dict]:
    """One dict per label, in label order: label, support, precision, recall, f1 (percent).

    Takes either predicted ids (1-D) or probabilities (2-D, argmax taken). A class never
    predicted, or never present, scores 0 where the ratio is undefined.
    """
    values = np.asarray(probs_or_preds)
    if values.ndim == 2:
        if values.shape[1] != len(label_set):
            raise PipelineError(f"probs have {values.shape[1]} columns but the label set has {len(label_set)} labels")
        labels, values = _check_probs(labels, values)
        values = values.argmax(axis=1)
    labels, preds = _check_preds(labels, values, len(label_set))
    ids = list(range(len(label_set)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=ids, zero_division=0.0)
    return [
        {
            "label": name,
            "support": int(support[i]),
            "precision": float(precision[i]) * 100.0,
            "recall": float(recall[i]) * 100.0,
            "f1": float(f1[i]) * 100.0,
        }
        for i, name in enumerate(label_set.names)
    ]


def labelled_test_metrics(gold: dict[str, str], ids: list[str], probs: np.ndarray, label_set: LabelSet) -> dict | None:
    """A submission's rows (`ids`, `probs`) scored on the labels its test file carries (`gold`: id -> label; a
    labelled sample, never the competition's test, whose cells are the unlabelled 100), when every row carries one
    the label set knows; else None. The row count is part of the result."""
    labels = [gold.get(i) for i in ids]
    if not ids or any(label not in label_set for label in labels):
        return None
    return {**compute_metrics(np.array(label_set.ids(labels)), probs), "rows": len(ids)}
