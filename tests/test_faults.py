"""Crashes: atomic writes keep the previous file (or none), and a training run killed with SIGKILL
resumes to exactly the result of an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from test_pipeline import TINY

from re_pipeline.config import load_config
from re_pipeline.core.io_utils import write_json
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.sample import write_sample
from re_pipeline.pipeline import prepare_backbone, run_pipeline
from re_pipeline.submit.submission import write_submission
from re_pipeline.training.train import last_checkpoint


def crashing_dump(obj, fh, **kwargs):
    fh.write('{"half": ')
    raise OSError("disk full")


def test_a_crash_while_writing_json_leaves_the_previous_file_or_none(tmp_path, monkeypatch):
    write_json(tmp_path / "result.json", {"run": 1})
    monkeypatch.setattr(json, "dump", crashing_dump)
    for name in ("result.json", "fold.json"):
        with pytest.raises(OSError, match="disk full"):
            write_json(tmp_path / name, {"run": 2})
    assert json.loads((tmp_path / "result.json").read_text()) == {"run": 1}
    assert sorted(os.listdir(tmp_path)) == ["result.json"]  # no fold.json, no temporary file


def test_a_crash_while_writing_a_submission_keeps_the_previous_one(tmp_path, monkeypatch):
    import re_pipeline.submit.submission as submission

    labels, ids = LabelSet.klue(), ["a", "b", "c"]
    path = write_submission(tmp_path / "sub.csv", ids, np.full((3, 30), 1 / 30), labels)
    before = path.read_bytes()
    calls = []

    def format_then_crash(row):
        calls.append(row)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return "[" + ", ".join(map(repr, row.tolist())) + "]"

    monkeypatch.setattr(submission, "_format_probs", format_then_crash)
    with pytest.raises(KeyboardInterrupt):
        write_submission(path, ids, np.eye(30)[:3], labels)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["sub.csv"]


def test_a_crash_while_caching_the_tokenizer_publishes_nothing(tmp_path, monkeypatch):
    import re_pipeline.pipeline as pipeline

    config = load_config(None, TINY)
    sentences = [f"문장 {i}번은 서울에서 쓰였다." for i in range(50)]

    def save_half_then_crash(sentences, backbone, out_dir, **options):
        (out_dir / "tokenizer.json").write_text('{"half":', encoding="utf-8")
        raise KeyboardInterrupt

    real = pipeline.default_tokenizer
    monkeypatch.setattr(pipeline, "default_tokenizer", save_half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_backbone(config, sentences, log=lambda m: None, cache=tmp_path)
    assert not (tmp_path / "tokenizers").exists() or not any((tmp_path / "tokenizers").iterdir())
    monkeypatch.setattr(pipeline, "default_tokenizer", real)
    tokenizer, _ = prepare_backbone(config, sentences, log=lambda m: None, cache=tmp_path)
    assert len(tokenizer) > 5


def test_only_complete_checkpoints_are_resumed_from(tmp_path):
    for step, state in ((10, '{"global_step": 10}'), (20, '{"global_step": 2'), (30, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state, encoding="utf-8")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert last_checkpoint(tmp_path / "none") is None


def test_a_run_that_crashed_writing_result_json_is_finished_by_resuming(tmp_path, monkeypatch):
    import re_pipeline.pipeline as pipeline

    train, test = write_sample(tmp_path / "data", n_train=80, n_test=20)
    config = load_config(None, [*TINY, "train.max_steps=4", f"data.train={train}", f"data.test={test}"])
    real = pipeline.write_json

    def crash_on_result(path, data):
        with monkeypatch.context() as patch:
            if path.name == "result.json":
                patch.setattr(json, "dump", crashing_dump)
            real(path, data)

    monkeypatch.setattr(pipeline, "write_json", crash_on_result)
    with pytest.raises(OSError, match="disk full"):
        run_pipeline(config, tmp_path / "run", tmp_path / "subs", log=lambda m: None, cache=tmp_path / "cache")
    assert (tmp_path / "run" / "fold0" / "fold.json").exists() and not list((tmp_path / "run").glob("*result.json*"))
    monkeypatch.setattr(pipeline, "write_json", real)
    logs = []
    run_pipeline(config, tmp_path / "run", tmp_path / "subs", log=logs.append, cache=tmp_path / "cache")
    assert (
        "fold 1: already finished, outputs reused" in logs
        and json.loads((tmp_path / "run" / "result.json").read_text())["metrics"]
    )


@pytest.mark.cpu_exact
def test_a_fold_resumed_from_the_checkpoint_where_early_stopping_ended_it_trains_no_further(tmp_path):
    """As if killed between the last checkpoint and `fold.json`: the resumed fold loads the best model and
    ends with the same log and metrics (`Trainer.train` would run at least one more step)."""
    train, test = write_sample(tmp_path / "data", n_train=80, n_test=20)
    config = load_config(
        None,
        [
            *TINY,
            "train.max_steps=60",
            "train.eval_steps=2",
            "train.early_stopping_patience=1",
            f"data.train={train}",
            f"data.test={test}",
        ],
    )
    run = run_pipeline(config, tmp_path / "run", tmp_path / "subs", log=lambda m: None, cache=tmp_path / "cache")
    first = json.loads((run / "result.json").read_text())
    stopped = first["folds"]["fold0"]["log_history"][-1]["step"]
    assert stopped < 60 and last_checkpoint(run / "fold0" / "checkpoints").name == f"checkpoint-{stopped}"
    for name in ("result.json", "fold0/fold.json"):
        (run / name).unlink()
    again = json.loads(
        (
            run_pipeline(config, run, tmp_path / "subs", log=lambda m: None, cache=tmp_path / "cache") / "result.json"
        ).read_text()
    )
    assert losses(again) == losses(first) and again["metrics"] == first["metrics"]


def test_run_dir_never_mixes_two_runs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from re_pipeline.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.yaml").write_text("{}\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("{}\n", encoding="utf-8")
    for args, message in (
        (["-c", "c.yaml", "--run-dir", "taken"], "already holds a run: continue it with --resume taken"),
        (["--resume", "taken", "--run-dir", "other"], "leave out --run-dir"),
    ):
        result = CliRunner().invoke(app, ["train", *args])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.cpu_exact
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    """Kill `re-pipeline train` once its first checkpoint is written, `--resume` it: metrics and
    probabilities equal an uninterrupted run's exactly (CPU, same thread count, shared tokenizer cache)."""
    train, test = write_sample(tmp_path / "data", n_train=160, n_test=40)
    overrides = [*TINY, "train.max_steps=100", "train.eval_steps=10", f"data.train={train}", f"data.test={test}"]
    reference = run_pipeline(
        load_config(None, overrides),
        tmp_path / "reference",
        tmp_path / "ref-subs",
        log=lambda m: None,
        cache=tmp_path / ".cache",
    )
    (tmp_path / "empty.yaml").write_text("{}\n", encoding="utf-8")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(torch.get_num_threads()),
        "MKL_NUM_THREADS": str(torch.get_num_threads()),
    }
    cli = [sys.executable, "-m", "re_pipeline", "train"]
    killed = tmp_path / "runs" / "killed"
    proc = subprocess.Popen(
        [*cli, "-c", "empty.yaml", *(a for o in overrides for a in ("-s", o)), "--run-dir", "runs/killed"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while last_checkpoint(killed / "fold0" / "checkpoints") is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / "fold0" / "fold.json").exists()
    resumed = subprocess.run(
        [*cli, "--resume", "runs/killed"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-100" not in resumed.stderr
    expected, got = (json.loads((run / "result.json").read_text()) for run in (reference, killed))
    assert got["metrics"] == expected["metrics"]
    assert losses(got) == losses(expected)
    for name in ("oof_probs.npy", "test_probs.npy"):
        np.testing.assert_array_equal(np.load(killed / name), np.load(reference / name))
    assert (tmp_path / "submissions" / "killed.csv").read_bytes() == (
        tmp_path / "ref-subs" / "reference.csv"
    ).read_bytes()


def losses(result: dict) -> list[tuple]:
    """(step, training loss or evaluation loss and micro-F1) of every log entry, timings left out."""
    return [
        (e["step"], e.get("loss"), e.get("eval_loss"), e.get("eval_micro_f1"))
        for e in result["folds"]["fold0"]["log_history"]
        if "loss" in e or "eval_loss" in e
    ]
