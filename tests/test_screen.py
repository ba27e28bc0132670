"""Screening runs end to end (`re-pipeline screen`), and the run settings it leans on: frozen layers cached in a
real run, a training share, an evaluation subset, and the throughput every transformer run records."""

from __future__ import annotations

import json

import numpy as np
import yaml
from test_jobs import configs  # noqa: F401  (the fixture)
from test_pipeline import config, sample  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.pipeline import run_pipeline

FROZEN = ["model.backbone.num_layers=2", "model.backbone.freeze_layers=1"]


def test_a_run_with_cached_frozen_layers_an_eval_subset_and_its_throughput(sample, tmp_path):  # noqa: F811
    said = []
    cfg = config(sample, *FROZEN, "train.eval_rows=12")
    run = run_pipeline(cfg, tmp_path / "r", tmp_path / "subs", log=said.append, cache=tmp_path / "cache")
    fold = json.loads((run / "result.json").read_text())["folds"]["fold0"]
    validated = fold["rows"]["validation"]
    assert any(f"evaluating during training on 12 of {validated} validation rows" in line for line in said)
    assert np.load(run / "fold0" / "val_probs.npy").shape[0] == validated  # scored on every row at the end
    (store,) = (tmp_path / "cache" / "frozen").iterdir()
    assert (store / "store.json").exists()
    speed = fold["throughput"]
    assert speed["rows_per_s"] > 0 and 0 < speed["mfu"] < 1 and speed["peak_gflops"]["fp32"] > 0
    assert speed["seconds"]["steps"] > 0 and speed["seconds"]["evaluation"] > 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "MFU" in html and f"{100 * speed['mfu']:.1f}% of {speed['precision']}" in html
    said.clear()
    run_pipeline(cfg, tmp_path / "r2", tmp_path / "subs", log=said.append, cache=tmp_path / "cache")
    assert any("frozen layers: reusing" in line for line in said)


def test_screen_runs_each_config_on_a_share_of_the_rows_and_writes_one_table(configs, tmp_path):  # noqa: F811
    configs("base")
    configs("frozen", *FROZEN)
    out = tmp_path / "screen.json"
    result = CliRunner().invoke(
        app, ["screen", "base.yaml", "frozen.yaml", "--fraction", "0.5", "--epochs", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert table["fraction"] == 0.5 and [row["config"] for row in table["rows"]] == ["base", "frozen"]
    for row in table["rows"]:
        run = tmp_path / row["run"]
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["name"].endswith("-screen") and saved["train"]["train_fraction"] == 0.5
        assert saved["train"]["epochs"] == 2
        assert row["val_micro_f1"] >= 0 and row["rows_per_s"] > 0 and (tmp_path / row["submission"]).exists()
    trained = [json.loads((tmp_path / r["run"] / "result.json").read_text())["folds"]["fold0"] for r in table["rows"]]
    assert all(f["features"]["examples"] == round(0.5 * f["rows"]["train"]) for f in trained)  # the share


def test_train_seed_draws_other_weights_on_the_same_rows(sample, tmp_path):  # noqa: F811
    probs = {}
    for name, extra in (("run", []), ("same", ["train.seed=42"]), ("other", ["train.seed=7"])):
        cfg = config(sample, *FROZEN, "seed=42", *extra)
        run = run_pipeline(cfg, tmp_path / name, tmp_path / "subs", log=lambda m: None, cache=tmp_path / "cache")
        probs[name] = np.load(run / "oof_probs.npy")
    validated = {name: ~np.isnan(p).any(axis=1) for name, p in probs.items()}
    assert validated["run"].any() and (validated["run"] == validated["other"]).all()  # the split is the run's seed's
    assert np.array_equal(probs["run"], probs["same"], equal_nan=True)  # train.seed 42 is the run's seed 42
    assert not np.allclose(probs["run"][validated["run"]], probs["other"][validated["other"]])
