"""Ensembles of finished runs and submission CSVs: soft voting, given weights, or weights fitted out of fold.

Members must answer the same test rows in the same order with the same label order (a CSV
member is read with the `--labels` order and checked against its own `pred_label` column).
`fit-f1` / `fit-auprc` search weights on the simplex (softmax of free parameters, Nelder-Mead
from uniform and from near each one-hot) on the out-of-fold rows every member validated, and
fall back to the best single member's one-hot when the fit does not reach its score there. Their
reported score is cross-fitted (each part of the rows scored with weights fit on the others); the
score of the final weights on the rows they were fit on is kept as `in_sample_metrics`.

`calibration` calibrates each member on those rows before pooling; `prior_shift` and `decision` then treat the
pooled probabilities as a run's `train.prior_shift` and `train.decision` treat its own (evaluation/prior.py). They need
members whose submissions were not already calibrated, shifted or scaled.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from ..core.errors import PipelineError
from ..core.io_utils import read_json, write_json
from ..core.labels import LabelSet
from ..core.typed_config import choice, option
from ..data.io import read_examples
from ..evaluation.metrics import auprc, compute_metrics, labelled_test_metrics, micro_f1, softmax
from ..evaluation.prior import CALIBRATIONS, DECISIONS, PRIOR_SHIFTS, Reference, cross_fitted_decision, fit_calibration
from ..records.runs import environment, finished, new_run_dir, read_oof
from .submission import read_submission, validate_submission, write_submission

METHODS = ("mean", "weighted", "fit-f1", "fit-auprc")
FIT_METHODS = ("mean", "fit-f1", "fit-auprc")  # what a config may ask for (weighted needs weights)
FLOOR = 1e-12  # log pooling: a probability of 0 (a relation a pair head forbids) counts as this
FIT_METRIC = {"fit-f1": "micro_f1", "fit-auprc": "auprc"}
CROSS_FIT_PARTS = 5  # a fitted ensemble is scored on each fifth of the rows with weights fit on the other four


@dataclass
class EnsembleConfig:
    """Configs trained after a run on its data, seed and split, then combined with it (`run_members`)."""

    members: list[str] = option(
        help="config files trained after this one on its data, seed and split, then ensembled with it into one "
        "more submission (paths relative to the config file that lists them); [] for none",
        factory=list,
    )
    method: str = option("mean", "how the runs are weighted: mean | fit-f1 | fit-auprc (fitted out of fold)")
    pool: str = option("mean", "mean (soft voting) | log (weighted geometric mean)")
    calibration: str = option("none", "each run calibrated on its validated rows first: " + " | ".join(CALIBRATIONS))
    prior_shift: str = option("none", "the combination adjusted to a test prior: " + " | ".join(PRIOR_SHIFTS))
    decision: str = option("argmax", "argmax | f1: the combination's no_relation factor of best validation micro-F1")

    def __post_init__(self) -> None:
        choice("ensemble.method", self.method, FIT_METHODS)
        choice("ensemble.pool", self.pool, POOLS)
        choice("ensemble.calibration", self.calibration, CALIBRATIONS)
        choice("ensemble.prior_shift", self.prior_shift, PRIOR_SHIFTS)
        choice("ensemble.decision", self.decision, DECISIONS)


@dataclass
class Member:
    name: str
    ids: list[str]
    labels: LabelSet
    probs: np.ndarray  # test rows x labels
    result: dict | None = None  # a run member's result.json
    oof: tuple[list[str], list[str], np.ndarray] | None = (
        None  # out-of-fold ids, gold labels, probs (NaN: not validated)
    )


def labelled_test(members: list[Member]) -> dict[str, str]:
    """id -> label of the test file every run member predicted, when they share one and it carries labels (a
    labelled sample); else empty."""
    tests = {(m.result or {}).get("data_files", {}).get("test", {}).get("path") for m in members}
    if len(tests) != 1 or None in tests or not Path(next(iter(tests))).exists():
        return {}
    examples, _ = read_examples(next(iter(tests)))
    return {ex.id: ex.label for ex in examples if ex.label is not None}


def load_member(path: Path, labels: LabelSet) -> Member:
    """A run folder (its submission and out-of-fold predictions) or a submission CSV read with `labels`."""
    if path.is_dir():
        result = finished(path)
        if not result.get("submission"):
            raise PipelineError(f"{path} has no submission (trained without a test file)")
        ids, _, probs = read_submission(result["submission"])
        has_oof = (path / "oof_probs.npy").exists()
        return Member(
            str(path),
            ids,
            LabelSet.from_dict(read_json(path / "labels.json")),
            probs,
            result,
            read_oof(path) if has_oof else None,
        )
    if path.suffix.lower() != ".csv" or not path.is_file():
        raise PipelineError(f"{path}: not a run folder or a submission CSV")
    ids, preds, probs = read_submission(path)
    if probs.shape[1] != len(labels):
        raise PipelineError(
            f"{path} has {probs.shape[1]} probabilities per row, the label set {labels.name!r} has {len(labels)}: pass --labels"
        )
    for i, (pred, row) in enumerate(zip(preds, probs), 1):
        if pred not in labels or row[labels.id(pred)] != row.max():
            argmax = labels.names[int(row.argmax())]
            raise PipelineError(
                f"{path} row {i}: pred_label {pred!r} is not the argmax {argmax!r} under the {labels.name!r} label order: pass --labels"
            )
    return Member(str(path), ids, labels, probs)


def same_sequence(what: str, a: Member, a_seq, b: Member, b_seq, unit: str) -> None:
    """Refuse when two members' sequences differ, naming the first difference."""
    for i, (x, y) in enumerate(zip(a_seq, b_seq)):
        if x != y:
            raise PipelineError(f"{what} differ: {b.name} has {y!r} at {unit} {i + 1} where {a.name} has {x!r}")
    if len(a_seq) != len(b_seq):
        raise PipelineError(f"{what} differ: {b.name} has {len(b_seq)} {unit}s, {a.name} has {len(a_seq)}")


