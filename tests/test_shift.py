"""Reweighting validation rows to the test's make-up (hand-computed cases), weighted metrics, the shift
table, and the test-prior correction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.schema import Entity, Example
from re_pipeline.evaluation.metrics import compute_metrics
from re_pipeline.evaluation.prior import Calibration, Reference, em, em_no_relation, fit_calibration, no_relation_scale
from re_pipeline.evaluation.shift import raking_weights, shift_tables, weights_like_test


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
    out, estimated = Reference(list(prior)).shift(probs, "none")
    assert out is probs and np.array_equal(estimated, prior)


def sample_logits(n=20000, k=4, seed=0):
    """Logits whose softmax is the true posterior, and labels drawn from it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, size=(n, k))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    gold = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, gold


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_temperature_calibration_undoes_known_over_confidence():
    z, gold = sample_logits()
    fitted = fit_calibration(softmax(2 * z), gold, "temperature")  # the model's logits twice the true ones
    assert fitted.temperature == pytest.approx(2.0, rel=0.05) and fitted.bias is None
    np.testing.assert_allclose(fitted.apply(softmax(2 * z)), softmax(2 * z / fitted.temperature), atol=1e-9)


def test_bcts_undoes_a_known_bias_per_class():
    z, gold = sample_logits()
    skew = np.array([0.0, 1.0, -0.5, 0.7])  # what a class-weighted loss does: a shift of each class's logit
    fitted = fit_calibration(softmax(z + skew), gold, "bcts")
    assert fitted.temperature == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(fitted.bias, -skew, atol=0.08)


def test_calibration_keeps_the_relations_a_pair_head_forbids_at_zero():
    probs = np.array([[0.7, 0.3, 0.0], [0.2, 0.0, 0.8]])
    out = Calibration(0.5, [0.0, 2.0, -1.0]).apply(probs)
    assert out[0, 2] == 0 and out[1, 1] == 0 and np.allclose(out.sum(1), 1)


def val_and_test(seed=0):
    """A calibrated two-class model's validation rows (training prior 0.3 / 0.7, with labels) and test rows
    (prior 0.6 / 0.4)."""
    rng = np.random.default_rng(seed)
    test, prior = sample_shifted(4000, seed)
    y = (rng.random(4000) < 0.7).astype(int)
    x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    like = np.stack([np.exp(-((x + 1) ** 2) / 2), np.exp(-((x - 1) ** 2) / 2)], axis=1) * prior
    return like / like.sum(1, keepdims=True), y, test, prior


@pytest.mark.parametrize("method", ["em", "em_no_relation", "bbse", "bbse_no_relation"])
def test_every_estimator_recovers_a_known_label_shift(method):
    val, gold, test, prior = val_and_test()
    adjusted, estimated = Reference.from_validation(prior, val, gold).shift(test, method)
    assert abs(estimated[0] - 0.6) < 0.05 and np.allclose(adjusted.sum(1), 1)


def test_confusion_estimators_need_validated_rows():
    _, _, test, prior = val_and_test()
    with pytest.raises(PipelineError, match="confusion matrix"):
        Reference(list(prior)).shift(test, "bbse")
    with pytest.raises(PipelineError, match="fitted on validated rows"):
        Reference.from_validation(prior, None, None, "bcts")


def f1(probs, gold):
    predicted = probs.argmax(1)
    hits = ((predicted != 0) & (predicted == gold)).sum()
    return 2 * hits / ((predicted != 0).sum() + (gold != 0).sum())


def test_the_f1_decision_names_relations_argmax_leaves_as_no_relation():
    # relation rows whose no_relation probability is a little above their relation's: argmax misses them
    probs = np.array([[0.5, 0.45, 0.05], [0.52, 0.08, 0.4], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    gold = np.array([1, 2, 0, 1])
    scale = no_relation_scale(probs, gold)
    scaled = Reference([0.25, 0.5, 0.25], scale=scale).shift(probs, "none")[0]
    assert scale < 1 and f1(scaled, gold) == 1.0 > f1(probs, gold)
    assert no_relation_scale(scaled, gold) == 1.0  # already right: the factor nearest 1 among the best


def test_a_reference_survives_its_json():
    val, gold, test, prior = val_and_test()
    reference = Reference.from_validation(prior, val, gold, "bcts", "f1")
    again = Reference.from_dict(json.loads(json.dumps(reference.to_dict())))
    for method in ("none", "em", "bbse_no_relation"):
        np.testing.assert_allclose(again.shift(test, method)[0], reference.shift(test, method)[0])
    assert Reference.from_dict({"train": list(prior)}).shift(test, "none")[0] is test  # a run's older prior.json
