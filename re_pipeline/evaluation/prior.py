"""Test-prior correction (`train.calibration`, `train.prior_shift`): the label prior of the test rows estimated
without their labels, and the probabilities adjusted to it.

The competition's test has about 60% no_relation where train has 29%: a model fitted to train predicts too many
relations there. Under label shift p(x|y) stays and only π(y) moves, so p'(y|x) ∝ p(y|x) π_test(y) / π_src(y)
(Saerens, Latinne & Decaestecker 2002). That needs probabilities calibrated to a known prior π_src: a
class-weighted loss or an over-confident encoder breaks it, which is why the validation rows first fit a
calibration (temperature, or temperature and a bias per class: "BCTS", Alexandari et al. 2020) whose target is
their own label shares. The estimators of π_test:

- `em`: EM on the test's own posteriors, every class re-estimated (Saerens et al.);
- `em_no_relation`: the same, only the no-relation share moved, the relations' relative prior kept;
- `bbse`: black-box shift estimation (Lipton, Wang & Smola 2018): the validation confusion matrix C[ŷ, y]
  and the test's predicted-label shares μ solve C w = μ (non-negative least squares), π_test = w π_src;
- `bbse_no_relation`: the same on two classes, no relation or a relation: a 2×2 system, far less noisy.

Then `train.decision: f1` scales the no-relation probability by the factor that maximises the validated rows'
micro-F1 (which leaves no_relation out, and so rewards naming a relation more readily than argmax does), and
renormalises: a threshold chosen on training labels, baked into the probabilities so that the label is still
their argmax.

Scikit-learn and scipy have no label-shift estimators; these are a few lines of numpy each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, nnls

from ..core.errors import PipelineError

CALIBRATIONS = ("none", "temperature", "bcts")
FLOOR = 1e-12


def _adjust(probs: np.ndarray, factor: np.ndarray) -> np.ndarray:
    adjusted = probs * factor
    return adjusted / adjusted.sum(axis=1, keepdims=True)


@dataclass
class Calibration:
    """softmax(log p / temperature + bias) over the classes a row gives any probability (type-pair heads give
    the relations their pair never has exactly 0, and they stay 0)."""

    temperature: float = 1.0
    bias: list[float] | None = None

    def apply(self, probs: np.ndarray) -> np.ndarray:
        if self.temperature == 1.0 and self.bias is None:
            return probs
        z = np.log(np.clip(probs, FLOOR, None)) / self.temperature + (
            0.0 if self.bias is None else np.array(self.bias)
        )
        z = np.where(probs > 0, z, -np.inf)
        out = np.exp(z - z.max(axis=1, keepdims=True))
        return out / out.sum(axis=1, keepdims=True)


def fit_calibration(probs: np.ndarray, gold: np.ndarray, kind: str) -> Calibration:
    """The calibration of `kind` with the least negative log-likelihood of `gold` (L-BFGS, analytic gradient)."""
    if kind == "none":
        return Calibration()
    if kind not in CALIBRATIONS:
        raise PipelineError(f"unknown calibration {kind!r}; use one of {', '.join(CALIBRATIONS)}")
    logp = np.log(np.clip(probs, FLOOR, None))
    alive = probs > 0
    onehot = np.eye(probs.shape[1])[gold]
    n_bias = probs.shape[1] - 1 if kind == "bcts" else 0  # class 0's bias stays 0: softmax is shift-invariant

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = np.exp(theta[0])
        z = logp / t + np.concatenate([[0.0], theta[1:]]) if n_bias else logp / t
        z = np.where(alive, z, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        loss = -np.log(np.clip((q * onehot).sum(axis=1), FLOOR, None)).mean()
        diff = (q - onehot) / len(gold)
        grad_t = float((diff * np.where(alive, -logp / t, 0.0)).sum())
        return loss, np.concatenate([[grad_t], diff.sum(axis=0)[1:]]) if n_bias else np.array([grad_t])

    theta = minimize(nll, np.zeros(1 + n_bias), jac=True, method="L-BFGS-B").x
    return Calibration(float(np.exp(theta[0])), [0.0, *map(float, theta[1:])] if n_bias else None)


def em(
    probs: np.ndarray, prior: np.ndarray, iterations: int = 1000, tol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted probabilities and the estimated test prior, every class re-estimated."""
    prior = np.clip(prior, FLOOR, None)
    estimate = prior.copy()
    for _ in range(iterations):
        new = _adjust(probs, estimate / prior).mean(axis=0)
        done = np.abs(new - estimate).max() < tol
        estimate = new
        if done:
            break
    return _adjust(probs, estimate / prior), estimate


