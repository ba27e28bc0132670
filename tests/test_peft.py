"""Parameter-efficient fine-tuning on a tiny encoder: what trains, save/load onto a fresh base, LoRA merge, end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from test_pipeline import TINY_MODEL

from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.features import prepare_tokenizer
from re_pipeline.data.markers import MarkerConfig, added_tokens
from re_pipeline.models.backbone import BackboneConfig, build_encoder, default_tokenizer, load_encoder
from re_pipeline.models.peft import (
    Bottleneck,
    PeftConfig,
    VirtualTokens,
    apply_peft,
    merge_for_inference,
    new_token_ids,
    peft_state_dict,
    trainable_parameters,
)
from re_pipeline.models.relation import ModelConfig, RelationModel
from re_pipeline.models.store import load_relation_model, save_relation_model

TINY = BackboneConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position=40)
LABELS = LabelSet(("no_relation", "per:title", "org:founded", "per:origin"))
METHODS = {
    "lora": {"method": "lora", "rank": 4},
    "houlsby": {"method": "houlsby", "reduction_factor": 4},
    "pfeiffer": {"method": "pfeiffer", "reduction_factor": 4},
    "prefix": {"method": "prefix", "num_virtual_tokens": 3},
    "prefix-mlp": {"method": "prefix", "num_virtual_tokens": 3, "prefix_projection": True},
    "prompt": {"method": "prompt", "num_virtual_tokens": 3},
    "p-tuning-mlp": {"method": "prompt", "num_virtual_tokens": 3, "encoder": "mlp"},
    "p-tuning-lstm": {"method": "prompt", "num_virtual_tokens": 3, "encoder": "lstm"},
}
# State-dict key parts of each method's own parameters (inside the encoder).
PARTS = {
    "lora": ("lora_A", "lora_B"),
    "houlsby": (".1.down.", ".1.up."),
    "pfeiffer": (".1.down.", ".1.up."),
    "prefix": ("encoder.prompt.",),
    "prompt": ("encoder.prompt.",),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A trained tokenizer plus 8 marker tokens, and a tiny encoder saved for the vocabulary before the markers."""
    root = tmp_path_factory.mktemp("base")
    tokenizer = default_tokenizer(
        ["김민준은 서울에서 태어났다.", "한빛전자는 1990년에 설립되었다."] * 10,
        BackboneConfig(vocab_size=150),
        root / "tok",
    )
    torch.manual_seed(0)
    build_encoder(TINY, len(tokenizer)).save_pretrained(root / "encoder")
    prepare_tokenizer(tokenizer, MarkerConfig(format="typed_entity_marker"), ["PER", "LOC"])
    return tokenizer, root / "encoder"


def make(base, head="linear", **peft) -> RelationModel:
    tokenizer, encoder_dir = base
    torch.manual_seed(0)
    encoder = load_encoder(str(encoder_dir), len(tokenizer))
    model = RelationModel(
        encoder, ModelConfig(backbone=TINY, head=head, type_pair_heads=False, peft=PeftConfig(**peft)), len(LABELS)
    )
    return apply_peft(model, new_token_ids(tokenizer)).eval()


def batch(base, n=4, length=10):
    tokenizer, _ = base
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tokenizer), (n, length), generator=g)
    ids[:, 1], ids[:, 4] = new_token_ids(tokenizer)[:2]  # markers at the pooled positions
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, 7:], ids[0, 7:] = 0, tokenizer.pad_token_id
    entity = torch.zeros(n, length, dtype=torch.long)
    entity[:, 2:4], entity[:, 5] = 1, 2
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "subj_start": torch.full((n,), 1),
        "obj_start": torch.full((n,), 4),
        "entity_mask": entity,
        "labels": torch.tensor([0, 1, 2, 3][:n]),
    }


def train(model, b, steps=3):
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**b)["loss"].backward()
        optimizer.step()
    return model.eval()


def embedding_rows(model, vocab: int) -> torch.Tensor:
    """The effective input embedding of every token (trained marker rows included)."""
    return model.encoder.get_input_embeddings()(torch.arange(vocab)).detach()


def test_new_token_ids_are_the_added_markers(base):
    tokenizer, _ = base
    ids = new_token_ids(tokenizer)
    assert tokenizer.convert_ids_to_tokens(ids) == added_tokens(
        MarkerConfig(format="typed_entity_marker"), ["PER", "LOC"]
    )
    assert len(ids) == 8 and ids[-1] == len(tokenizer) - 1