def check_aligned(members: list[Member]) -> None:
    for m in members[1:]:
        same_sequence("label orders", members[0], members[0].labels.names, m, m.labels.names, "label")
        same_sequence("test ids", members[0], members[0].ids, m, m.ids, "row")


def check_unprocessed(member: Member) -> None:
    """Refuse a run member whose submission its own run already calibrated, shifted or scaled."""
    prior = (member.result or {}).get("test_prior") or {}
    # runs written before test_prior kept `prior_shift`: shifted where the estimate moved off the training share
    unshifted = prior.get("no_relation_estimated") == prior.get("no_relation_train")
    shift = prior.get("prior_shift", "none" if unshifted else "some")
    if shift != "none" or prior.get("temperature", 1.0) != 1.0 or prior.get("no_relation_scale", 1.0) != 1.0:
        raise PipelineError(
            f"{member.name}: its submission was already calibrated, prior-shifted or scaled by its run "
            "(train.calibration, prior_shift, decision); ensemble the runs trained without them"
        )


def oof_stack(members: list[Member]) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold probs [members, rows, labels], mask of rows every member validated); PipelineError if not comparable."""
    for m in members:
        if m.oof is None:
            raise PipelineError(
                f"{m.name} has no out-of-fold probabilities (a submission CSV, or a run trained with validation: none)"
            )
    first = members[0]
    for m in members[1:]:
        same_sequence("out-of-fold ids", first, first.oof[0], m, m.oof[0], "row")
        same_sequence("out-of-fold gold labels", first, first.oof[1], m, m.oof[1], "row")
    stack = np.stack([m.oof[2] for m in members])
    rows = ~np.isnan(stack).any(axis=(0, 2))
    if not rows.any():
        raise PipelineError("no out-of-fold row was validated by every member")
    return stack, rows


def pool_mean(weights: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """The weighted mean of the members' probabilities (soft voting); stack: [members, rows, labels]."""
    return np.tensordot(weights, stack, axes=1)


def pool_log(weights: np.ndarray, stack: np.ndarray) -> np.ndarray:
    """The weighted geometric mean, renormalised (a product of experts): a member sure a relation is wrong
    vetoes it, where soft voting would only halve it."""
    logits = np.tensordot(weights, np.log(np.clip(stack, FLOOR, None)), axes=1)
    return softmax(logits)


POOLS = {"mean": pool_mean, "log": pool_log}


def score(metric: str, gold: np.ndarray, probs: np.ndarray) -> float:
    return micro_f1(gold, probs.argmax(axis=1), probs.shape[1]) if metric == "micro_f1" else auprc(gold, probs)


