"""Relation model parts on a tiny encoder: pooling, heads, per-type-pair masking, losses, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from re_pipeline.core.errors import PipelineError
from re_pipeline.models.backbone import BackboneConfig, build_encoder
from re_pipeline.models.losses import LOSSES, LossConfig, inverse_sqrt_weights, relation_loss
from re_pipeline.models.relation import (
    HEADS,
    MASKED_LOSS_LOGIT,
    POOLERS,
    ModelConfig,
    RelationModel,
    pair_vocabulary,
)

TINY = BackboneConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position=40)
LABELS = 5


def batch(n=4, length=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, 7:] = 0
    ids[0, 7:] = 1
    entity = torch.zeros(n, length, dtype=torch.long)
    entity[:, 2:4] = 1
    entity[:, 5:6] = 2
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "subj_start": torch.full((n,), 1),
        "obj_start": torch.full((n,), 4),
        "entity_mask": entity,
        "labels": torch.tensor([0, 1, 2, 3][:n]),
    }


def model(**cfg):
    torch.manual_seed(0)
    pair_labels = cfg.pop("pair_labels", None)
    cfg.setdefault("type_pair_heads", pair_labels is not None)
    return RelationModel(build_encoder(TINY, 50), ModelConfig(backbone=TINY, **cfg), LABELS, pair_labels)


@pytest.mark.parametrize("pooling", POOLERS)
@pytest.mark.parametrize("head", HEADS)
def test_shapes_and_loss_for_every_pooling_and_head(pooling, head):
    """Every entry of the pooling and head tables: the declared width, finite loss, gradients everywhere."""
    m = model(pooling=pooling, head=head)
    b = batch()
    assert m.encode(b).shape == (4, m.pooler.out_dim)
    out = m(**b)
    assert out["logits"].shape == (4, LABELS) and out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    for part in (m.classifier, m.pooler, m.sequence):
        params = list(part.parameters()) if part is not None else []
        assert all(p.grad is not None for p in params)
        assert not params or sum(p.grad.abs().sum() for p in params) > 0


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_every_loss_is_finite_and_lower_for_the_right_answer(name, weighted):
    labels = torch.tensor([0, 2, 1])
    right = torch.nn.functional.one_hot(labels, 3).float() * 4
    config = LossConfig(name=name, class_weighted=weighted)
    weights = torch.tensor([0.5, 1.0, 2.0])
    good, bad = (relation_loss(x, labels, config, weights) for x in (right, -right))
    assert good.ndim == 0 and torch.isfinite(good) and good < bad


def test_unknown_names_are_refused_with_the_table():
    for section, value, table in (("pooling", "max", POOLERS), ("head", "crf", HEADS)):
        with pytest.raises(PipelineError, match=", ".join(table)):
            ModelConfig(**{section: value})
    with pytest.raises(PipelineError, match=", ".join(LOSSES)):
        LossConfig(name="hinge")


def test_entity_start_pooling_reads_the_marker_positions():
    m = model(pooling="entity_start", entity_embedding=False).eval()
    b = batch()
    states = m.encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    pooled = m.pooler(states, b)
    assert torch.allclose(pooled, torch.cat([states[:, 1], states[:, 4]], dim=-1))


def test_lstm_ignores_padding():
    m = model(head="lstm", pooling="cls").eval()
    b = batch()
    short = {k: (v[:1, :7] if v.ndim == 2 else v[:1]) for k, v in b.items()}
    padded = {k: v[:1] for k, v in b.items()}
    assert torch.allclose(m(**short)["logits"], m(**padded)["logits"], atol=1e-5)


def test_an_lstm_head_with_weights_in_one_flat_buffer_saves_and_reloads(tmp_path):
    from safetensors.torch import load_model, save_model

    m = model(head="lstm", pooling="cls").eval()
    lstm = m.sequence.lstm  # on a GPU, cuDNN makes its weights views of one buffer: done by hand here
    flat = torch.cat([w.detach().reshape(-1) for w in lstm.parameters()])
    offset = 0
    for w in lstm.parameters():
        w.data = flat[offset : offset + w.numel()].view_as(w)
        offset += w.numel()
    save_model(m, str(tmp_path / "m.safetensors"))
    again = model(head="lstm", pooling="cls").eval()
    load_model(again, str(tmp_path / "m.safetensors"))
    assert torch.equal(again(**batch())["logits"], m(**batch())["logits"])


def test_entity_embedding_starts_at_zero_and_changes_nothing():
    with_emb, without = model(entity_embedding=True).eval(), model(entity_embedding=False).eval()
    without.load_state_dict(with_emb.state_dict(), strict=False)
    b = batch()
    assert torch.equal(with_emb(**b)["logits"], without(**b)["logits"])
    with_emb.train()
    with_emb(**b)["loss"].backward()
    assert with_emb.entity_embedding.embedding.weight.grad.abs().sum() > 0


def test_type_pair_heads_mask_exactly_and_train_only_their_pair():
    names, allowed = pair_vocabulary([("PER", "LOC"), ("PER", "LOC"), ("ORG", "DAT")], [0, 3, 2], LABELS)
    assert names == ["ORG|DAT", "PER|LOC"] and allowed.tolist() == [
        [False, False, True, False, False],
        [True, False, False, True, False],
    ]
    m = model(type_pair_heads=True, pair_labels=allowed)
    b = batch()
    b["pair"] = torch.tensor([1, 1, 0, -1])  # the last row's pair was never seen: shared head, all labels
    b["labels"] = torch.tensor([3, 0, 2, 4])
    out = m(**b)
    probs = out["logits"].softmax(-1)
    assert (probs[0, [1, 2, 4]] == 0).all() and (probs[2, [0, 1, 3, 4]] == 0).all() and probs[2, 2] == 1
    assert (probs[3] > 0).all() and torch.isfinite(out["loss"])
    out["loss"].backward()
    grad = m.pair_heads.weight.grad
    assert grad[1].abs().sum() > 0  # PER|LOC rows trained their head
    assert (
        grad[0].abs().sum() == 0
    )  # ORG|DAT's only relation is certain: nothing to learn, and no leak from other pairs
    assert (grad[1][:, [1, 2, 4]] == 0).all()  # masked relations get no gradient


def test_a_gold_label_its_pair_head_blocks_is_scored_by_the_shared_head():
    _, allowed = pair_vocabulary([("PER", "LOC")], [0], LABELS)
    m = model(type_pair_heads=True, pair_labels=allowed, loss=LossConfig(class_weighted=False)).eval()
    b = batch(1)
    b["pair"], b["labels"] = (
        torch.tensor([0]),
        torch.tensor([3]),
    )  # a validation row: relation 3 never seen for PER|LOC
    out = m(**b)
    shared = m.classifier(m.encode(b))
    expected = 2 * torch.nn.functional.cross_entropy(
        shared, b["labels"]
    )  # the pair term falls back to the shared head
    assert out["loss"] < 20 and torch.isclose(out["loss"], expected)
    assert out["logits"].softmax(-1)[0, 3] == 0  # the prediction still blocks it


def test_label_smoothing_spreads_over_the_allowed_labels_only():
    logits = torch.zeros(1, 30)
    allowed = torch.zeros(1, 30, dtype=torch.bool)
    allowed[0, :10] = True
    masked = logits.masked_fill(~allowed, MASKED_LOSS_LOGIT)
    labels, config = torch.tensor([2]), LossConfig(label_smoothing=0.1)
    everywhere = torch.nn.functional.cross_entropy(masked, labels, label_smoothing=0.1)
    assert everywhere > 600  # the old loss: 2 % of the target on each of 20 blocked classes at -1e4
    assert torch.isclose(relation_loss(masked, labels, config, allowed=allowed), torch.tensor(math.log(10)))
    weights = torch.rand(30) + 0.5
    free = torch.randn(4, 30)
    for w in (None, weights):  # with every label allowed it is torch's own label smoothing
        ours = relation_loss(
            free,
            torch.tensor([0, 5, 9, 29]),
            LossConfig(label_smoothing=0.2, class_weighted=w is not None),
            w,
            torch.ones(4, 30, dtype=torch.bool),
        )
        torch_ce = torch.nn.functional.cross_entropy(free, torch.tensor([0, 5, 9, 29]), weight=w, label_smoothing=0.2)
        assert torch.isclose(ours, torch_ce, atol=1e-6)


def test_losses():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 2])
    ce = relation_loss(logits, labels, LossConfig())
    assert torch.isclose(ce, torch.nn.functional.cross_entropy(logits, labels))
    focal0 = relation_loss(logits, labels, LossConfig(name="focal", focal_gamma=0.0))
    assert torch.isclose(focal0, ce)
    assert relation_loss(logits, labels, LossConfig(name="focal", focal_gamma=2.0)) < ce
    smooth = relation_loss(logits, labels, LossConfig(label_smoothing=0.1))
    assert smooth > ce
    w = inverse_sqrt_weights([0, 0, 0, 0, 1], 3)
    assert torch.isclose(w.mean(), torch.tensor(1.0)) and w[2] == w.max() and w[0] < w[1]
    weighted = relation_loss(logits, labels, LossConfig(class_weighted=True), torch.tensor([1.0, 1.0, 0.0]))
    assert torch.isclose(weighted, torch.nn.functional.cross_entropy(logits[:1], labels[:1]))
    with pytest.raises(PipelineError, match="loss.name"):
        LossConfig(name="hinge")
    with pytest.raises(PipelineError, match="pooling"):
        ModelConfig(pooling="max")
