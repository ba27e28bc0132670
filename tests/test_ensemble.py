"""Ensembles: soft voting, given and fitted weights, refusals of misaligned members, CSV members, and end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_pipeline import TINY
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.io_utils import write_json
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.sample import write_sample
from re_pipeline.evaluation.metrics import softmax
from re_pipeline.pipeline import run_pipeline
from re_pipeline.records.runs import summarize
from re_pipeline.submit import ensemble
from re_pipeline.submit.ensemble import fit_weights, run_ensemble, score
from re_pipeline.submit.submission import read_submission, validate_submission, write_submission

pytestmark = pytest.mark.usefixtures("wide_console")

TOY = LabelSet(("no_relation", "a:x", "b:y", "c:z"), "toy")
N_TEST, N_OOF = 12, 30


def random_probs(rng, n, gold=None, strength=1.0):
    """Softmax of noise, pushed towards `gold` by `strength`."""
    logits = rng.normal(size=(n, len(TOY)))
    if gold is not None:
        logits[np.arange(n), gold] += strength
    return softmax(logits)


def fake_run(path, seed, labels=TOY, test_ids=None, oof_ids=None, oof=True):
    """A finished run folder with random test and out-of-fold probabilities (the last 5 OOF rows never validated)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    ids = test_ids or [str(i) for i in range(N_TEST)]
    submission = write_submission(path / "sub.csv", ids, random_probs(rng, N_TEST), labels)
    write_json(path / "labels.json", labels.to_dict())
    write_json(
        path / "result.json",
        {
            "run_id": path.name,
            "name": "fake",
            "train_fingerprint": "f1",
            "test_fingerprint": "t1",
            "submission": str(submission),
            "seconds": 1.0,
        },
    )
    if oof:
        gold = np.random.default_rng(0).integers(len(TOY), size=N_OOF)
        probs = random_probs(rng, N_OOF, gold, strength=1.5)
        probs[-5:] = np.nan
        np.save(path / "oof_probs.npy", probs)
        write_json(
            path / "oof_ids.json",
            {"ids": oof_ids or [f"t{i}" for i in range(N_OOF)], "labels": [TOY.names[g] for g in gold]},
        )
    return path


def ensemble_in(tmp_path, members, **kwargs):
    return run_ensemble(
        members, runs_dir=tmp_path / "runs", submissions_dir=tmp_path / "subs", log=lambda m: None, **kwargs
    )


@pytest.mark.parametrize("method, weights, expected", [("mean", None, (0.5, 0.5)), ("weighted", [3, 1], (0.75, 0.25))])
def test_soft_voting_is_the_weighted_mean(tmp_path, method, weights, expected):
    a, b = fake_run(tmp_path / "a", 1), fake_run(tmp_path / "b", 2)
    run_dir = ensemble_in(tmp_path, [a, b], method=method, weights=weights)
    result = json.loads((run_dir / "result.json").read_text())
    ids, _, probs = read_submission(result["submission"])
    member_probs = [read_submission(m / "sub.csv")[2] for m in (a, b)]
    np.testing.assert_allclose(probs, expected[0] * member_probs[0] + expected[1] * member_probs[1], atol=1e-12)
    assert validate_submission(result["submission"], ids, TOY) == [] and run_dir.name.endswith("-ensemble")
    assert result["ensemble"]["weights"] == pytest.approx(expected) and set(result["ensemble"]["member_metrics"]) == {
        str(a),
        str(b),
    }
    oof = np.load(run_dir / "oof_probs.npy")
    member_oof = [np.load(m / "oof_probs.npy") for m in (a, b)]
    np.testing.assert_allclose(oof, expected[0] * member_oof[0] + expected[1] * member_oof[1])
    row = summarize(run_dir)
    assert (
        row["status"] == "done"
        and row["config"] == "ensemble"
        and row["data"] == "f1"
        and row["micro_f1"] == result["metrics"]["micro_f1"]
    )


def test_members_answering_rows_in_another_order_are_refused(tmp_path):
    ids = [str(i) for i in range(N_TEST)]
    ids[2], ids[3] = ids[3], ids[2]
    a, b = fake_run(tmp_path / "a", 1), fake_run(tmp_path / "b", 2, test_ids=ids)
    with pytest.raises(PipelineError, match=rf"test ids differ: {b} has '3' at row 3 where {a} has '2'"):
        ensemble_in(tmp_path, [a, b])


