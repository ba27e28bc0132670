"""Hyperparameter search: trials are run folders, invocations add up in one SQLite study, pruning, the best config."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from test_pipeline import TINY
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config, to_yaml
from re_pipeline.core.errors import PipelineError
from re_pipeline.data.sample import write_sample
from re_pipeline.experiments.hpsearch import run_hpsearch

SPACE = {
    "train.learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "model.pooling": {"type": "categorical", "choices": ["cls", "entity_start"]},
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A tiny searchable config, `search.yaml`, in an empty working folder (runs/ and .cache/ land there)."""
    monkeypatch.chdir(tmp_path)
    train, test = write_sample("data", n_train=80, n_test=20)
    overrides = [
        *TINY,
        "train.max_steps=4",
        "train.eval_steps=2",
        "name=tiny",
        f"data.train={train}",
        f"data.test={test}",
        f"search.space={json.dumps(SPACE)}",
    ]
    (tmp_path / "search.yaml").write_text(to_yaml(load_config(None, overrides)), encoding="utf-8")
    return tmp_path


def test_two_invocations_add_trials_to_one_study_and_write_the_best_config(workdir):
    storage = f"sqlite:///{workdir / 'shared.db'}"
    run_hpsearch(load_config("search.yaml"), 2, storage, "s", log=lambda m: None)
    result = CliRunner().invoke(
        app, ["hpsearch", "-c", "search.yaml", "--trials", "1", "--storage", storage, "--study", "s"]
    )
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    runs = sorted(p.name for p in (workdir / "runs").iterdir() if p.is_dir() and p.name != "hpsearch")
    assert [r.rsplit("-", 1)[1] for r in runs] == ["trial0", "trial1", "trial2"]
    assert all((workdir / "runs" / r / "result.json").exists() for r in runs)
    best = load_config(workdir / "runs" / "hpsearch" / "s-best.yaml")
    assert (
        best.train.learning_rate == study.best_params["train.learning_rate"]
        and best.model.pooling == study.best_params["model.pooling"]
    )
    assert best.name == f"tiny-trial{study.best_trial.number}" and best.search.space.keys() == SPACE.keys()
    assert isinstance(study.pruner, optuna.pruners.BasePruner)


def test_a_trial_the_pruner_stops_is_pruned_at_its_first_evaluation(workdir, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    with pytest.raises(PipelineError, match="no finished trial"):
        run_hpsearch(load_config("search.yaml"), 1, log=lambda m: None)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'runs' / 'hpsearch' / 'tiny.db'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [1]
    (run,) = (p for p in (workdir / "runs").iterdir() if p.is_dir() and p.name != "hpsearch")
    assert not (run / "result.json").exists() and not (workdir / "runs" / "hpsearch" / "tiny-best.yaml").exists()


@pytest.mark.parametrize(
    "search, message",
    [
        (
            {"space": {"train.learning_rate": {"type": "uniform", "low": 0, "high": 1}}},
            "search.space.train.learning_rate: type must be one of",
        ),
        ({"space": {"train.learning_rate": {"type": "float", "low": 1, "high": 0}}}, "needs low <= high"),
        (
            {"space": {"train.learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}},
            "log-scale parameter needs low > 0",
        ),
        ({"space": {"model.pooling": {"type": "categorical"}}}, "needs a list of plain choices"),
        ({"space": {"model.pooling": {"type": "categorical", "choices": ["cls"], "prior": 1}}}, "unknown key.*prior"),
        ({"metric": "f1"}, "search.metric must be one of"),
        ({"pruner": "hyperband"}, "search.pruner must be one of null, median"),
        ({"trials": 3}, "unknown key.*trials"),
    ],
)
def test_the_search_section_is_checked_like_the_rest_of_the_config(search, message):
    with pytest.raises(PipelineError, match=message):
        load_config(None, [f"search={yaml.safe_dump(search, default_flow_style=True).strip()}"])


def test_a_searched_key_that_is_not_a_config_key_fails_before_any_trial(workdir):
    config = load_config("search.yaml", ["search.space={train.lr: {type: float, low: 0.1, high: 0.2}}"])
    with pytest.raises(PipelineError, match="unknown key.*lr"):
        run_hpsearch(config, 1, log=lambda m: None)
    assert not (workdir / "runs" / "hpsearch" / "tiny.db").exists()
