"""The command line, run as a user would: `re-pipeline clean` and `validate-submission`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.core.labels import LabelSet
from re_pipeline.submit.submission import write_submission

runner = CliRunner()


def test_clean_writes_outputs_and_summary(competition_csv, tmp_path):
    rows = list(csv.DictReader(open(competition_csv, encoding="utf-8")))
    rows.append(dict(rows[0], id="9"))  # an exact duplicate
    with open(competition_csv, "a", encoding="utf-8", newline="") as fh:
        csv.DictWriter(fh, fieldnames=list(rows[0])).writerow(rows[-1])
    out = tmp_path / "out"
    result = runner.invoke(app, ["clean", str(competition_csv), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train.summary.json").read_text())
    assert summary["counts"] == {"read": 5, "as_is": 4, "repaired": 0, "dropped": 1, "quarantined": 0}
    assert len(list(csv.DictReader(open(out / "train.clean.csv", encoding="utf-8")))) == 4
    audit = list(csv.DictReader(open(out / "train.audit.csv", encoding="utf-8")))
    assert [(a["id"], a["rule"]) for a in audit] == [("9", "exact_duplicate")]


def test_clean_rejects_unknown_config_key_in_one_line(competition_csv, tmp_path):
    result = runner.invoke(app, ["clean", str(competition_csv), "-o", str(tmp_path), "--set", "clean.unicod=false"])
    assert result.exit_code == 2
    assert "unknown key(s) unicod" in result.output and "Traceback" not in result.output


def test_validate_submission_command(competition_csv, tmp_path):
    labels = LabelSet.klue()
    probs = np.full((4, 30), 1 / 30)
    good = write_submission(tmp_path / "sub.csv", ["0", "1", "2", "3"], probs, labels)
    ok = runner.invoke(app, ["validate-submission", str(good), "--test", str(competition_csv)])
    assert ok.exit_code == 0 and "valid submission" in ok.output
    short = write_submission(tmp_path / "short.csv", ["0", "1", "2"], probs[:3], labels)
    bad = runner.invoke(app, ["validate-submission", str(short), "--test", str(competition_csv)])
    assert bad.exit_code == 1 and "missing" in bad.output


def test_augment_command_writes_children_and_summary(competition_csv, tmp_path):
    out = tmp_path / "aug.csv"
    result = runner.invoke(
        app, ["augment", str(competition_csv), "-o", str(out), "--set", "augment.methods=[{name: aeda, prob: 0.5}]"]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    children = [r for r in rows if r["parent_id"]]
    assert len(rows) == 8 and len(children) == 4 and {r["method"] for r in children} == {"aeda"}
    assert "total" in result.output
    empty = runner.invoke(app, ["augment", str(competition_csv), "-o", str(out)])
    assert empty.exit_code == 2 and "no augmentation methods" in empty.output


def test_train_without_data_uses_the_embedded_klue_sample_and_scores_its_labelled_test(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample").symlink_to(root / "data" / "sample")
    monkeypatch.chdir(tmp_path)
    # the config's sample_overrides apply on the sample, a --set of the same key over them
    sample_only = "data.sample_overrides=[model.tfidf.min_df=2, seed=7]"
    result = runner.invoke(
        app, ["train", "-c", str(root / "configs" / "tfidf.yaml"), "--set", sample_only, "--set", "seed=9"]
    )
    assert result.exit_code == 0, result.output
    assert "embedded sample" in result.output and "test (its own labels) micro_f1" in result.output
    assert "data.sample_overrides: model.tfidf.min_df=2 (recorded" in result.output
    (submission,) = (tmp_path / "submissions").glob("*.csv")
    (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if p.is_dir())  # beside them: index.html
    assert submission.stem == run_dir.name
    scored = json.loads((run_dir / "result.json").read_text())["test_metrics"]
    assert scored["rows"] == 500 and 20 < scored["micro_f1"] < 90  # real text: neither trivial nor perfect
    assert "test, on the labels its file carries" in (run_dir / "report.html").read_text()
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (recorded["model"]["tfidf"]["min_df"], recorded["seed"]) == (2, 9)


def test_sample_overrides_leave_a_run_on_real_data_alone(competition_csv):
    from re_pipeline.cli import _run_config

    tfidf = Path(__file__).resolve().parents[1] / "configs" / "tfidf.yaml"
    cfg = _run_config(tfidf, ["data.sample_overrides=[model.tfidf.min_df=7]"], competition_csv)
    assert cfg.data.train == str(competition_csv) and cfg.model.tfidf.min_df != 7


def test_train_without_any_data_or_sample_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "-c", str(Path(__file__).resolve().parents[1] / "configs" / "tfidf.yaml")])
    assert result.exit_code != 0 and "--data DIR" in result.output


def test_a_quarantined_test_row_is_answered_and_the_validator_agrees(tmp_path):
    from conftest import competition_rows, write_csv

    from re_pipeline.config import load_config
    from re_pipeline.data.load import load_configured
    from re_pipeline.submit.submission import with_quarantined_rows

    rows = [dict(r, label="100") for r in competition_rows()]
    rows[2]["subject_entity"] = "not an entity"
    path = write_csv(tmp_path / "test.csv", rows)
    config = load_config(None)
    test = load_configured(path, config.data, config.clean, LabelSet.klue())
    ids, probs = with_quarantined_rows(test, np.full((3, 30), 1 / 30), log=lambda m: None)
    assert ids == ["0", "1", "2", "3"] and probs[2].argmax() == 0
    submission = write_submission(tmp_path / "sub.csv", ids, probs, LabelSet.klue())
    result = runner.invoke(app, ["validate-submission", str(submission), "--test", str(path)])
    assert result.exit_code == 0, result.output
    short = write_submission(tmp_path / "short.csv", ["0", "1", "3"], probs[[0, 1, 3]], LabelSet.klue())
    missing = runner.invoke(app, ["validate-submission", str(short), "--test", str(path)])
    assert missing.exit_code == 1 and "1 test ids missing: '2'" in missing.output


def test_an_ID_header_keeps_the_test_ids_in_the_validator(tmp_path):
    from conftest import competition_rows, write_csv

    rows = [
        {("ID" if k == "id" else k): (f"doc_{v}" if k == "id" else v) for k, v in r.items()}
        for r in competition_rows()
    ]
    path = write_csv(tmp_path / "test.csv", rows)
    probs = np.full((4, 30), 1 / 30)
    by_row = write_submission(tmp_path / "rows.csv", ["0", "1", "2", "3"], probs, LabelSet.klue())
    refused = runner.invoke(app, ["validate-submission", str(by_row), "--test", str(path)])
    assert refused.exit_code == 1 and "4 test ids missing: 'doc_0'" in refused.output
    by_id = write_submission(tmp_path / "ids.csv", [f"doc_{i}" for i in range(4)], probs, LabelSet.klue())
    assert runner.invoke(app, ["validate-submission", str(by_id), "--test", str(path)]).exit_code == 0
