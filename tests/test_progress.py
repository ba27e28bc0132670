"""The console: one progress bar per stage (loss and last validation metric beside it), the Trainer's own bars and
printed log dicts gone, and the CLI's end-of-run summary; `--verbose` brings the stock output back."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.core.progress import StageBars, replace_stock_output
from re_pipeline.data.sample import write_sample

TINY = [
    "model.backbone.vocab_size=300",
    "model.backbone.hidden_size=32",
    "model.backbone.num_layers=1",
    "model.backbone.num_heads=2",
    "model.backbone.intermediate_size=64",
    "model.kind=transformer",
    "tapt.steps=2",
    "train.max_steps=4",
    "train.eval_steps=2",
    "train.logging_steps=2",
]


def test_stage_bars_follow_training_and_prediction():
    console = Console(file=io.StringIO(), width=200)
    args = SimpleNamespace(run_name="fold 1", metric_for_best_model="micro_f1")
    state = SimpleNamespace(is_world_process_zero=True, max_steps=20, global_step=0)
    with StageBars(console) as bars:
        with bars.stage("tokenizer"):
            pass
        bars.on_train_begin(args, state, None)
        state.global_step = 10
        bars.on_step_end(args, state, None)
        bars.on_log(args, state, None, logs={"loss": 1.23456})
        bars.on_prediction_step(args, state, None, eval_dataloader=[0, 0])  # an evaluation: no bar of its own
        bars.on_evaluate(args, state, None, metrics={"eval_micro_f1": 55.5, "eval_loss": 2.0})
        state.global_step = 12  # early stopping
        bars.on_train_end(args, state, None)
        for loader in ([0, 0, 0], [0, 0]):  # validation, then test rows
            for _ in loader:
                bars.on_prediction_step(args, state, None, eval_dataloader=loader)
    tasks = {task.description: task for task in bars.progress.tasks}
    assert list(tasks) == ["tokenizer", "fold 1: training", "fold 1: predicting"]
    assert tasks["tokenizer"].finished
    training, predicting = tasks["fold 1: training"], tasks["fold 1: predicting"]
    assert training.completed == training.total == 12 and predicting.completed == predicting.total == 5
    assert training.fields["postfix"] == "loss 1.2346 val micro_f1 55.50"
    assert "fold 1: training" in console.file.getvalue()


@pytest.mark.parametrize("bars, stock", [((), True), ((StageBars(),), False)])
def test_stage_bars_replace_the_trainers_own_output(tmp_path, bars, stock):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, disable_tqdm=False)
    trainer = replace_stock_output(Trainer(model=torch.nn.Linear(2, 2), args=args, callbacks=list(bars)))
    kinds = {type(cb) for cb in trainer.callback_handler.callbacks}
    assert (ProgressCallback in kinds) == stock and PrinterCallback not in kinds and (StageBars in kinds) != stock


@pytest.mark.parametrize("verbose", [False, True])
def test_train_prints_bars_and_a_summary_or_with_verbose_the_trainers_logs(tmp_path, monkeypatch, verbose):
    monkeypatch.chdir(tmp_path)
    write_sample(tmp_path / "data")  # tiny generated rows: the embedded KLUE sample is for the first run
    config = Path(__file__).resolve().parents[1] / "configs" / "reference.yaml"
    sets = [arg for s in TINY for arg in ("--set", s)]
    verbosity = ["--verbose"] if verbose else []
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--data", "data", *sets, *verbosity])
    assert result.exit_code == 0, result.output
    (run_dir,) = (p.relative_to(tmp_path) for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert ("train_runtime" in result.output) == verbose  # the Trainer's printed log dict
    assert ("fold 1: training" in result.output and "TAPT: training" in result.output) != verbose
    assert ("'loss'" in result.output) == verbose
    for row in ("validation micro_f1", "run folder", "submission", f"{run_dir / 'report.html'}"):
        assert row in result.output, row


def test_a_classical_run_shows_a_bar_for_its_fit_and_its_prediction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # model.kind prior: no tokenizer, no Trainer
    write_sample(tmp_path / "data")
    config = Path(__file__).resolve().parents[1] / "configs" / "reference.yaml"
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--data", "data", "--set", "model.kind=prior"])
    assert result.exit_code == 0, result.output
    assert "fold 1: prior" in result.output and "fold 1: predicting" in result.output
    assert (
        "tokenizer" not in result.output and "validation micro_f1" in result.output and "report.html" in result.output
    )