def _no_relation_prior(prior: np.ndarray, share: float) -> np.ndarray:
    """`prior` with class 0 set to `share` and the relations scaled to fill the rest."""
    estimate = prior * (1 - share) / (1 - prior[0])
    estimate[0] = share
    return estimate


def em_no_relation(
    probs: np.ndarray, prior: np.ndarray, iterations: int = 1000, tol: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted probabilities and the estimated test prior, only the no-relation share (class 0) re-estimated."""
    prior = np.asarray(prior, dtype=float).copy()
    prior[0] = float(np.clip(prior[0], FLOOR, 1 - FLOOR))
    share = prior[0]
    for _ in range(iterations):
        new = float(_adjust(probs, _no_relation_prior(prior, share) / prior)[:, 0].mean())
        done = abs(new - share) < tol
        share = new
        if done:
            break
    estimate = _no_relation_prior(prior, share)
    return _adjust(probs, estimate / prior), estimate


def bbse(probs: np.ndarray, prior: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted probabilities and the test prior from C w = μ over every class (`confusion`: C[ŷ, y], joint
    shares on the validation rows). Classes the validation rows lack keep their prior (w = 1)."""
    predicted = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)
    seen = confusion.sum(axis=0) > 0
    w = np.ones(len(prior))
    w[seen] = nnls(confusion[:, seen], predicted)[0]
    estimate = np.maximum(w * prior, FLOOR)
    estimate /= estimate.sum()
    return _adjust(probs, estimate / np.clip(prior, FLOOR, None)), estimate


