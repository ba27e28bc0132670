"""The relation classifier: encoder -> (entity embedding) -> pooling -> head(s) -> logits.

Pooling (`pooling`):
- `cls`: the first token's state;
- `entity_start`: subject-start and object-start states concatenated (Zhou & Chen's improved baseline);
- `span_mean`: first token plus the mean of each entity's word tokens, each through dense+tanh (R-BERT).

Heads (`head`): `linear`, `mlp`, or `lstm` (a BiLSTM over the top layer's states, padding
packed away, then the same pooling over its outputs). With `type_pair_heads`, one classifier
per (subject type, object type) pair seen in training, each allowed only the relations seen
for that pair: the others get logit -inf, so their probability is exactly 0. A shared head,
trained on every example, answers for pairs never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import PipelineError
from .backbone import BackboneConfig
from .losses import LossConfig, relation_loss
from .peft import PeftConfig

POOLINGS = ("cls", "entity_start", "span_mean")
HEADS = ("linear", "mlp", "lstm")
# Finite stand-in for -inf inside the loss, so an impossible gold label gives a large, finite loss.
MASKED_LOSS_LOGIT = -1e4


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pooling: str = "entity_start"
    head: str = "linear"
    type_pair_heads: bool = False
    entity_embedding: bool = True
    dropout: float = 0.1
    loss: LossConfig = field(default_factory=LossConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)  # parameter-efficient fine-tuning (models/peft.py)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise PipelineError(f"model.pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        if self.head not in HEADS:
            raise PipelineError(f"model.head must be one of {', '.join(HEADS)}, not {self.head!r}")


class EntityEmbedding(nn.Module):
    """A learned vector per token role (0 other, 1 subject, 2 object) added to the input embeddings.

    Zero-initialised, so a pretrained encoder starts exactly as it was.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(3, hidden)
        nn.init.zeros_(self.embedding.weight)

    def forward(self, inputs_embeds: torch.Tensor, entity_mask: torch.Tensor) -> torch.Tensor:
        return inputs_embeds + self.embedding(entity_mask)


class Pooler(nn.Module):
    def __init__(self, kind: str, hidden: int, dropout: float):
        super().__init__()
        self.kind = kind
        self.out_dim = {"cls": hidden, "entity_start": 2 * hidden, "span_mean": 3 * hidden}[kind]
        if kind == "span_mean":
            self.dense = nn.ModuleList(
                nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Tanh()) for _ in range(3)
            )

    def forward(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        rows = torch.arange(states.size(0), device=states.device)
        if self.kind == "cls":
            return states[:, 0]
        if self.kind == "entity_start":
            return torch.cat([states[rows, batch["subj_start"]], states[rows, batch["obj_start"]]], dim=-1)
        parts = [states[:, 0]]
        for role in (1, 2):
            mask = (batch["entity_mask"] == role).unsqueeze(-1).to(states.dtype)
            parts.append((states * mask).sum(1) / mask.sum(1).clamp(min=1.0))
        return torch.cat([dense(p) for dense, p in zip(self.dense, parts)], dim=-1)


class BiLSTM(nn.Module):
    """A bidirectional LSTM over the encoder's top layer, with padding packed away."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(hidden, hidden // 2, batch_first=True, bidirectional=True)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=states.size(1))
        return out


class PairHeads(nn.Module):
    """One linear classifier per (subject type, object type) pair, stored as one batched weight."""

    def __init__(self, in_dim: int, allowed: torch.Tensor):
        super().__init__()
        num_pairs, num_labels = allowed.shape
        self.register_buffer("allowed", allowed.bool())
        self.weight = nn.Parameter(torch.randn(num_pairs, in_dim, num_labels) * 0.02)
        self.bias = nn.Parameter(torch.zeros(num_pairs, num_labels))

    def forward(self, features: torch.Tensor, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.einsum("bd,bdc->bc", features, self.weight[pair]) + self.bias[pair]
        return logits, self.allowed[pair]


class RelationModel(nn.Module):
    """Encoder plus relation head. `pair_labels` ([pairs, labels] bool) enables per-type-pair heads."""

    def __init__(
        self, encoder: nn.Module, config: ModelConfig, num_labels: int, pair_labels: torch.Tensor | None = None
    ):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.config = config
        self.num_labels = num_labels
        self.entity_embedding = EntityEmbedding(hidden) if config.entity_embedding else None
        self.lstm = BiLSTM(hidden) if config.head == "lstm" else None
        self.pooler = Pooler(config.pooling, hidden, config.dropout)
        dim = self.pooler.out_dim
        self.dropout = nn.Dropout(config.dropout)
        if config.head == "mlp":
            self.classifier = nn.Sequential(
                nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(hidden, num_labels)
            )
        else:
            self.classifier = nn.Linear(dim, num_labels)
        if config.type_pair_heads and pair_labels is None:
            raise PipelineError("type_pair_heads needs the relations seen per type pair (pair_labels)")
        self.pair_heads = PairHeads(dim, pair_labels) if config.type_pair_heads else None
        self.register_buffer("class_weights", torch.ones(num_labels), persistent=True)

    def encode(self, batch: dict) -> torch.Tensor:
        embeds = self.encoder.get_input_embeddings()(batch["input_ids"])
        if self.entity_embedding is not None:
            embeds = self.entity_embedding(embeds, batch["entity_mask"])
        states = self.encoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
        if self.lstm is not None:
            states = self.lstm(states, batch["attention_mask"])
        return self.dropout(self.pooler(states, batch))

    def forward(self, input_ids, attention_mask, subj_start, obj_start, entity_mask, pair=None, labels=None, **_):
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "subj_start": subj_start,
            "obj_start": obj_start,
            "entity_mask": entity_mask,
        }
        features = self.encode(batch)
        shared = self.classifier(features)
        if self.pair_heads is None:
            logits, loss_logits = shared, shared
        else:
            known = pair >= 0
            pair_logits, allowed = self.pair_heads(features, pair.clamp(min=0))
            allowed = allowed | ~known.unsqueeze(-1)
            raw = torch.where(known.unsqueeze(-1), pair_logits, shared)
            logits = raw.masked_fill(~allowed, float("-inf"))
            loss_logits = raw.masked_fill(~allowed, MASKED_LOSS_LOGIT)
        out = {"logits": logits}
        if labels is not None:
            loss = relation_loss(loss_logits, labels, self.config.loss, self.class_weights)
            if self.pair_heads is not None:  # the shared head learns from every example, for unseen pairs
                loss = loss + relation_loss(shared, labels, self.config.loss, self.class_weights)
            out["loss"] = loss
        return out


def pair_vocabulary(
    pairs: list[tuple[str, str]], labels: list[int], num_labels: int
) -> tuple[list[str], torch.Tensor]:
    """Type pairs seen in training (as "SUBJ|OBJ") and the relations allowed for each."""
    names = sorted({f"{s}|{o}" for s, o in pairs})
    index = {n: i for i, n in enumerate(names)}
    allowed = torch.zeros(len(names), num_labels, dtype=torch.bool)
    for (s, o), label in zip(pairs, labels):
        allowed[index[f"{s}|{o}"], label] = True
    return names, allowed