def fit_weights(oof: np.ndarray, gold: np.ndarray, metric: str, pool: str = "mean") -> np.ndarray:
    """Weights maximising `metric` of the out-of-fold rows pooled with them; never below the best single member."""
    n = len(oof)

    def loss(theta: np.ndarray) -> float:
        return -score(metric, gold, POOLS[pool](softmax(theta), oof))

    singles = [score(metric, gold, member) for member in oof]
    starts = [np.zeros(n)] + [5.0 * one_hot for one_hot in np.eye(n)]
    fits = [
        minimize(
            loss,
            x0,
            method="Nelder-Mead",
            options={"initial_simplex": x0 + np.vstack([np.zeros(n), np.eye(n)]), "maxfev": 100 * n},
        )
        for x0 in starts
    ]
    best = min(fits, key=lambda fit: fit.fun)
    return softmax(best.x) if -best.fun >= max(singles) else np.eye(n)[int(np.argmax(singles))]


def cross_fitted(
    oof: np.ndarray, gold: np.ndarray, metric: str, parts: int, seed: int = 0, pool: str = "mean"
) -> np.ndarray:
    """Combined out-of-fold probabilities [rows, labels] where each row's weights were fit without it: rows are
    dealt into `parts` parts, label by label after a seeded shuffle (stratified), and each part gets the
    weights `fit_weights` finds on the others. Their score is not the score of the rows the weights fit."""
    order = np.random.default_rng(seed).permutation(len(gold))
    order = order[np.argsort(gold[order], kind="stable")]
    part = np.empty(len(gold), dtype=int)
    part[order] = np.arange(len(gold)) % parts
    combined = np.empty(oof.shape[1:])
    for k in range(parts):
        held = part == k
        combined[held] = POOLS[pool](fit_weights(oof[:, ~held], gold[~held], metric, pool), oof[:, held])
    return combined


def choose_weights(
    method: str,
    weights: list[float] | None,
    members: list[Member],
    oof: np.ndarray | None,
    gold: np.ndarray | None,
    pool: str = "mean",
) -> np.ndarray:
    if method == "mean":
        return np.full(len(members), 1 / len(members))
    if method == "weighted":
        w = np.asarray(weights, dtype=float)
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise PipelineError(
                f"--weights needs {len(members)} non-negative numbers with a positive sum, got {weights}"
            )
        return w / w.sum()
    return fit_weights(oof, gold, FIT_METRIC[method], pool)


