"""Reweighting validation rows to the test's make-up (hand-computed cases), weighted metrics, the shift
table, and the test-prior correction."""

from __future__ import annotations

import numpy as np
import pytest

from re_pipeline.data.schema import Entity, Example
from re_pipeline.labels import LabelSet
from re_pipeline.metrics import compute_metrics
from re_pipeline.prior import PRIOR_SHIFTS, em, em_no_relation
from re_pipeline.shift import raking_weights, shift_tables, weights_like_test


def row(i, subj_type="PER", obj_type="LOC", source="wikipedia", label="no_relation", subj="가", obj="나"):
    sentence = f"{subj} {obj} 문장 {i}"
    return Example(
        str(i),
        sentence,
        Entity(subj, 0, len(subj) - 1, subj_type),
        Entity(obj, len(subj) + 1, len(subj) + len(obj), obj_type),
        label,
        source,
    )


def test_one_key_reweighting_matches_the_hand_computation():
    # validation pairs A, A, B; the test has A and B half each: A rows weigh 0.75, the B row 1.5 (mean 1)
    weights = raking_weights({"pair": ["A", "A", "B"]}, {"pair": {"A": 0.5, "B": 0.5}})
    np.testing.assert_allclose(weights, [0.75, 0.75, 1.5])


def test_two_keys_reach_both_test_margins_and_unknown_categories_weigh_nothing():
    pairs = ["A", "A", "B", "B", "C"]
    sources = ["x", "y", "x", "y", "x"]
    weights = raking_weights(
        {"pair": pairs, "source": sources}, {"pair": {"A": 0.8, "B": 0.2}, "source": {"x": 0.3, "y": 0.7}}
    )
    share = lambda key, cats: {c: weights[np.array(cats) == c].sum() / weights.sum() for c in set(cats)}  # noqa: E731
    assert share("pair", pairs) == pytest.approx({"A": 0.8, "B": 0.2, "C": 0.0})
    assert share("source", sources) == pytest.approx({"x": 0.3, "y": 0.7})


def test_test_weights_use_type_pairs_and_sources():
    val = [row(0, obj_type="LOC"), row(1, obj_type="LOC"), row(2, obj_type="POH")]
    test = [row(9, obj_type="POH"), row(10, obj_type="LOC")]
    np.testing.assert_allclose(weights_like_test(val, test), [0.75, 0.75, 1.5])


def test_weighted_metrics_equal_the_metrics_of_repeated_rows():
    gold = np.array([1, 2, 0, 1])
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.3, 0.3, 0.4]])
    weighted = compute_metrics(gold, probs, np.array([2.0, 1.0, 1.0, 3.0]))
    repeated = compute_metrics(np.repeat(gold, [2, 1, 1, 3]), np.repeat(probs, [2, 1, 1, 3], axis=0))
    assert weighted == pytest.approx(repeated)


def test_the_shift_table_compares_train_validation_and_test():
    train = [row(0, subj="갑", obj="을"), row(1, subj="병", obj="정")]
    val = [row(2, subj="갑", obj="무")]
    test = [row(3, obj_type="POH", source="wikitree", subj="갑", obj="을"), row(4, obj_type="POH", source="wikitree")]
    labels = LabelSet(("no_relation", "per:title"))
    tables = shift_tables(train, val, test, np.array([[0.2, 0.8], [0.9, 0.1]]), labels)
    pairs = {r["type pair"]: r for r in tables["type pair"]}
    assert pairs["PER|POH"] == {"type pair": "PER|POH", "train %": 0.0, "validation %": 0.0, "test %": 100.0}
    seen = {r["measure"]: r for r in tables["seen in training"]}
    assert seen["subject word seen as a training subject %"] == {
        "measure": "subject word seen as a training subject %",
        "validation %": 100.0,
        "test %": 50.0,
    }
    assert seen["(subject, object) pair seen in training %"]["test %"] == 50.0
    predicted = {r["label"]: r for r in tables["predicted labels"]}
    assert predicted["per:title"]["test predicted %"] == 50.0 and predicted["no_relation"]["training prior %"] == 100.0


def sample_shifted(n=4000, seed=0):
    """Posteriors of a calibrated two-class model under a training prior of 0.3 / 0.7, on test rows drawn
    with prior 0.6 / 0.4: the scores are the same, only the class mix moved."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)  # test: 60% class 0
    x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    like = np.stack([np.exp(-((x + 1) ** 2) / 2), np.exp(-((x - 1) ** 2) / 2)], axis=1)
    train_prior = np.array([0.3, 0.7])
    post = like * train_prior
    return post / post.sum(1, keepdims=True), train_prior


@pytest.mark.parametrize("method", [em, em_no_relation])
def test_em_recovers_a_known_prior_shift(method):
    probs, prior = sample_shifted()
    adjusted, estimated = method(probs, prior)
    assert abs(estimated[0] - 0.6) < 0.04 and np.allclose(adjusted.sum(1), 1)
    assert (adjusted[:, 0] > probs[:, 0]).all()


def test_em_no_relation_keeps_the_relations_relative_prior():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=300)
    prior = np.array([0.3, 0.4, 0.2, 0.1])
    adjusted, estimated = em_no_relation(probs, prior)
    np.testing.assert_allclose(estimated[1:] / estimated[1:].sum(), prior[1:] / prior[1:].sum())
    np.testing.assert_allclose(adjusted[:, 1] / adjusted[:, 2], probs[:, 1] / probs[:, 2])


def test_no_prior_shift_changes_nothing():
    probs, prior = sample_shifted(100)
    out, estimated = PRIOR_SHIFTS["none"](probs, prior)
    assert out is probs and estimated is prior
