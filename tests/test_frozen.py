"""Frozen lower layers and their cache: the same logits as the full encoder, nothing frozen trains or drops
out, the store is reused only for the same text, tokenizer, backbone and K, and a killed build is never read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from e5s1_writer import write_e5
from transformers import AutoTokenizer, BertConfig, BertModel

from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.data.features import RelationCollator
from re_pipeline.models import frozen as frozen_module
from re_pipeline.models.backbone import BackboneConfig
from re_pipeline.models.packaged import backbone_folder
from re_pipeline.models.relation import ModelConfig, RelationModel
from re_pipeline.training.frozen_cache import frozen_store
from re_pipeline.training.throughput import Throughput

HERE = Path(__file__).resolve().parent
SENTENCES = [
    "이순신은 조선의 무신이다.",
    "이순신은 서울에서 태어났다.",
    "조선의 무신이다.",
    "서울에서 태어났다. 이순신은",
]
LABELS = 4


def tokenizer_at(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    path = write_e5(folder / "tiny.bin")
    return AutoTokenizer.from_pretrained(backbone_folder(str(path), folder / "cache", log=lambda m: None))


def encoder(layers: int = 3, seed: int = 0, dropout: float = 0.0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        attn_implementation="eager",
    )
    return BertModel(config, add_pooling_layer=False)


def model(k: int, stored: str = "float32", seed: int = 0, **cfg) -> RelationModel:
    cfg.setdefault("entity_embedding", False)
    dropout = cfg.pop("encoder_dropout", 0.0)
    backbone = BackboneConfig(freeze_layers=k, frozen_cache=stored)
    config = ModelConfig(kind="transformer", backbone=backbone, type_pair_heads=False, **cfg)
    return RelationModel(encoder(seed=seed, dropout=dropout), config, LABELS)


def rows(tokenizer, sentences=SENTENCES) -> datasets.Dataset:
    ids = tokenizer(sentences)["input_ids"]
    return datasets.Dataset.from_dict(
        {
            "input_ids": ids,
            "attention_mask": [[1] * len(x) for x in ids],
            "entity_mask": [[0, 1, 1] + [0] * (len(x) - 5) + [2, 0] for x in ids],
            "subj_start": [1] * len(ids),
            "obj_start": [len(x) - 2 for x in ids],
            "labels": list(range(len(ids))),
        }
    )


def batch(ds, store=None, pad_id=1) -> dict:
    return RelationCollator(pad_id, frozen=store)([ds[i] for i in range(len(ds))])


def build(m: RelationModel, k: int, tokenizer, dsets, cache: Path, stored="float32", log=lambda m: None):
    return frozen_store(m.encoder, k, tokenizer, dsets, stored, "fp32", cache, 3, log)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tokenizer_at(tmp_path_factory.mktemp("tok"))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cached_frozen_layers_give_the_full_encoders_logits(k, tokenizer, tmp_path):
    full, frozen = model(0).eval(), model(k).eval()
    frozen.load_state_dict(full.state_dict())
    store, (ds,) = build(frozen, k, tokenizer, [rows(tokenizer)], tmp_path)
    cached = batch(ds, store)
    assert cached["frozen_states"].shape == (*cached["input_ids"].shape, 16)
    live = {key: v for key, v in cached.items() if key != "frozen_states"}
    with torch.no_grad():
        want = full(**live)["logits"]
        assert torch.allclose(frozen(**cached)["logits"], want, atol=1e-4)
        assert torch.allclose(frozen(**live)["logits"], want, atol=1e-4)  # without a cache: computed now


def test_a_float16_store_stays_close(tokenizer, tmp_path):
    full, frozen = model(0).eval(), model(2).eval()
    frozen.load_state_dict(full.state_dict())
    store, (ds,) = build(frozen, 2, tokenizer, [rows(tokenizer)], tmp_path, stored="float16")
    b = batch(ds, store)
    assert b["frozen_states"].dtype == torch.float16
    with torch.no_grad():
        got, want = frozen(**b)["logits"], full(**{key: v for key, v in b.items() if key != "frozen_states"})["logits"]
    assert torch.allclose(got, want, atol=1e-2) and not torch.equal(got, want)


def test_the_frozen_part_neither_trains_nor_drops_out(tokenizer):
    m = model(2, entity_embedding=True, encoder_dropout=0.5).train()
    frozen_params = {id(p) for module in m.frozen for p in module.parameters()}
    assert all(not module.training for module in m.frozen) and m.encoder.encoder.layer[2].training
    b = batch(rows(tokenizer))
    first, second = (frozen_module.lower_states(m.encoder, 2, b["input_ids"], b["attention_mask"]) for _ in range(2))
    assert torch.equal(first, second)  # dropout 0.5 is on in the trained layer, off below
    m(**b)["loss"].backward()
    for p in m.parameters():
        assert (p.grad is None) == (id(p) in frozen_params)
    assert m.entity_embedding.embedding.weight.grad.abs().sum() > 0  # added at the first trained layer


def test_the_store_is_reused_only_for_the_same_text_tokenizer_backbone_and_k(tokenizer, tmp_path):
    said = []
    base = model(2)
    ds = rows(tokenizer)
    first, (first_ds,) = build(base, 2, tokenizer, [ds], tmp_path, log=said.append)
    again, _ = build(model(2), 2, tokenizer, [ds], tmp_path, log=said.append)
    assert again.folder == first.folder and any("reusing" in line for line in said)
    part, (part_ds,) = build(model(2), 2, tokenizer, [rows(tokenizer, SENTENCES[2:])], tmp_path)
    assert part.folder == first.folder  # a subset of a store's rows (a screen of a full run) is served by it
    n = len(part_ds[0]["input_ids"])
    assert torch.equal(batch(part_ds, part)["frozen_states"][0, :n], batch(first_ds, first)["frozen_states"][2, :n])
    upper = model(2)
    with torch.no_grad():
        upper.encoder.encoder.layer[2].output.dense.weight.add_(1.0)  # a trained layer: the store still holds
    assert build(upper, 2, tokenizer, [ds], tmp_path)[0].folder == first.folder
    lower = model(2)
    with torch.no_grad():
        lower.encoder.encoder.layer[1].output.dense.weight.add_(1e-3)  # another backbone file (or TAPT)
    other_tokenizer = tokenizer_at(tmp_path / "tok2")
    other_tokenizer.add_tokens(["⟨new⟩"])
    changed = {
        "text": build(base, 2, tokenizer, [rows(tokenizer, [*SENTENCES[:3], "이순신은 무신이다."])], tmp_path),
        "tokenizer": build(base, 2, other_tokenizer, [ds], tmp_path),
        "backbone": build(lower, 2, tokenizer, [ds], tmp_path),
        "K": build(model(1), 1, tokenizer, [ds], tmp_path),
    }
    folders = {what: store.folder for what, (store, _) in changed.items()}
    assert first.folder not in folders.values() and len(set(folders.values())) == 4, folders


def test_one_store_serves_several_datasets_and_shares_their_repeated_rows(tokenizer, tmp_path):
    train, test = rows(tokenizer), rows(tokenizer, [SENTENCES[1], "조선의 무신이다. 이순신은"])
    store, (train_ds, test_ds) = build(model(2), 2, tokenizer, [train, test], tmp_path)
    assert len(store.lengths) == 5  # the repeated sentence is stored once
    assert test_ds[0]["frozen_row"] == train_ds[1]["frozen_row"]
    b = batch(test_ds, store)
    assert torch.equal(b["frozen_states"][0], batch(train_ds, store)["frozen_states"][1][: b["input_ids"].shape[1]])


def killed_build(folder: str) -> None:
    """Child process: build a store and die by SIGKILL while writing its second batch."""
    tokenizer = tokenizer_at(Path(folder) / "child")
    calls = []
    lower = frozen_module.lower_states

    def dying(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return lower(*args)

    import re_pipeline.training.frozen_cache as frozen_cache

    frozen_cache.lower_states = dying
    build(model(2), 2, tokenizer, [rows(tokenizer)], Path(folder) / "frozen-cache")


def test_a_killed_or_damaged_store_is_never_read(tokenizer, tmp_path):
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_frozen; test_frozen.killed_build({str(tmp_path)!r})"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    left = list((tmp_path / "frozen-cache" / "frozen").iterdir())
    assert left and all(p.name.endswith(".tmp") for p in left)  # only the unfinished temporary folder
    said = []
    m = model(2).eval()
    store, (ds,) = build(m, 2, tokenizer, [rows(tokenizer)], tmp_path / "frozen-cache", log=said.append)
    assert not any("reusing" in line for line in said)
    b = batch(ds, store)
    want = frozen_module.lower_states(m.encoder, 2, b["input_ids"], b["attention_mask"])
    assert torch.allclose(b["frozen_states"], want * b["attention_mask"][..., None], atol=1e-6)
    for damage in ("truncate", "no manifest"):
        if damage == "truncate":
            with open(store.folder / "states.bin", "r+b") as fh:
                fh.truncate(100)
        else:
            (store.folder / "store.json").unlink()
        said.clear()
        store, _ = build(m, 2, tokenizer, [rows(tokenizer)], tmp_path / "frozen-cache", log=said.append)
        assert not any("reusing" in line for line in said), damage
        assert torch.equal(batch(ds, store)["frozen_states"], b["frozen_states"])


def test_settings_that_cannot_work_with_frozen_layers_are_refused():
    with pytest.raises(PipelineError, match="entity_dropout"):
        ModelConfig(backbone=BackboneConfig(freeze_layers=2), entity_dropout=0.1)
    ModelConfig(backbone=BackboneConfig(freeze_layers=2, frozen_cache="none"), entity_dropout=0.1)  # computed live
    with pytest.raises(PipelineError, match="peft"):
        load_config(None, ["model.backbone.freeze_layers=2", "model.peft.method=lora"])
    with pytest.raises(PipelineError, match="has 3 layers"):
        model(4)
    with pytest.raises(PipelineError, match="frozen_cache"):
        BackboneConfig(frozen_cache="bfloat8")


def test_throughput_counts_the_model_flops_of_what_runs():
    config = BertConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    per_row = [2 * n * (4 * 16 * 16 + 2 * 16 * 32) + 4 * n * n * 16 for n in (3, 4)]
    for frozen, cached, passes in ((0, False, 3 + 6), (2, False, 3 + 2), (2, True, 1 + 2)):
        meter = Throughput(config, frozen, cached, precision="fp32")
        meter.count({"attention_mask": mask})
        assert meter.rows == 2 and meter.tokens == 7 and meter.flops == pytest.approx(sum(per_row) * passes)
    meter.wall, meter.step_seconds = 2.0, 1.5
    summary = meter.summary()
    assert summary["rows_per_s"] == 1.0 and summary["gflops"] == pytest.approx(meter.flops / 2e9, abs=0.1)
    assert summary["peak_gflops"]["fp32"] > 0 and summary["mfu"] == pytest.approx(
        summary["gflops"] / summary["peak_gflops"]["fp32"], abs=1e-3
    )
    assert summary["seconds"] == {"steps": 1.5, "evaluation": 0.0, "other": 0.5}


def test_the_store_reads_rows_into_zero_padded_batches(tokenizer, tmp_path):
    store, (ds,) = build(model(1), 1, tokenizer, [rows(tokenizer)], tmp_path)
    states = store.states([ds[0]["frozen_row"], ds[0]["frozen_row"]], 40)
    n = len(ds[0]["input_ids"])
    assert states.shape == (2, 40, 16) and torch.equal(states[0], states[1])
    assert states[0, n:].abs().sum() == 0 and states[0, :n].abs().sum() > 0
    assert np.all(store.lengths[:-1] <= store.lengths[1:])  # shortest first
