"""Test-prior correction (`train.prior_shift`): the label prior of the test rows re-estimated from their own
predicted probabilities, and the probabilities adjusted to it (Saerens, Latinne & Decaestecker 2002).

The competition's test has 60% no_relation where train has 29%: a model calibrated on train over-predicts
relations there. EM needs no test labels: it iterates p'(y|x) ∝ p(y|x) π_test(y) / π_train(y) and
π_test = mean p'(y|x) over the test rows. `em_no_relation` re-estimates only the no-relation share and keeps
the relations' relative training prior.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _adjust(probs: np.ndarray, factor: np.ndarray) -> np.ndarray:
    adjusted = probs * factor
    return adjusted / adjusted.sum(axis=1, keepdims=True)


def em(
    probs: np.ndarray, prior: np.ndarray, iterations: int = 1000, tol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted probabilities and the estimated test prior, every class re-estimated."""
    prior = np.clip(prior, 1e-12, None)
    estimate = prior.copy()
    for _ in range(iterations):
        new = _adjust(probs, estimate / prior).mean(axis=0)
        done = np.abs(new - estimate).max() < tol
        estimate = new
        if done:
            break
    return _adjust(probs, estimate / prior), estimate


def em_no_relation(
    probs: np.ndarray, prior: np.ndarray, iterations: int = 1000, tol: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted probabilities and the estimated test prior, only the no-relation share (class 0) re-estimated."""
    base = float(np.clip(prior[0], 1e-12, 1 - 1e-12))
    share = base

    def factor(r: float) -> np.ndarray:
        f = np.full(probs.shape[1], (1 - r) / (1 - base))
        f[0] = r / base
        return f

    for _ in range(iterations):
        new = float(_adjust(probs, factor(share))[:, 0].mean())
        done = abs(new - share) < tol
        share = new
        if done:
            break
    estimate = prior * (1 - share) / (1 - base)
    estimate[0] = share
    return _adjust(probs, factor(share)), estimate


def none(probs: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities as they are; the test prior taken to be the training prior."""
    return probs, prior


PRIOR_SHIFTS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "none": none,
    "em": em,
    "em_no_relation": em_no_relation,
}
