"""Layer-wise learning-rate decay (`train.layer_decay`): each encoder layer's rate a factor of the one above."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, TrainingArguments

from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.training.hf_trainer import RelationTrainer


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        config = BertConfig(
            vocab_size=50, hidden_size=8, num_hidden_layers=3, num_attention_heads=2, intermediate_size=16
        )
        self.encoder, self.head = BertModel(config, add_pooling_layer=False), torch.nn.Linear(8, 4)
        self.encoder.encoder.layer[0].requires_grad_(False)  # a frozen layer stays out of the optimizer


def rates(tmp_path, decay):
    model = Tiny()
    args = TrainingArguments(str(tmp_path), learning_rate=1e-3, weight_decay=0.1, use_cpu=True, report_to=[])
    optimizer = RelationTrainer(model=model, args=args, layer_decay=decay).create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}


def test_each_layer_learns_at_the_decay_times_the_rate_above_and_the_head_at_the_full_rate(tmp_path):
    lr = rates(tmp_path, 0.5)
    assert lr["head.weight"] == (1e-3, 0.1) and lr["head.bias"] == (1e-3, 0.0)
    assert lr["encoder.encoder.layer.2.output.dense.weight"] == (5e-4, 0.1)
    assert lr["encoder.encoder.layer.1.attention.self.query.weight"] == (2.5e-4, 0.1)
    assert lr["encoder.encoder.layer.1.output.LayerNorm.weight"] == (2.5e-4, 0.0)
    assert lr["encoder.embeddings.word_embeddings.weight"] == (pytest.approx(6.25e-5), 0.1)
    assert not any(name.startswith("encoder.encoder.layer.0.") for name in lr)
    assert set(rates(tmp_path, 1.0).values()) == {(1e-3, 0.1), (1e-3, 0.0)}  # 1: the stock two groups


def test_the_decay_must_be_a_factor_in_0_to_1():
    with pytest.raises(PipelineError, match="train.layer_decay"):
        load_config(None, ["train.layer_decay=1.5"])