def test_members_with_another_label_order_are_refused(tmp_path):
    swapped = LabelSet(("no_relation", "b:y", "a:x", "c:z"), "swapped")
    a, b = fake_run(tmp_path / "a", 1), fake_run(tmp_path / "b", 2, labels=swapped)
    with pytest.raises(PipelineError, match=rf"label orders differ: {b} has 'b:y' at label 2 where {a} has 'a:x'"):
        ensemble_in(tmp_path, [a, b])


def members_oof(seed, n_members=3, n=80):
    rng = np.random.default_rng(seed)
    gold = rng.integers(len(TOY), size=n)
    return np.stack([random_probs(rng, n, gold, strength=s) for s in rng.uniform(0, 2.5, n_members)]), gold


@pytest.mark.parametrize("metric", ["micro_f1", "auprc"])
def test_fitted_weights_never_score_below_the_best_single_member(metric):
    for seed in range(3):
        oof, gold = members_oof(seed)
        weights = fit_weights(oof, gold, metric)
        assert (weights >= 0).all() and weights.sum() == pytest.approx(1)
        assert score(metric, gold, np.tensordot(weights, oof, axes=1)) >= max(score(metric, gold, m) for m in oof)


def test_a_fit_worse_than_the_best_member_falls_back_to_it(monkeypatch):
    oof, gold = members_oof(7)
    singles = [score("micro_f1", gold, m) for m in oof]
    worst = int(np.argmin(singles))
    monkeypatch.setattr(
        ensemble, "minimize", lambda *a, **k: SimpleNamespace(x=20.0 * np.eye(3)[worst], fun=-singles[worst])
    )
    np.testing.assert_array_equal(fit_weights(oof, gold, "micro_f1"), np.eye(3)[int(np.argmax(singles))])


def test_fitting_needs_the_same_out_of_fold_rows_from_every_member(tmp_path):
    a, b = (
        fake_run(tmp_path / "a", 1),
        fake_run(tmp_path / "b", 2, oof_ids=[f"t{i}" for i in range(N_OOF - 1)] + ["other"]),
    )
    with pytest.raises(
        PipelineError, match=rf"fit-f1 fits weights .* out-of-fold ids differ: {b} has 'other' at row {N_OOF}"
    ):
        ensemble_in(tmp_path, [a, b], method="fit-f1")
    c = fake_run(tmp_path / "c", 3, oof=False)
    with pytest.raises(PipelineError, match=f"{c} has no out-of-fold probabilities"):
        ensemble_in(tmp_path, [a, c], method="fit-auprc")
    assert (
        json.loads((ensemble_in(tmp_path, [a, c]) / "result.json").read_text())["metrics"] is None
    )  # mean works without OOF