@pytest.mark.parametrize("name", METHODS)
def test_only_the_method_parts_heads_and_marker_rows_train(base, name):
    model = make(base, head="lstm", **METHODS[name])
    count, percent = trainable_parameters(model)
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad) and 0 < percent < 100
    before, rows_before = {k: v.clone() for k, v in model.state_dict().items()}, embedding_rows(model, len(base[0]))
    b = batch(base)
    after = train(model, b).state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    parts = PARTS[METHODS[name]["method"]]
    own = {k for k in after if any(p in k for p in parts)}
    assert own and own <= changed  # every parameter of the method trained
    frozen = [k for k in changed if k.startswith("encoder.") and k not in own and "trainable_tokens_delta" not in k]
    assert frozen == []  # ... and nothing else of the encoder
    assert {"classifier.weight", "entity_embedding.embedding.weight", "sequence.lstm.weight_ih_l0"} <= changed
    moved = (embedding_rows(model, len(base[0])) != rows_before).any(dim=1).nonzero().flatten().tolist()
    assert moved == sorted(
        set(b["input_ids"].flatten().tolist()) & set(new_token_ids(base[0]))
    )  # the markers used, not the whole matrix


@pytest.mark.parametrize("name", METHODS)
def test_without_new_tokens_the_whole_base_is_frozen(base, name):
    tokenizer, encoder_dir = base
    model = RelationModel(
        load_encoder(str(encoder_dir), len(tokenizer)),
        ModelConfig(backbone=TINY, type_pair_heads=False, peft=PeftConfig(**METHODS[name])),
        len(LABELS),
    )
    plain = {n for n, _ in model.encoder.named_parameters()}
    apply_peft(model, [])
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert trainable and not any(n in plain or "base_layer" in n or "word_embeddings" in n for n in trainable)


@pytest.mark.parametrize("name", ["lora", "houlsby", "pfeiffer"])
def test_freshly_inserted_lora_or_adapters_leave_the_outputs_unchanged(base, name):
    plain, adapted = make(base), make(base, **METHODS[name])
    b = batch(base)
    assert torch.equal(plain(**b)["logits"], adapted(**b)["logits"])
    per_layer = {"lora": 0, "houlsby": 2, "pfeiffer": 1}[name]
    assert sum(isinstance(m, Bottleneck) for m in adapted.modules()) == per_layer * TINY.num_layers


@pytest.mark.parametrize("name", METHODS)
def test_save_then_load_onto_a_fresh_base_gives_the_same_logits(base, name, tmp_path):
    tokenizer, encoder_dir = base
    model = train(make(base, **METHODS[name]), batch(base))
    b = batch(base)
    expected = model(**b)["logits"]
    save_relation_model(model, tokenizer, LABELS, [], tmp_path / "model", base=encoder_dir)
    meta = json.loads((tmp_path / "model" / "relation_model.json").read_text())
    assert meta["peft"]["token_ids"] == new_token_ids(tokenizer) and meta["peft"]["base"] == str(encoder_dir.resolve())
    loaded = load_relation_model(tmp_path / "model")[0]
    assert torch.allclose(loaded(**b)["logits"], expected, atol=1e-6, rtol=0)
    saved = set(load_file(tmp_path / "model" / "model.safetensors"))
    assert saved == set(peft_state_dict(model)) and not any(
        "word_embeddings.weight" in k or "base_layer" in k for k in saved
    )


def test_lora_merge_gives_the_unmerged_logits(base):
    model = train(make(base, **METHODS["lora"]), batch(base))
    b = batch(base)
    unmerged = model(**b)["logits"]
    merge_for_inference(model)
    assert any(getattr(m, "merged", False) for m in model.modules())
    assert torch.allclose(model(**b)["logits"], unmerged, atol=1e-5, rtol=0)
    with pytest.raises(PipelineError, match="merged"):
        peft_state_dict(model)


def test_a_moved_base_is_a_clear_error(base, tmp_path):
    tokenizer, encoder_dir = base
    shutil.copytree(encoder_dir, tmp_path / "base")
    save_relation_model(
        make(base, method="lora"), tokenizer, LABELS, [], tmp_path / "runs" / "model", base=tmp_path / "base"
    )
    shutil.move(tmp_path / "runs", tmp_path / "moved")  # relative path to the base no longer resolves, absolute does
    assert load_relation_model(tmp_path / "moved" / "model")[0] is not None
    shutil.rmtree(tmp_path / "base")
    with pytest.raises(PipelineError, match="base encoder is gone"):
        load_relation_model(tmp_path / "moved" / "model")
    with pytest.raises(PipelineError, match="without its frozen encoder"):
        save_relation_model(make(base, method="lora"), tokenizer, LABELS, [], tmp_path / "m2")


def test_prefix_wiring_equals_peft_prefix_model(base):
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    model = make(base, method="prefix", num_virtual_tokens=3)
    b = batch(base)
    embeds = model.encoder.get_input_embeddings()(b["input_ids"]).detach()
    ours = model.encoder(inputs_embeds=embeds, attention_mask=b["attention_mask"]).last_hidden_state
    reference = get_peft_model(
        load_encoder(str(base[1]), len(base[0])),
        PrefixTuningConfig(task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=3),
    ).eval()
    reference.prompt_encoder.default.embedding.weight.data.copy_(model.encoder.prompt.embedding.weight)
    theirs = reference(inputs_embeds=embeds, attention_mask=b["attention_mask"]).last_hidden_state
    without = model.encoder.model(inputs_embeds=embeds, attention_mask=b["attention_mask"]).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-6) and not torch.allclose(
        ours, without, atol=1e-3
    )  # same as peft's, and the prefix acts


