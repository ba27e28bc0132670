"""The job runner: configs (or folds) as separate `re-pipeline train` processes, two at a time, then an ensemble."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from test_pipeline import TINY
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config, to_yaml
from re_pipeline.data.sample import write_sample
from re_pipeline.experiments.jobs import run_jobs
from re_pipeline.pipeline import run_pipeline


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """Writes config files for `overrides` in an empty working folder (runs/, submissions/, .cache/ land there)."""
    monkeypatch.chdir(tmp_path)
    train, test = write_sample("data", n_train=80, n_test=20)

    def write(name: str, *overrides: str):
        config = load_config(
            None, [*TINY, "train.max_steps=4", f"name={name}", f"data.train={train}", f"data.test={test}", *overrides]
        )
        (tmp_path / f"{name}.yaml").write_text(to_yaml(config), encoding="utf-8")
        return config

    return write


def test_configs_run_two_at_a_time_a_failure_is_reported_and_the_finished_runs_are_ensembled(configs, tmp_path):
    configs("a")
    configs("b", "model.pooling=cls", "seed=7")
    configs("bad", "data.train=missing.csv")
    result = CliRunner().invoke(
        app, ["jobs", "a.yaml", "b.yaml", "bad.yaml", "--workers", "2", "--ensemble", "fit-f1"]
    )
    assert result.exit_code == 1 and "failed (2)" in result.output, result.output
    runs = {p.name.split("-")[2]: p for p in (tmp_path / "runs").iterdir() if p.is_dir()}
    assert sorted(runs) == ["a", "b", "bad", "ensemble"]
    for name in ("a", "b"):
        assert (
            json.loads((runs[name] / "result.json").read_text())["metrics"]
            and (runs[name] / "job.log").stat().st_size > 0
        )
    assert (
        "data file not found: missing.csv" in (runs["bad"] / "job.log").read_text()
        and not (runs["bad"] / "result.json").exists()
    )
    ensemble = json.loads((runs["ensemble"] / "result.json").read_text())
    assert ensemble["ensemble"]["method"] == "fit-f1" and sorted(ensemble["ensemble"]["members"]) == sorted(
        str(runs[n].relative_to(tmp_path)) for n in ("a", "b")
    )
    assert len(list((tmp_path / "submissions").glob("*.csv"))) == 3


@pytest.mark.cpu_exact
def test_the_folds_of_a_kfold_config_as_jobs_give_the_sequential_result(configs, tmp_path):
    config = configs("k", "train.validation=kfold", "train.folds=2")
    jobs, (run,), combined = run_jobs([config], workers=2, folds=True, log=lambda m: None)
    assert [(job.fold, job.returncode) for job in jobs] == [(0, 0), (1, 0)] and combined is None
    # the jobs ran with OMP_NUM_THREADS = cores // workers; the same thread count keeps float sums in the same order
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        sequential = run_pipeline(config, tmp_path / "sequential", tmp_path / "subs", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    for name in ("oof_probs.npy", "test_probs.npy"):
        np.testing.assert_array_equal(np.load(run / name), np.load(sequential / name))
    assert (
        json.loads((run / "result.json").read_text())["metrics"]
        == json.loads((sequential / "result.json").read_text())["metrics"]
    )
