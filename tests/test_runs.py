"""Run folders that trace a result: what they hold, `runs` / `runs show` / `runs compare`, `reproduce`, `report`, report_to."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from test_pipeline import TINY
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config
from re_pipeline.core.device import cpu_name
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.io_utils import file_sha256
from re_pipeline.data.sample import write_sample
from re_pipeline.pipeline import run_pipeline
from re_pipeline.training.train import local_reporting

pytestmark = pytest.mark.usefixtures("wide_console")

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # rich tables: no folded cells


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("work")
    train, test = write_sample(root / "sample", n_train=160, n_test=40)
    cfg = load_config(None, [*TINY, f"data.train={train}", f"data.test={test}"])
    run = run_pipeline(
        cfg,
        run_dir=root / "runs" / "20260101-000000-tiny",
        submissions_dir=root / "subs",
        log=lambda m: None,
        cache=root / "cache",
    )
    return root, run


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env=WIDE)


def test_the_run_folder_holds_everything_needed_to_trace_it(work):
    root, run = work
    for name in (
        "config.yaml",
        "labels.json",
        "tokenizer/tokenizer.json",
        "train.audit.csv",
        "train.quarantine.csv",
        "test.audit.csv",
        "fold0/fold.json",
        "fold0/val_probs.npy",
        "fold0/test_probs.npy",
        "fold0/model/model.safetensors",
        "oof_probs.npy",
        "oof_ids.json",
        "per_class.json",
        "test_probs.npy",
        "metrics.jsonl",
        "result.json",
    ):
        assert (run / name).exists(), name
    for name in ("confusion_matrix.png", "per_class_f1.png", "pr_curves.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    result = json.loads((run / "result.json").read_text())
    assert result["data_files"]["train"]["sha256"] == file_sha256(root / "sample" / "train.csv")
    assert result["data_files"]["test"]["sha256"] == file_sha256(root / "sample" / "test_data.csv")
    assert result["seed"] == 42 and result["name"] == "default" and result["seconds"] > 0 and result["started"]
    assert set(result["environment"]["git"]) == {"commit", "dirty"}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    start, named = (gpu, gpu) if gpu else ("cpu (", cpu_name())  # on CPU: its threads and model, by name
    assert result["environment"]["device"].startswith(start) and named in result["environment"]["device"]
    assert result["environment"]["versions"]["torch"] and (root / "subs" / f"{run.name}.csv").samefile(
        result["submission"]
    )
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if line["kind"] == "eval"]
    assert [e["step"] for e in evals] == [10, 20] and all(
        {"epoch", "eval_micro_f1", "eval_auprc"} <= set(e) for e in evals
    )
    assert [line["step"] for line in lines if line["kind"] == "train"] == [5, 10, 15, 20]
    (speed,) = [line for line in lines if line["kind"] == "throughput"]
    assert speed["rows_per_s"] > 0 and 0 < speed["mfu"] < 1 and speed["gflops"] > 0
    assert len(lines) == len(result["folds"]["fold0"]["log_history"]) + 1
    meta = json.loads((run / "oof_ids.json").read_text())
    assert len(meta["ids"]) == len(meta["labels"]) == len(np.load(run / "oof_probs.npy"))


def fake_copy(run, dest, lr=None, micro_f1=None, versions=None):
    """A finished run folder copied with another learning rate in its config, another micro-F1 and other
    logged library `versions` in its result."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("fold*", "tokenizer"))
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["train"]["learning_rate"] = lr or config["train"]["learning_rate"]
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    result = json.loads((dest / "result.json").read_text())
    result["metrics"]["micro_f1"] = micro_f1 if micro_f1 is not None else result["metrics"]["micro_f1"]
    result["environment"]["versions"].update(versions or {})
    (dest / "result.json").write_text(json.dumps(result))
    return dest


def test_runs_lists_finished_runs_and_flags_unfinished_ones(work, tmp_path):
    _, run = work
    runs_dir = tmp_path / "runs"
    fake_copy(run, runs_dir / "20260101-000001-better", micro_f1=99.5)
    shutil.copytree(run, runs_dir / run.name, ignore=shutil.ignore_patterns("fold*", "tokenizer"))
    (runs_dir / "20260101-000002-crashed").mkdir()
    shutil.copy(run / "config.yaml", runs_dir / "20260101-000002-crashed")
    (runs_dir / "not-a-run").mkdir()
    result = invoke("runs", "--runs-dir", runs_dir, "--sort", "micro_f1")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "20260101" in line]
    assert [line.split()[1] for line in lines] == ["20260101-000001-better", run.name, "20260101-000002-crashed"]
    assert "99.50" in lines[0] and "unfinished" in lines[2] and "not-a-run" not in result.output
    assert json.loads((run / "result.json").read_text())["train_fingerprint"] in lines[1]
    filtered = invoke("runs", "--runs-dir", runs_dir, "--filter", "better")
    assert "000001-better" in filtered.output and run.name not in filtered.output
    bad = invoke("runs", "--runs-dir", runs_dir, "--sort", "speed")
    assert bad.exit_code == 2 and "cannot sort by 'speed'" in bad.output