def run_ensemble(
    paths: list[Path],
    method: str = "mean",
    weights: list[float] | None = None,
    labels: LabelSet | None = None,
    runs_dir: Path = Path("runs"),
    submissions_dir: Path = Path("submissions"),
    log=print,
    pool: str = "mean",
    calibration: str = "none",
    prior_shift: str = "none",
    decision: str = "argmax",
) -> Path:
    """Combine members into `runs/<id>-ensemble/` and a validated `submissions/<id>-ensemble.csv`; `pool`:
    mean (soft voting) or log (weighted geometric mean); `calibration`, `prior_shift`, `decision` as in a run."""
    started = time.time()
    post = (calibration, prior_shift, decision) != ("none", "none", "argmax")
    if len(paths) < 2 and not (post and method == "mean"):
        raise PipelineError("an ensemble needs at least two members (one: only to calibrate, shift or decide)")
    if method not in METHODS:
        raise PipelineError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if pool not in POOLS:
        raise PipelineError(f"unknown pool {pool!r}; use one of {', '.join(POOLS)}")
    if (weights is not None) != (method == "weighted"):
        raise PipelineError("--weights goes with --method weighted, which needs them")
    members = [load_member(Path(p), labels or LabelSet.klue()) for p in paths]
    check_aligned(members)
    label_set = members[0].labels
    try:
        oof, rows = oof_stack(members)
        gold_names = members[0].oof[1]
        gold = np.array(label_set.ids(np.array(gold_names, dtype=object)[rows]), dtype=int)
    except PipelineError as exc:
        if method in FIT_METRIC or post:
            what = f"{method} fits weights" if method in FIT_METRIC else "calibration, prior shift and decision fit"
            raise PipelineError(f"{what} on out-of-fold predictions: {exc}") from None
        log(f"no out-of-fold scores: {exc}")
        oof = rows = gold = None
    if post:
        for m in members:
            check_unprocessed(m)
    if calibration != "none":
        for i, m in enumerate(members):
            fitted = fit_calibration(oof[i, rows], gold, calibration)
            oof[i, rows], m.probs = fitted.apply(oof[i, rows]), fitted.apply(m.probs)
    w = choose_weights(method, weights, members, oof[:, rows] if oof is not None else None, gold, pool)
    probs = POOLS[pool](w, np.stack([m.probs for m in members]))
    probs /= probs.sum(axis=1, keepdims=True)
    test_prior = None
    if post:
        pooled = POOLS[pool](w, oof[:, rows])
        pooled /= pooled.sum(axis=1, keepdims=True)
        shares = np.bincount(gold, minlength=len(label_set)) / len(gold)
        reference = Reference.from_validation(shares, pooled, gold, "none", decision)
        probs, estimated = reference.shift(probs, prior_shift)
        test_prior = {
            "calibration": calibration,
            "prior_shift": prior_shift,
            "decision": decision,
            "no_relation_validated": float(shares[0]),
            "no_relation_estimated": float(estimated[0]),
            "no_relation_predicted": float((probs.argmax(axis=1) == 0).mean()),
            "no_relation_scale": reference.scale,
        }

    run_dir = new_run_dir(runs_dir, "ensemble")
    ids = members[0].ids
    submission = write_submission(submissions_dir / f"{run_dir.name}.csv", ids, probs, label_set)
    problems = validate_submission(submission, ids, label_set)
    if problems:
        raise PipelineError(f"the written submission failed validation: {problems[0]}")
    np.save(run_dir / "test_probs.npy", probs, allow_pickle=False)
    write_json(run_dir / "labels.json", label_set.to_dict())
    result = {"run_id": run_dir.name, "name": "ensemble", **common_fingerprints(members), "metrics": None}
    scored = labelled_test_metrics(labelled_test(members), ids, probs, label_set)
    if scored:
        result["test_metrics"] = scored
    info = {
        "members": [m.name for m in members],
        "method": method,
        "pool": pool,
        "weights": [float(x) for x in w],
        "member_metrics": None,
        "test_prior": test_prior,
    }
    if oof is not None:
        combined = POOLS[pool](w, oof)  # NaN where any member is NaN
        result["metrics"] = compute_metrics(gold, combined[rows])
        if (
            method in FIT_METRIC
        ):  # weights fit on these rows flatter them: score each part with weights fit on the rest
            parts = min(CROSS_FIT_PARTS, len(gold))
            if parts < 2:
                raise PipelineError(f"{method}: one out-of-fold row validated by every member is too few to score")
            info["in_sample_metrics"] = result["metrics"]
            combined[rows] = cross_fitted(oof[:, rows], gold, FIT_METRIC[method], parts, pool=pool)
            result["metrics"] = compute_metrics(gold, combined[rows])
            info["scored"] = (
                f"cross-fitted: each of {parts} parts of the out-of-fold rows scored with weights fit on the other "
                f"{parts - 1}; in_sample_metrics: the final weights scored on the rows they were fit on (optimistic)"
            )
        np.save(run_dir / "oof_probs.npy", combined, allow_pickle=False)
        write_json(run_dir / "oof_ids.json", {"ids": members[0].oof[0], "labels": gold_names})
        sentences = Path(members[0].name) / "oof_examples.jsonl"  # the same rows: the report's misclassified list
        if sentences.exists():
            shutil.copyfile(sentences, run_dir / "oof_examples.jsonl")
        if test_prior:  # each half of the combined rows decided with the factor fitted on the other half
            decided = combined[rows] / combined[rows].sum(axis=1, keepdims=True)
            test_prior["validation_decided"] = compute_metrics(
                gold, cross_fitted_decision(decided, gold, "none", decision)
            )
        info["member_metrics"] = {m.name: compute_metrics(gold, member[rows]) for m, member in zip(members, oof)}
    result.update(
        submission=str(submission), ensemble=info, environment=environment(), seconds=round(time.time() - started, 1)
    )
    write_json(run_dir / "result.json", result)
    return run_dir


def common_fingerprints(members: list[Member]) -> dict:
    """The members' train/test data fingerprints where every member is a run and they all agree, else None."""
    out = {}
    for key in ("train_fingerprint", "test_fingerprint"):
        values = {m.result.get(key) if m.result else None for m in members}
        out[key] = values.pop() if len(values) == 1 else None
    return out