def test_csv_members_through_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    klue, ids = LabelSet.klue(), [str(i) for i in range(N_TEST)]
    csvs = [write_submission(tmp_path / f"{n}.csv", ids, softmax(rng.normal(size=(N_TEST, 30))), klue) for n in "ab"]
    args = ["--runs-dir", str(tmp_path / "runs"), "--submissions-dir", str(tmp_path / "subs")]
    result = CliRunner().invoke(app, ["ensemble", *map(str, csvs), *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    (submission,) = (tmp_path / "subs").glob("*-ensemble.csv")
    assert validate_submission(submission, ids, klue) == []
    np.testing.assert_allclose(
        read_submission(submission)[2], (read_submission(csvs[0])[2] + read_submission(csvs[1])[2]) / 2
    )
    toy = write_submission(tmp_path / "toy.csv", ids, random_probs(rng, N_TEST), TOY)
    refused = CliRunner().invoke(app, ["ensemble", str(csvs[0]), str(toy), *args], env={"COLUMNS": "250"})
    assert refused.exit_code == 2 and "toy.csv has 4 probabilities per row" in refused.output
    fitted = CliRunner().invoke(
        app, ["ensemble", *map(str, csvs), "--method", "fit-f1", *args], env={"COLUMNS": "250"}
    )
    assert fitted.exit_code == 2 and "a.csv has no out-of-fold probabilities" in fitted.output


def test_two_tiny_runs_make_a_fitted_ensemble_submission(tmp_path):
    train, test = write_sample(tmp_path / "sample", n_train=160, n_test=40)
    runs = []
    for seed in (1, 2):
        cfg = load_config(
            None, [*TINY, f"data.train={train}", f"data.test={test}", f"seed={seed}", "train.max_steps=10"]
        )
        runs.append(
            run_pipeline(
                cfg,
                run_dir=tmp_path / "runs" / f"r{seed}",
                submissions_dir=tmp_path / "subs",
                log=lambda m: None,
                cache=tmp_path / "cache",
            )
        )
    args = ["--runs-dir", str(tmp_path / "runs"), "--submissions-dir", str(tmp_path / "subs"), "--method", "fit-f1"]
    result = CliRunner().invoke(app, ["ensemble", *map(str, runs), *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").glob("*-ensemble")
    info = json.loads((run_dir / "result.json").read_text())
    assert validate_submission(info["submission"], [str(i) for i in range(40)], LabelSet.klue()) == []
    members = info["ensemble"]["member_metrics"]
    assert info["ensemble"]["in_sample_metrics"]["micro_f1"] >= max(m["micro_f1"] for m in members.values())
    assert sum(info["ensemble"]["weights"]) == pytest.approx(1) and "cross-fitted" in result.output


def test_fitted_weights_are_scored_on_rows_they_were_not_fit_on(tmp_path, monkeypatch):
    a, b = fake_run(tmp_path / "a", 1), fake_run(tmp_path / "b", 2)
    fits, real = [], ensemble.fit_weights

    def spy(oof, gold, metric, pool):
        fits.append(len(gold))
        return real(oof, gold, metric, pool)

    monkeypatch.setattr(ensemble, "fit_weights", spy)
    result = json.loads((ensemble_in(tmp_path, [a, b], method="fit-auprc") / "result.json").read_text())
    validated = N_OOF - 5
    assert fits[0] == validated  # the submission's weights: every validated row
    assert len(fits) == 6 and sum(validated - n for n in fits[1:]) == validated  # 5 fits, each without its fold
    info = result["ensemble"]
    assert info["scored"].startswith("cross-fitted") and set(info["in_sample_metrics"]) == set(result["metrics"])
    member_best = max(m["auprc"] for m in info["member_metrics"].values())
    assert info["in_sample_metrics"]["auprc"] >= member_best  # in sample, the fit never loses to a member


def test_weights_must_fit_the_method_and_the_members(tmp_path):
    a, b = fake_run(tmp_path / "a", 1), fake_run(tmp_path / "b", 2)
    with pytest.raises(PipelineError, match="--weights needs 2 non-negative numbers"):
        ensemble_in(tmp_path, [a, b], method="weighted", weights=[1.0])
    with pytest.raises(PipelineError, match="--weights goes with --method weighted"):
        ensemble_in(tmp_path, [a, b], method="mean", weights=[1.0, 2.0])
    with pytest.raises(PipelineError, match="unknown method 'median'"):
        ensemble_in(tmp_path, [a, b], method="median")


def test_log_pooling_is_the_renormalised_weighted_geometric_mean_and_lets_a_member_veto(tmp_path):
    a, b = fake_run(tmp_path / "a", 1), fake_run(tmp_path / "b", 2)
    run_dir = ensemble_in(tmp_path, [a, b], method="weighted", weights=[3, 1], pool="log")
    result = json.loads((run_dir / "result.json").read_text())
    _, _, probs = read_submission(result["submission"])
    pa, pb = (read_submission(m / "sub.csv")[2] for m in (a, b))
    geometric = pa**0.75 * pb**0.25
    np.testing.assert_allclose(probs, geometric / geometric.sum(1, keepdims=True), atol=1e-9)
    assert result["ensemble"]["pool"] == "log"
    vetoed = ensemble.pool_log(np.array([0.5, 0.5]), np.array([[[0.5, 0.5]], [[1.0, 0.0]]]))
    mean = ensemble.pool_mean(np.array([0.5, 0.5]), np.array([[[0.5, 0.5]], [[1.0, 0.0]]]))
    assert vetoed[0, 1] < 1e-5 and mean[0, 1] == 0.25
    with pytest.raises(PipelineError, match="unknown pool"):
        ensemble_in(tmp_path, [a, b], pool="max")