def bbse_no_relation(probs: np.ndarray, prior: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted probabilities and the test prior from the 2×2 system of no relation against any relation."""
    c = np.array([[confusion[0, 0], confusion[0, 1:].sum()], [confusion[1:, 0].sum(), confusion[1:, 1:].sum()]])
    predicted = float((probs.argmax(axis=1) == 0).mean())
    w = nnls(c, np.array([predicted, 1 - predicted]))[0]
    share = float(np.clip(w[0] * prior[0] / max(w[0] * prior[0] + w[1] * (1 - prior[0]), FLOOR), 0.0, 1.0))
    estimate = _no_relation_prior(np.asarray(prior, dtype=float).copy(), share)
    return _adjust(probs, np.maximum(estimate, FLOOR) / np.clip(prior, FLOOR, None)), estimate


def no_relation_scale(probs: np.ndarray, gold: np.ndarray, grid: int = 121) -> float:
    """The factor on the no-relation probability (e^-3 to e^3, log-spaced) with the best micro-F1 of `gold`;
    the smallest change from 1 among ties."""
    factors = np.exp(np.linspace(-3, 3, grid))
    relation = gold != 0

    def f1(factor: float) -> float:
        predicted = (probs * np.r_[factor, np.ones(probs.shape[1] - 1)]).argmax(axis=1)
        named = predicted != 0
        hits = (named & (predicted == gold)).sum()
        return 2 * hits / max(named.sum() + relation.sum(), 1)

    scores = np.array([f1(f) for f in factors])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(factors[best[np.argmin(np.abs(np.log(factors[best])))]])


ESTIMATORS = {"em": em, "em_no_relation": em_no_relation}
CONFUSION_ESTIMATORS = {"bbse": bbse, "bbse_no_relation": bbse_no_relation}
PRIOR_SHIFTS = ("none", *ESTIMATORS, *CONFUSION_ESTIMATORS)
DECISIONS = ("argmax", "f1")


@dataclass
class Reference:
    """What a run knows about its probabilities before it sees the test: the training prior, and from its
    validated rows a calibration, the prior that calibration targets (their label shares) and the confusion
    matrix C[ŷ, y] of the calibrated probabilities, and the no-relation factor of `train.decision: f1`. Saved
    as the run's prior.json for its Predictor."""

    train: list[float]
    calibration: Calibration = field(default_factory=Calibration)
    source: list[float] | None = None
    confusion: list[list[float]] | None = None
    scale: float = 1.0

    @classmethod
    def from_validation(
        cls,
        train_prior: np.ndarray,
        probs: np.ndarray | None,
        gold: np.ndarray | None,
        calibration: str = "none",
        decision: str = "argmax",
    ) -> Reference:
        """Fit the calibration and the decision on validated rows (probs [rows, labels], gold ids); with none
        and argmax no rows are needed."""
        if probs is None or not len(probs):
            if calibration != "none" or decision != "argmax":
                raise PipelineError(
                    f"train.calibration {calibration} and train.decision {decision} are fitted on validated rows; "
                    "this run has none"
                )
            return cls(list(map(float, train_prior)))
        if decision not in DECISIONS:
            raise PipelineError(f"unknown decision {decision!r}; use one of {', '.join(DECISIONS)}")
        fitted = fit_calibration(probs, gold, calibration)
        calibrated = fitted.apply(probs)
        k = probs.shape[1]
        confusion = np.zeros((k, k))
        np.add.at(confusion, (calibrated.argmax(axis=1), gold), 1 / len(gold))
        source = list(map(float, np.bincount(gold, minlength=k) / len(gold)))
        scale = no_relation_scale(calibrated, gold) if decision == "f1" else 1.0
        return cls(list(map(float, train_prior)), fitted, source, confusion.tolist(), scale)

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        return cls(
            data["train"],
            Calibration(**data.get("calibration", {})),
            data.get("source"),
            data.get("confusion"),
            data.get("scale", 1.0),
        )

    def to_dict(self) -> dict:
        return {
            "train": self.train,
            "calibration": {"temperature": self.calibration.temperature, "bias": self.calibration.bias},
            "source": self.source,
            "confusion": self.confusion,
            "scale": self.scale,
        }

    def shift(self, probs: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
        """The probabilities calibrated, adjusted to the test prior `method` estimates and scaled by the
        decision's no-relation factor; and that estimated prior."""
        prior = np.asarray(self.source or self.train, dtype=float)
        probs = self.calibration.apply(probs)
        if method in ESTIMATORS:
            probs, prior = ESTIMATORS[method](probs, prior)
        elif method in CONFUSION_ESTIMATORS:
            if self.confusion is None:
                raise PipelineError(f"train.prior_shift: {method} needs a confusion matrix of validated rows")
            probs, prior = CONFUSION_ESTIMATORS[method](probs, prior, np.asarray(self.confusion))
        elif method != "none":
            raise PipelineError(f"unknown prior shift {method!r}; use one of {', '.join(PRIOR_SHIFTS)}")
        if self.scale != 1.0:
            probs = _adjust(probs, np.r_[self.scale, np.ones(probs.shape[1] - 1)])
        return probs, prior


def cross_fitted_decision(
    probs: np.ndarray, gold: np.ndarray, calibration: str, decision: str, seed: int = 0
) -> np.ndarray:
    """The validated rows' probabilities calibrated and decided, each half with what was fitted on the other
    half: scores of these are not flattered by fitting on the rows they score."""
    half = np.random.default_rng(seed).random(len(gold)) < 0.5
    out = np.empty_like(probs)
    shares = np.bincount(gold, minlength=probs.shape[1]) / len(gold)
    for part in (half, ~half):
        reference = Reference.from_validation(shares, probs[~part], gold[~part], calibration, decision)
        out[part] = reference.shift(probs[part], "none")[0]
    return out