def test_runs_show_and_compare(work, tmp_path):
    _, run = work
    other = fake_copy(run, tmp_path / "other", lr=0.5, micro_f1=12.0)
    shown = invoke("runs", "show", run)
    assert shown.exit_code == 0, shown.output
    for text in ("train fingerprint", "sha256", "git commit", "fold0", "quarantined", "micro_f1"):
        assert text in shown.output, text
    compared = invoke("runs", "compare", run, other)
    assert compared.exit_code == 0, compared.output
    assert (
        "config: 1 differences" in compared.output
        and "train.learning_rate" in compared.output
        and "0.5" in compared.output
    )
    old = json.loads((run / "result.json").read_text())["metrics"]["micro_f1"]
    assert f"{12.0 - old:.2f}" in compared.output and "data: identical" in compared.output
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    refused = invoke("runs", "show", unfinished)
    assert refused.exit_code == 2 and "unfinished (no result.json)" in refused.output


def test_compare_and_reproduce_print_library_differences_first(work, tmp_path, monkeypatch):
    _, run = work
    installed = json.loads((run / "result.json").read_text())["environment"]["versions"]["transformers"]
    other = fake_copy(run, tmp_path / "other", versions={"transformers": "5.0.0"})
    compared = invoke("runs", "compare", run, other)
    assert compared.exit_code == 0, compared.output
    first = compared.output.splitlines()[0]
    assert "environment differs" in first and f"transformers: {installed} -> 5.0.0" in first
    monkeypatch.setattr("re_pipeline.cli.rerun", lambda *args, **kwargs: run)  # retraining is tested below
    reproduced = invoke("reproduce", other, "--runs-dir", tmp_path, "--tolerance", "100")
    assert reproduced.exit_code == 0, reproduced.output
    assert f"transformers: 5.0.0 -> {installed}" in reproduced.output.splitlines()[0]


@pytest.mark.cpu_exact
def test_reproduce_gives_identical_metrics(work, tmp_path, monkeypatch):
    root, run = work
    monkeypatch.chdir(tmp_path)
    result = invoke("reproduce", run, "--runs-dir", tmp_path / "runs", "--submissions-dir", tmp_path / "subs")
    assert result.exit_code == 0, result.output
    assert "reproduced within 0.0 points" in result.output
    (new,) = (p for p in (tmp_path / "runs").iterdir() if p.is_dir())  # beside them: index.html
    assert (
        json.loads((new / "result.json").read_text())["metrics"]
        == json.loads((run / "result.json").read_text())["metrics"]
    )
    np.testing.assert_array_equal(np.load(new / "test_probs.npy"), np.load(run / "test_probs.npy"))


def test_reproduce_exits_non_zero_when_metrics_differ_beyond_the_tolerance(work, tmp_path, monkeypatch):
    _, run = work
    off = fake_copy(
        run, tmp_path / "new", micro_f1=json.loads((run / "result.json").read_text())["metrics"]["micro_f1"] + 0.3
    )
    monkeypatch.setattr("re_pipeline.cli.rerun", lambda *args, **kwargs: off)
    strict = invoke("reproduce", run, "--runs-dir", tmp_path, "--tolerance", "0")
    assert strict.exit_code == 1 and "not reproduced: micro_f1" in strict.output
    assert invoke("reproduce", run, "--runs-dir", tmp_path, "--tolerance", "0.5").exit_code == 0


def test_reproduce_refuses_changed_data(work, tmp_path):
    root, run = work
    rows = list(csv.DictReader(open(root / "sample" / "train.csv", encoding="utf-8")))
    rows[3]["sentence"] += " 그리고 끝났다."
    with open(tmp_path / "train.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tampered = fake_copy(run, tmp_path / "run")
    config = yaml.safe_load((tampered / "config.yaml").read_text())
    config["data"]["train"] = str(tmp_path / "train.csv")
    (tampered / "config.yaml").write_text(yaml.safe_dump(config))
    result = invoke("reproduce", tampered, "--runs-dir", tmp_path / "runs")
    logged = json.loads((run / "result.json").read_text())["train_fingerprint"]
    assert (
        result.exit_code == 2
        and "the train data changed" in result.output
        and str(tmp_path / "train.csv") in result.output
    )
    assert (
        f"logged {logged}" in result.output
        and "fingerprint now " in result.output
        and not (tmp_path / "runs").exists()
    )


def test_report_rewrites_the_figures(work, tmp_path):
    _, run = work
    copy = fake_copy(run, tmp_path / "run")
    for png in copy.glob("*.png"):
        png.unlink()
    result = invoke("report", copy)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in copy.glob("*.png")) == ["confusion_matrix.png", "per_class_f1.png", "pr_curves.png"]


def test_report_to_names_the_missing_package_and_logs_inside_the_fold(tmp_path, monkeypatch):
    with pytest.raises(PipelineError, match="pip install no_such_tracker"):
        local_reporting(["no_such_tracker"], tmp_path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert local_reporting(["tensorboard", "mlflow"], tmp_path / "fold0") == ["tensorboard", "mlflow"]
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "fold0" / "tensorboard")
    assert os.environ["MLFLOW_TRACKING_URI"] == (tmp_path / "fold0" / "mlruns").as_uri()
    assert load_config(None, ["train.report_to=[tensorboard]"]).train.report_to == ["tensorboard"]
    with pytest.raises(PipelineError, match="not 'all' or 'none'"):
        load_config(None, ["train.report_to=[all]"])
