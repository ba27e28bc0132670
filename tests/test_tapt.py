"""TAPT: gathered-head loss/gradients match the stock MaskedLM, masking stays inside sentences,
whole-word masking keeps words together, and a tiny run learns and saves a loadable encoder."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

from re_pipeline.core.errors import PipelineError
from re_pipeline.models.backbone import BackboneConfig, load_encoder
from re_pipeline.models.tokenizer import train_tokenizer
from re_pipeline.training.tapt import GatheredMLM, TaptConfig, encode, find_lm_head, make_collator, run_tapt

SUBJECTS = ["이순신은", "김철수는", "삼성전자는", "비틀즈는", "조지 해리슨은", "서울대학교는"]
PLACES = ["서울에서", "부산에서", "조선에서", "런던에서"]
YEARS = ["1969년", "1545년", "2019년"]
VERBS = ["태어났다.", "설립되었다.", "노래를 발표했다.", "무신으로 활동했다."]
SENTENCES = [f"{s} {y} {p} {v}" for s, y, p, v in itertools.product(SUBJECTS, YEARS, PLACES, VERBS)]

TINY = BackboneConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position=66, dropout=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, vocab_size=500)


def tiny_mlm(kind: str):
    from transformers import BertConfig, BertForMaskedLM, XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    sizes = dict(vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if kind == "bert":
        return BertForMaskedLM(BertConfig(**sizes, **no_dropout))
    return XLMRobertaForMaskedLM(XLMRobertaConfig(**sizes, **no_dropout, max_position_embeddings=66))


@pytest.mark.parametrize("kind", ["xlmr", "bert"])
def test_gathered_head_matches_full_head(kind: str) -> None:
    model = tiny_mlm(kind)
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 500, (4, 12), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2:, 9:] = 0
    input_ids[2:, 9:] = 1
    labels = torch.where(torch.rand(input_ids.shape, generator=gen) < 0.3, input_ids, -100)
    labels = labels.masked_fill(attention_mask == 0, -100)
    assert (labels != -100).sum() > 3

    full = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    full.backward()
    full_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    gathered = GatheredMLM(model)(input_ids=input_ids, attention_mask=attention_mask, labels=labels)

    assert gathered["logits"].shape == ((labels != -100).sum().item(), 500)
    assert abs(gathered["loss"].item() - full.item()) < 1e-5
    gathered["loss"].backward()
    for name, param in model.named_parameters():
        assert torch.allclose(param.grad, full_grads[name], atol=1e-6), name


def test_find_lm_head_refuses_split_heads() -> None:
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    xlmr, bert = tiny_mlm("xlmr"), tiny_mlm("bert")
    assert find_lm_head(xlmr) is xlmr.lm_head and find_lm_head(bert) is bert.cls
    model = DistilBertForMaskedLM(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    with pytest.raises(PipelineError, match="LM head"):
        find_lm_head(model)


def in_sentence(tokenizer, input_ids: torch.Tensor) -> torch.Tensor:
    return ~torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids))


@pytest.mark.parametrize("whole_word", [False, True])
def test_masking_stays_inside_sentences(tokenizer, whole_word: bool) -> None:
    features = encode(SENTENCES[:8] + ["서울"], tokenizer, max_length=16, whole_word=whole_word)
    original = tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], return_tensors="pt")["input_ids"]
    inside = in_sentence(tokenizer, original)
    assert (~inside).any() and (original == tokenizer.pad_token_id).any()

    every = make_collator(tokenizer, TaptConfig(mlm_probability=1.0, whole_word=whole_word))(features)
    assert torch.equal(every["labels"] != -100, inside)
    assert torch.equal(every["labels"][inside], original[inside])
    assert torch.equal(every["input_ids"][~inside], original[~inside])
    assert (every["input_ids"] == tokenizer.mask_token_id).sum() > 0.6 * inside.sum()

    some = make_collator(tokenizer, TaptConfig(mlm_probability=0.3, whole_word=whole_word, seed=3))(features)
    changed = (some["input_ids"] != original) | (some["labels"] != -100)
    assert changed.any() and not (changed & ~inside).any()
    assert torch.equal(some["input_ids"][some["labels"] == -100], original[some["labels"] == -100])


@pytest.mark.parametrize("whole_word", [False, True])
def test_seeded_masking_is_the_same_outside_the_main_process(tokenizer, whole_word: bool, monkeypatch) -> None:
    """A spawned process (a benchmark child, a job) masks exactly as the main process does, with no error."""
    from transformers.data import data_collator

    features = encode(SENTENCES[:8], tokenizer, max_length=16, whole_word=whole_word)
    config = TaptConfig(mlm_probability=0.3, whole_word=whole_word, seed=5)
    main = make_collator(tokenizer, config)(features)
    monkeypatch.setattr(data_collator.mp, "current_process", lambda: type("Process", (), {"name": "SpawnProcess-1"})())
    child = make_collator(tokenizer, config)(features)
    assert torch.equal(main["input_ids"], child["input_ids"]) and torch.equal(main["labels"], child["labels"])


def test_whole_word_masking_masks_all_pieces(tokenizer) -> None:
    features = encode(SENTENCES, tokenizer, max_length=32, whole_word=True)
    batch = make_collator(tokenizer, TaptConfig(mlm_probability=0.3, whole_word=True, seed=5))(features)
    multi_piece_masked = 0
    for row, feature in enumerate(features):
        words: dict[int, set[bool]] = {}
        for pos, word in enumerate(feature["units"]):
            if word >= 0:
                words.setdefault(word, set()).add(bool(batch["labels"][row, pos] != -100))
        assert all(len(flags) == 1 for flags in words.values()), feature
        multi_piece_masked += sum(feature["units"].count(w) > 1 and flags == {True} for w, flags in words.items())
    assert multi_piece_masked > 10
    masked_share = (batch["labels"] != -100).sum() / sum(w >= 0 for f in features for w in f["units"])
    assert 0.15 < masked_share < 0.45


def test_tiny_run_learns_and_saves_loadable_encoder(tokenizer, tmp_path) -> None:
    config = TaptConfig(steps=20, batch_size=16, learning_rate=5e-3, warmup_ratio=0.0, max_length=32, whole_word=True)
    out = run_tapt(SENTENCES, tokenizer, None, TINY, config, tmp_path / "tapt")

    log = json.loads((out / "tapt_log.json").read_text())
    losses = [e["loss"] for e in log["loss"]]
    assert log["steps"] == 20 and len(losses) == 20 and log["sentences_per_s"] > 0
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5

    saved = load_file(out / "model.safetensors")
    encoder = load_encoder(str(out), len(tokenizer))
    state = encoder.state_dict()
    assert state and all(torch.equal(value, saved[f"roberta.{key}"]) for key, value in state.items())
    assert len(load_encoder(str(out)).get_input_embeddings().weight) == len(tokenizer)
    assert (out / "tokenizer.json").exists()

    from transformers import AutoModelForMaskedLM

    mlm, info = AutoModelForMaskedLM.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert mlm.lm_head.decoder.weight is mlm.roberta.embeddings.word_embeddings.weight
