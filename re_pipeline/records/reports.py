"""Figures from a run's out-of-fold probabilities: confusion matrix, per-class F1, precision-recall curves.

Drawn with matplotlib's object API on its default Agg canvas: no display, no pyplot state.
Only labels that occur (as gold or as prediction) in the validated rows are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, confusion_matrix, precision_recall_curve

from ..core.labels import LabelSet
from ..evaluation.metrics import compute_metrics, per_class_report
from .runs import read_json, read_oof

TOP_K = 8  # precision-recall curves drawn: the most frequent classes


@dataclass(frozen=True)
class Validated:
    """A run's validated out-of-fold rows: their `rows` (positions in `oof_probs.npy`), ids, gold label ids and
    probabilities [rows, labels], with the run's label set."""

    label_set: LabelSet
    rows: np.ndarray
    ids: list[str]
    gold: np.ndarray
    probs: np.ndarray

    @classmethod
    def read(cls, run_dir: Path) -> Validated:
        label_set = LabelSet.from_dict(read_json(run_dir / "labels.json"))
        ids, gold_names, probs = read_oof(run_dir)
        rows = np.flatnonzero(~np.isnan(probs).any(axis=1))
        gold = np.array(label_set.ids(np.array(gold_names, dtype=object)[rows]), dtype=int)
        return cls(label_set, rows, [ids[i] for i in rows], gold, probs[rows])


def write_reports(run_dir: Path) -> list[Path]:
    """Write confusion_matrix.png, per_class_f1.png and pr_curves.png into `run_dir`; return their paths."""
    oof = Validated.read(run_dir)
    label_set, gold, probs = oof.label_set, oof.gold, oof.probs
    shown = np.union1d(gold, probs.argmax(axis=1))
    metrics = compute_metrics(gold, probs)
    figures = {
        "confusion_matrix.png": confusion_figure(gold, probs.argmax(axis=1), shown, label_set),
        "per_class_f1.png": f1_figure(gold, probs, shown, label_set, metrics["micro_f1"]),
        "pr_curves.png": pr_figure(gold, probs, label_set, metrics["auprc"]),
    }
    for name, fig in figures.items():
        fig.savefig(run_dir / name, dpi=100)
    return [run_dir / name for name in figures]


def confusion_figure(gold: np.ndarray, pred: np.ndarray, shown: np.ndarray, label_set: LabelSet) -> Figure:
    counts = confusion_matrix(gold, pred, labels=shown)
    shares = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    size = 3 + 0.4 * len(shown)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [label_set.names[c] for c in shown]
    ax.set_xticks(range(len(shown)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(shown)), names, fontsize=7)
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(
                j, i, str(n), ha="center", va="center", fontsize=6, color="white" if shares[i, j] > 0.5 else "black"
            )
    ax.set(
        xlabel="predicted",
        ylabel="gold",
        title=f"out-of-fold confusion matrix ({len(gold):,} rows; colour: share of the gold row)",
    )
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def f1_figure(gold: np.ndarray, probs: np.ndarray, shown: np.ndarray, label_set: LabelSet, micro_f1: float) -> Figure:
    full = per_class_report(gold, probs, label_set)
    report = [full[c] for c in shown]
    fig = Figure(figsize=(8, 1.5 + 0.3 * len(report)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(range(len(report)), [r["f1"] for r in report], color="tab:blue")
    ax.set_yticks(range(len(report)), [f"{r['label']} (n={r['support']})" for r in report], fontsize=7)
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 100),
        xlabel="F1 (%)",
        title=f"per-class F1, out of fold (micro-F1 without no_relation {micro_f1:.2f})",
    )
    return fig


def pr_figure(gold: np.ndarray, probs: np.ndarray, label_set: LabelSet, auprc: float) -> Figure:
    support = np.bincount(gold, minlength=len(label_set))
    top = [c for c in np.argsort(-support, kind="stable")[:TOP_K] if support[c]]
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.add_subplot()
    for c in top:
        precision, recall, _ = precision_recall_curve(gold == c, probs[:, c])
        ax.plot(
            recall, precision, label=f"{label_set.names[c]} (area {auc(recall, precision) * 100:.1f}, n={support[c]})"
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="recall",
        ylabel="precision",
        title=f"precision-recall, {len(top)} most frequent classes (AUPRC over all classes {auprc:.2f})",
    )
    ax.legend(fontsize=7, loc="lower left")
    return fig
