import warnings

import numpy as np
import pytest
import sklearn.metrics

from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.evaluation.metrics import accuracy, auprc, compute_metrics, micro_f1, per_class_report, softmax

# A 3-class example, class 0 = no_relation.
LABELS = np.array([0, 1, 2, 1])
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # argmax 0, label 0: right (but no_relation, so no TP for micro-F1)
        [0.1, 0.6, 0.3],  # argmax 1, label 1: TP for class 1
        [0.2, 0.5, 0.3],  # argmax 1, label 2: FP for class 1 and FN for class 2
        [0.5, 0.3, 0.2],  # argmax 0, label 1: FN for class 1
    ]
)
THREE = LabelSet(("no_relation", "a", "b"))


def klue_re_auprc(probs, labels):
    """The competition's function, verbatim apart from the class count."""
    labels = np.eye(30)[labels]
    score = np.zeros((30,))
    for c in range(30):
        targets_c = labels.take([c], axis=1).ravel()
        preds_c = probs.take([c], axis=1).ravel()
        precision, recall, _ = sklearn.metrics.precision_recall_curve(targets_c, preds_c)
        score[c] = sklearn.metrics.auc(recall, precision)
    return np.average(score) * 100.0


def test_micro_f1_by_hand():
    # Over classes {1, 2}: TP = 1 (row 1), FP = 1 (row 2), FN = 2 (rows 2, 3).
    # P = 1/2, R = 1/3, F1 = 2PR / (P + R) = (1/3) / (5/6) = 2/5.
    assert micro_f1(LABELS, PROBS.argmax(1), 3) == pytest.approx(40.0)


def test_micro_f1_excludes_no_relation():
    # Three correct no_relation predictions give no credit; accuracy counts them.
    labels, preds = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 2])
    assert micro_f1(labels, preds, 3) == 0.0
    assert accuracy(labels, preds, 3) == pytest.approx(75.0)
    # Predicting a relation for a no_relation example is a FP: TP = 1, FP = 1, FN = 1 -> 50.
    assert micro_f1(np.array([0, 0, 1, 1]), np.array([1, 0, 1, 0]), 3) == pytest.approx(50.0)
    # All no_relation on both sides: nothing to score, 0 (not 100).
    assert micro_f1(np.zeros(4, int), np.zeros(4, int), 3) == 0.0


def test_micro_f1_matches_sklearn_random():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 30, 500), rng.integers(0, 30, 500)
    expected = sklearn.metrics.f1_score(labels, preds, average="micro", labels=list(range(1, 30))) * 100
    assert micro_f1(labels, preds, 30) == pytest.approx(expected)
    assert micro_f1(labels, preds, 30) != pytest.approx(sklearn.metrics.f1_score(labels, preds, average="micro") * 100)


def test_auprc_by_hand():
    # PR points (recall, precision) from thresholds high to low, plus sklearn's closing (0, 1);
    # the area is the trapezoid rule over recall.
    # Class 0: y = [1,0,0,0], scores .7 .1 .2 .5 -> recall is 1 at every threshold, top precision 1:
    #   only the closing segment (1, 1) -> (0, 1) has width: area 1.
    # Class 1: y = [0,1,0,1], scores .2 .6 .5 .3 -> thresholds .6: (.5, 1); .5: (.5, .5); .3: (1, 2/3); .2: (1, .5).
    #   (1, 2/3) -> (.5, .5): .5 * (2/3 + 1/2) / 2 = 7/24; (.5, 1) -> (0, 1): 1/2. Area 19/24.
    # Class 2: y = [0,0,1,0], scores .1 .3 .3 .2 -> .3 (tie): (1, .5); .2: (1, 1/3); .1: (1, 1/4).
    #   (1, .5) -> (0, 1): (1/2 + 1) / 2 = 3/4.
    # Mean (24/24 + 19/24 + 18/24) / 3 = 61/72.
    assert auprc(LABELS, PROBS) == pytest.approx(100 * 61 / 72)


def test_auprc_class_without_positives_scores_half_without_warning():
    labels = np.array([0, 1, 0, 1])  # class 2 never occurs
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.3, 0.6, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = auprc(labels, probs)
    # Classes 0 and 1 are ranked perfectly (area 1); class 2 gets 0.5.
    assert score == pytest.approx(100 * 2.5 / 3)