@pytest.mark.parametrize("method", ["prefix", "prompt"])
@pytest.mark.parametrize("arch", ["bert", "roberta", "xlm-roberta"])
def test_virtual_tokens_keep_positions_masks_and_pooled_states(method, arch):
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(
        arch,
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=14,
    )
    torch.manual_seed(0)
    encoder = VirtualTokens(
        AutoModel.from_config(config, add_pooling_layer=False), PeftConfig(method=method, num_virtual_tokens=12)
    ).eval()
    embeds, mask = torch.randn(2, 10, 32), torch.ones(2, 10, dtype=torch.long)
    mask[0, 6:] = 0
    # 12 virtual + 10 real tokens would overflow a 14-position table if the real tokens were shifted
    states = encoder(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    assert states.shape == (2, 10, 32)
    alone = encoder(inputs_embeds=embeds[:1, :6], attention_mask=mask[:1, :6]).last_hidden_state
    assert torch.allclose(alone, states[:1, :6], atol=1e-5)  # padding stays masked, virtual tokens attended


def test_adapters_and_virtual_tokens_refuse_other_architectures(base):
    from transformers import DistilBertConfig, DistilBertModel

    encoder = DistilBertModel(DistilBertConfig(vocab_size=60, dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    model = RelationModel(encoder, ModelConfig(type_pair_heads=False, peft=PeftConfig(method="houlsby")), len(LABELS))
    with pytest.raises(
        PipelineError, match="supports bert, roberta, xlm-roberta encoders, not 'distilbert'; use lora"
    ):
        apply_peft(model, [])
    with pytest.raises(PipelineError, match="model.peft.target_modules"):
        make(base, method="lora", target_modules=["no_such_module"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.peft.method=adapterz", "model.peft.method must be one of none, lora"),
        ("model.peft.rank=0", "model.peft.rank must be at least 1"),
        ("model.peft.dropout=1.5", "model.peft.dropout"),
        ("model.peft.target_modules=[]", "model.peft.target_modules"),
        ("model.peft.encoder=gru", "model.peft.encoder must be null, mlp or lstm"),
        ("model.peft.encoder=mlp", "encoder applies to method prompt only"),
        ("model.peft.prefix_projection=true", "prefix_projection applies to method prefix only"),
        ("model.peft.rnak=4", "unknown key"),
    ],
)
def test_bad_peft_settings_are_errors_naming_the_key(override, message):
    with pytest.raises(PipelineError, match=message):
        load_config(None, [override])


@pytest.mark.cpu_exact
def test_lora_run_end_to_end_saves_a_small_fold_model_that_predicts_like_the_run(tmp_path):
    import numpy as np

    from re_pipeline.data.sample import write_sample
    from re_pipeline.pipeline import run_pipeline
    from re_pipeline.predict import predict_file
    from re_pipeline.submit.submission import read_submission, validate_submission

    train_csv, test_csv = write_sample(tmp_path / "sample", n_train=80, n_test=20)
    tiny = [
        *TINY_MODEL,
        "train.split=random",
        "train.max_steps=4",
        "train.eval_steps=2",
        "train.batch_size=16",
        "train.learning_rate=0.001",
        "train.logging_steps=2",
        "model.peft.method=lora",
        "model.peft.rank=2",
        "model.type_pair_heads=false",  # pair heads are large next to a 1-layer encoder: compare the PEFT parts
    ]
    config = load_config(None, [*tiny, f"data.train={train_csv}", f"data.test={test_csv}"])
    logs = []
    run = run_pipeline(
        config,
        run_dir=tmp_path / "runs" / "r",
        submissions_dir=tmp_path / "subs",
        log=logs.append,
        cache=tmp_path / "cache",
    )
    assert any("PEFT lora" in m and "trainable parameters" in m for m in logs)
    result = json.loads((run / "result.json").read_text())
    assert validate_submission(result["submission"], [str(i) for i in range(20)], LabelSet.klue()) == []
    meta = json.loads((run / "fold0" / "model" / "relation_model.json").read_text())
    assert meta["peft"]["base_relative"] == "../../base_encoder" and meta["model"]["peft"]["method"] == "lora"
    fold_weights = (run / "fold0" / "model" / "model.safetensors").stat().st_size
    assert fold_weights * 4 < (run / "base_encoder" / "model.safetensors").stat().st_size
    _, _, run_probs = read_submission(result["submission"])
    _, _, again = read_submission(predict_file(run, test_csv, tmp_path / "again.csv", log=lambda m: None))
    assert np.allclose(run_probs, again, atol=1e-5)
