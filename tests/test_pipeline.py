"""End to end on a generated sample with a tiny model: train -> run folder -> submission -> predict, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from re_pipeline.config import load_config
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.sample import write_sample
from re_pipeline.pipeline import run_pipeline
from re_pipeline.predict import Predictor, predict_file
from re_pipeline.submit.submission import read_submission, validate_submission

TINY_MODEL = [  # a one-layer transformer, no TAPT
    "model.backbone.vocab_size=400",
    "model.backbone.hidden_size=32",
    "model.backbone.num_layers=1",
    "model.backbone.num_heads=2",
    "model.backbone.intermediate_size=64",
    "model.kind=transformer",
    "tapt.enabled=false",
]
TINY = [
    *TINY_MODEL,
    "train.split=random",
    "train.max_steps=20",
    "train.eval_steps=10",
    "train.batch_size=16",
    "train.learning_rate=0.001",
    "train.logging_steps=5",
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"), n_train=160, n_test=40)


def config(sample, *extra):
    train, test = sample
    return load_config(None, [*TINY, f"data.train={train}", f"data.test={test}", *extra])


@pytest.fixture(scope="module")
def run(sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("work")
    return run_pipeline(
        config(sample),
        run_dir=root / "runs" / "r1",
        submissions_dir=root / "subs",
        log=lambda m: None,
        cache=root / "cache",
    )


def test_twenty_steps_give_a_valid_submission_and_a_run_folder(run, sample):
    result = json.loads((run / "result.json").read_text())
    assert set(result["metrics"]) == {"micro_f1", "auprc", "accuracy"}
    assert result["folds"]["fold0"]["log_history"][-1]["step"] == 20
    test_ids = [str(i) for i in range(40)]
    assert validate_submission(result["submission"], test_ids, LabelSet.klue()) == []
    for name in (
        "config.yaml",
        "labels.json",
        "train.audit.csv",
        "oof_probs.npy",
        "test_probs.npy",
        "fold0/model/model.safetensors",
    ):
        assert (run / name).exists(), name
    oof = np.load(run / "oof_probs.npy")
    assert np.isnan(oof[:, 0]).sum() > 0 and np.allclose(np.nansum(oof, axis=1)[~np.isnan(oof[:, 0])], 1)


@pytest.mark.cpu_exact
def test_predictor_reproduces_the_run_submission(run, sample, tmp_path):
    result = json.loads((run / "result.json").read_text())
    _, _, run_probs = read_submission(result["submission"])
    _, _, again = read_submission(predict_file(run, sample[1], tmp_path / "again.csv", log=lambda m: None))
    assert np.allclose(run_probs, again, atol=1e-5)
    predictor = Predictor.from_run(run)
    label, prob = predictor("김민준은 서울에서 태어났다.", subject=(0, 2, "PER"), object=(5, 6, "LOC"))
    assert label in LabelSet.klue().names and 0 < prob <= 1


@pytest.mark.cpu_exact
def test_resume_continues_from_the_last_checkpoint(run, sample, tmp_path):
    shutil.copytree(run, tmp_path / "r2")
    fold = tmp_path / "r2" / "fold0"
    (fold / "fold.json").unlink()
    shutil.rmtree(fold / "checkpoints" / "checkpoint-20")
    logs = []
    resumed = run_pipeline(
        config(sample),
        run_dir=tmp_path / "r2",
        submissions_dir=tmp_path / "subs",
        log=logs.append,
        cache=tmp_path / "cache",
    )
    assert any("resuming from" in m and "checkpoint-10" in m for m in logs)
    first = json.loads((run / "result.json").read_text())["metrics"]
    second = json.loads((resumed / "result.json").read_text())["metrics"]
    assert second == pytest.approx(first, abs=1e-6)


def test_a_local_pretrained_model_loads_through_the_hub_code_path(sample, tmp_path):
    import csv

    from re_pipeline.models.backbone import BackboneConfig, build_encoder
    from re_pipeline.models.tokenizer import train_tokenizer

    sentences = [r["sentence"] for r in csv.DictReader(open(sample[0], encoding="utf-8"))]
    local = tmp_path / "tiny-xlmr"
    tokenizer = train_tokenizer(sentences, 300, local)
    build_encoder(
        BackboneConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), len(tokenizer)
    ).save_pretrained(local)
    run_dir = run_pipeline(
        config(sample, f"model.backbone.name={local}", "train.max_steps=4"),
        run_dir=tmp_path / "run",
        submissions_dir=tmp_path / "subs",
        log=lambda m: None,
        cache=tmp_path / "cache",
    )
    assert json.loads((run_dir / "result.json").read_text())["submission"]


def test_tapt_stage_runs_once_and_is_reused(sample, tmp_path):
    cfg = config(
        sample, "tapt.enabled=true", "tapt.steps=3", "tapt.batch_size=8", "train.max_steps=2", "train.eval_steps=2"
    )
    logs = []
    for name in ("a", "b"):
        run_pipeline(
            cfg, run_dir=tmp_path / name, submissions_dir=tmp_path / "subs", log=logs.append, cache=tmp_path / "cache"
        )
    assert (
        sum(m.startswith("TAPT: 3 masked-LM steps") for m in logs) == 1
        and sum(m.startswith("TAPT: reusing") for m in logs) == 1
    )
    (tapt_dir,) = (tmp_path / "cache" / "tapt").iterdir()
    assert json.loads((tapt_dir / "tapt_log.json").read_text())["steps"] == 3


def test_tapt_stage_writes_a_model_a_training_config_can_load(sample, tmp_path):
    from re_pipeline.pipeline import run_tapt_stage

    tapt_run = run_tapt_stage(
        config(sample, "tapt.steps=3", "tapt.batch_size=8", "tapt.learning_rate=0.05", "tapt.warmup_ratio=0"),
        run_dir=tmp_path / "tapt",
        log=lambda m: None,
        cache=tmp_path / "cache",
    )
    result = json.loads((tapt_run / "result.json").read_text())
    assert result["tapt"]["steps"] == 3 and result["train_fingerprint"]
    model = tapt_run / "model"
    run_dir = run_pipeline(
        config(sample, f"model.backbone.name={model}", "train.max_steps=2", "train.eval_steps=2"),
        run_dir=tmp_path / "run",
        submissions_dir=tmp_path / "subs",
        log=lambda m: None,
        cache=tmp_path / "cache",
    )
    from transformers import AutoModel, AutoTokenizer

    base = AutoTokenizer.from_pretrained(str(model))
    run_tok = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))
    assert all(run_tok.convert_tokens_to_ids(t) == i for t, i in base.get_vocab().items())
    from re_pipeline.models.store import load_relation_model

    trained = load_relation_model(run_dir / "fold0" / "model")[0].encoder.embeddings.position_embeddings.weight
    pretrained = AutoModel.from_pretrained(str(model)).embeddings.position_embeddings.weight
    assert (
        trained - pretrained
    ).abs().max() < 0.01  # two small steps from the TAPT weights (which moved ~0.15 from init)


def test_predictions_come_back_in_dataset_order_after_length_sorting():
    from types import SimpleNamespace

    from datasets import Dataset

    from re_pipeline.evaluation.metrics import softmax
    from re_pipeline.training.train import predict_probs

    lengths = [5, 2, 9, 1, 7]

    class EchoTrainer:  # logits reveal which row they were computed from
        def predict(self, dataset):
            return SimpleNamespace(predictions=np.array([[len(ids), 0.0] for ids in dataset["input_ids"]]))

    dataset = Dataset.from_dict({"input_ids": [[1] * n for n in lengths], "labels": [0] * 5})
    expected = softmax(np.array([[n, 0.0] for n in lengths]))
    np.testing.assert_allclose(predict_probs(EchoTrainer(), dataset), expected)


@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.45, 0.7])
def test_a_holdout_fraction_validates_that_share_of_the_rows(fraction):
    from re_pipeline.data.split import holdout_split

    labels = ["no_relation"] * 60 + ["per:title"] * 30 + ["org:founded"] * 9 + ["per:origin"]
    groups = [str(i // 2) if i < 20 else str(i) for i in range(100)]  # rows 0-19 come in pairs
    train, val = holdout_split(labels, groups, fraction, seed=3)
    assert len(val) == round(fraction * 100) and sorted([*train, *val]) == list(range(100))
    assert {groups[i] for i in train}.isdisjoint(groups[i] for i in val)
    assert abs(sum(labels[i] == "per:title" for i in val) - fraction * 30) <= 1.5


def damage(run, tmp_path, name: str, how: str):
    copy = shutil.copytree(run, tmp_path / "run")
    target = next(copy.glob(f"fold0/model/{name}"))
    if how == "missing":
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    else:
        target = next(target.glob("tokenizer.json")) if target.is_dir() else target
        target.write_bytes(target.read_bytes()[:100])
    return copy


@pytest.mark.parametrize(
    "name, how",
    [
        ("model.safetensors", "missing"),
        ("model.safetensors", "corrupt"),
        ("tokenizer", "missing"),
        ("tokenizer", "corrupt"),
    ],
)
def test_predict_on_a_damaged_run_folder_is_one_line_naming_the_file(run, sample, tmp_path, name, how):
    from typer.testing import CliRunner

    from re_pipeline.cli import app

    copy = damage(run, tmp_path, name, how)
    result = CliRunner().invoke(app, ["predict", str(copy), "--data", str(sample[1]), "-o", str(tmp_path / "s.csv")])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert f"fold0/model/{name}" in lines[0] and ("missing" if how == "missing" else "cannot be read") in lines[0]
    assert "retrain" in lines[0]


def test_predict_windows_far_apart_entities_and_reports_the_shared_head_rows(run, sample, tmp_path):
    import csv

    from conftest import entity, write_csv

    rows = list(csv.DictReader(open(sample[1], encoding="utf-8")))[:3]
    sentence = "김민준은 " + "그리고 나서 다시 " * 150 + "서울에서 태어났다."
    rows.append(
        {
            **rows[0],
            "id": "far",
            "sentence": sentence,
            "subject_entity": str(entity("김민준", sentence, "per")),
            "object_entity": str(entity("서울", sentence, "XYZ")),
        }
    )
    logs = []
    path = predict_file(run, write_csv(tmp_path / "test.csv", rows), tmp_path / "sub.csv", log=logs.append)
    assert read_submission(path)[0] == [r["id"] for r in rows]
    assert any("1 row" in m and "window around each entity" in m for m in logs), logs
    assert any("1 row" in m and "PER|XYZ" in m and "shared head" in m for m in logs), logs
    predictor = Predictor.from_run(run)
    args = ("김민준은 서울에서 태어났다.",)
    assert predictor(*args, subject=(0, 2, "per"), object=(5, 6, "loc")) == predictor(
        *args, subject=(0, 2, "PER"), object=(5, 6, "LOC")
    )