def test_auprc_matches_competition_function_on_30_classes():
    rng = np.random.default_rng(42)
    for n, missing in [(400, []), (200, [3, 17, 29])]:
        labels = rng.choice([c for c in range(30) if c not in missing], size=n)
        probs = softmax(rng.normal(size=(n, 30)) * 3 + np.eye(30)[labels] * rng.uniform(0, 4, size=(n, 1)))
        probs[:5, 0] = probs[5:10, 0]  # some tied scores
        probs /= probs.sum(axis=1, keepdims=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected = klue_re_auprc(probs, labels)
        assert not np.isnan(expected)
        assert auprc(labels, probs) == pytest.approx(expected, abs=1e-9)


def test_auprc_matches_scikit_learn_with_ties_and_row_weights():
    # The hand-written curve against precision_recall_curve + auc, class by class: scores rounded to force
    # ties, row weights with zeros among them (scikit-learn leaves those rows out, so must we).
    rng = np.random.default_rng(7)
    n = 300
    labels = rng.choice([c for c in range(12) if c != 5], size=n)
    probs = np.round(softmax(rng.normal(size=(n, 12)) * 2 + np.eye(12)[labels] * 2), 2)
    probs /= probs.sum(axis=1, keepdims=True)
    weights = rng.uniform(0.1, 3, size=n) * (rng.random(n) > 0.2)
    for w in (None, weights):
        areas = []
        for c in range(12):
            if not ((labels == c) & (True if w is None else w > 0)).any():
                areas.append(0.5)
                continue
            precision, recall, _ = sklearn.metrics.precision_recall_curve(labels == c, probs[:, c], sample_weight=w)
            areas.append(sklearn.metrics.auc(recall, precision))
        assert auprc(labels, probs, w) == pytest.approx(100 * np.mean(areas), abs=1e-12)
    assert auprc(labels, probs, weights) != pytest.approx(auprc(labels, probs))
    with pytest.raises(PipelineError, match="weights for 300 rows"):
        auprc(labels, probs, weights[:10])


def test_compute_metrics_uses_argmax():
    assert compute_metrics(LABELS, PROBS) == pytest.approx(
        {"micro_f1": 40.0, "auprc": 100 * 61 / 72, "accuracy": 50.0}
    )


def test_per_class_report_by_hand():
    # preds [0, 1, 1, 0]. Class 0: predicted at rows 0, 3, one right: P 1/2, R 1/1, F1 2/3.
    # Class 1: predicted at rows 1, 2, one right, support 2: P 1/2, R 1/2, F1 1/2. Class 2: never predicted: 0.
    expected = [
        {"label": "no_relation", "support": 1, "precision": 50.0, "recall": 100.0, "f1": 200 / 3},
        {"label": "a", "support": 2, "precision": 50.0, "recall": 50.0, "f1": 50.0},
        {"label": "b", "support": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0},
    ]
    for report in (per_class_report(LABELS, PROBS, THREE), per_class_report(LABELS, PROBS.argmax(1), THREE)):
        assert len(report) == 3
        for got, want in zip(report, expected):
            assert got == pytest.approx(want)


def test_softmax_is_stable_and_normalised():
    out = softmax(np.array([[1000.0, 1001.0, 1002.0], [0.0, 0.0, np.log(2.0)]]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(out[0], e / e.sum())
    np.testing.assert_allclose(out[1], [0.25, 0.25, 0.5])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: micro_f1(np.array([], int), np.array([], int), 3), "empty"),
        (lambda: micro_f1(np.array([0, 1]), np.array([0]), 3), "shape"),
        (lambda: micro_f1(np.array([0, 3]), np.array([0, 1]), 3), "label id 3 is out of range"),
        (lambda: micro_f1(np.array([0, -1]), np.array([0, 1]), 3), "label id -1 is out of range"),
        (lambda: micro_f1(np.array([0, 1]), np.array([0, 5]), 3), "predictions: label id 5"),
        (lambda: micro_f1(np.array([0.0, 1.0]), np.array([0, 1]), 3), "integer"),
        (lambda: auprc(LABELS, PROBS[:3]), "3 rows but there are 4 labels"),
        (lambda: auprc(LABELS, PROBS[:, :2] / PROBS[:, :2].sum(1, keepdims=True)), "out of range for 2 classes"),
        (lambda: auprc(LABELS, np.log(PROBS)), "not a probability distribution"),
        (lambda: compute_metrics(LABELS, np.where(PROBS == 0.7, np.nan, PROBS)), "NaN"),
        (lambda: compute_metrics(LABELS, PROBS[0]), "2-D"),
        (lambda: per_class_report(LABELS, PROBS[:, :2], THREE), "2 columns"),
    ],
)
def test_invalid_inputs_raise_clear_errors(call, message):
    with pytest.raises(PipelineError, match=message):
        call()
