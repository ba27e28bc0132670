"""The relation classifier: encoder -> (entity embedding) -> (sequence layer) -> pooling -> head(s) -> logits.

Pooling (`pooling`, the `POOLERS` table):
- `cls`: the first token's state;
- `entity_start`: subject-start and object-start states concatenated (Zhou & Chen's improved baseline);
- `span_mean`: first token plus the mean of each entity's word tokens, each through dense+tanh (R-BERT).

Heads (`head`, the `HEADS` table): `linear`, `mlp`, or `lstm` (a BiLSTM over the top layer's states,
padding packed away, then the pooling over its outputs and a linear classifier). With `type_pair_heads`,
one classifier per (subject type, object type) pair seen in training, each allowed only the relations seen
for that pair: the others get logit -inf, so their probability is exactly 0. A shared head, trained on
every example, answers for pairs never seen in training.

Shapes: B rows, T tokens, H hidden size, C labels, P type pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..core.errors import PipelineError
from ..core.labels import LabelSet
from ..core.typed_config import check, choice, option
from ..data.schema import Example
from .backbone import BackboneConfig
from .frozen import freeze, lower_states, upper_states
from .losses import LossConfig, inverse_sqrt_weights, relation_loss
from .pair_prior import PriorConfig
from .peft import PeftConfig, apply_peft
from .tfidf import TfidfConfig

# Finite stand-in for -inf inside the loss: a blocked label's zero smoothing target times its log-probability
# is 0, not NaN.
MASKED_LOSS_LOGIT = -1e4


class ClsPooler(nn.Module):
    """The first token's state: (B, T, H) -> (B, H)."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.out_dim = hidden

    def forward(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        return states[:, 0]


class EntityStartPooler(nn.Module):
    """The subject-start and object-start states concatenated: (B, T, H) -> (B, 2H)."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.out_dim = 2 * hidden

    def forward(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        rows = torch.arange(states.size(0), device=states.device)
        return torch.cat([states[rows, batch["subj_start"]], states[rows, batch["obj_start"]]], dim=-1)


class SpanMeanPooler(nn.Module):
    """R-BERT: the first token and the mean of each entity's tokens (`entity_mask` 1 and 2), each through
    dropout, dense and tanh, concatenated: (B, T, H) -> (B, 3H)."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.out_dim = 3 * hidden
        self.dense = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Tanh()) for _ in range(3)
        )

    def forward(self, states: torch.Tensor, batch: dict) -> torch.Tensor:
        parts = [states[:, 0]]  # (B, H) each
        for role in (1, 2):
            mask = (batch["entity_mask"] == role).unsqueeze(-1).to(states.dtype)  # (B, T, 1)
            parts.append((states * mask).sum(1) / mask.sum(1).clamp(min=1.0))
        return torch.cat([dense(p) for dense, p in zip(self.dense, parts)], dim=-1)


POOLERS: dict[str, type[nn.Module]] = {
    "cls": ClsPooler,
    "entity_start": EntityStartPooler,
    "span_mean": SpanMeanPooler,
}


def _copied(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict entries as copies: on a GPU, cuDNN keeps an LSTM's weights as views of one flat buffer, and
    safetensors refuses to save tensors that share a storage none of them covers whole."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[key] = state_dict[key].clone()


class BiLSTM(nn.Module):
    """A bidirectional LSTM over the encoder's top layer, padding packed away: (B, T, H) -> (B, T, H)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.register_state_dict_post_hook(_copied)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=states.size(1))
        return out


def _linear(in_dim: int, hidden: int, num_labels: int, dropout: float) -> nn.Module:
    return nn.Linear(in_dim, num_labels)


def _mlp(in_dim: int, hidden: int, num_labels: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels))


@dataclass(frozen=True)
class Head:
    """A head: an optional sequence layer over the encoder states (hidden size -> module), and the classifier
    over the pooled features (in_dim, hidden, labels, dropout -> module mapping (B, in_dim) to (B, C))."""

    classifier: Callable[[int, int, int, float], nn.Module]
    sequence: Callable[[int], nn.Module] | None = None


HEADS: dict[str, Head] = {"linear": Head(_linear), "mlp": Head(_mlp), "lstm": Head(_linear, BiLSTM)}
KINDS = ("transformer", "tfidf", "prior")  # prior and tfidf: models/classical.py


@dataclass
class ModelConfig:
    """The relation model over the encoder."""

    kind: str = option(
        "tfidf",
        "tfidf (TF-IDF + logistic regression; configs/tfidf.yaml) | transformer (an encoder with a relation "
        "head; configs/default.yaml, configs/transformer.yaml) | prior (P(relation | type pair))",
    )
    backbone: BackboneConfig = option(help="the encoder", factory=BackboneConfig)
    pooling: str = option("entity_start", "features for the classifier: " + " | ".join(POOLERS))
    head: str = option("linear", "classifier: " + " | ".join(HEADS))
    type_pair_heads: bool = option(
        True, "one classifier per (subject type, object type): relations never seen for a pair get probability 0"
    )
    entity_embedding: bool = option(True, "a learned vector added to the subject's and object's token embeddings")
    dropout: float = option(0.1, "dropout before the classifier")
    entity_dropout: float = option(
        0.0, "training only: chance that an entity's word tokens become <mask> (against memorising entity names)"
    )
    loss: LossConfig = option(help="the training loss", factory=LossConfig)
    peft: PeftConfig = option(help="parameter-efficient fine-tuning (models/peft.py)", factory=PeftConfig)
    tfidf: TfidfConfig = option(help="kind: tfidf only (models/tfidf.py)", factory=TfidfConfig)
    prior: PriorConfig = option(help="kind: prior only (models/pair_prior.py)", factory=PriorConfig)

    def __post_init__(self) -> None:
        choice("model.kind", self.kind, KINDS)
        choice("model.pooling", self.pooling, POOLERS)
        choice("model.head", self.head, HEADS)
        check("model.dropout", 0 <= self.dropout < 1, "in [0, 1)", self.dropout)
        check("model.entity_dropout", 0 <= self.entity_dropout <= 1, "in [0, 1]", self.entity_dropout)
        if self.backbone.freeze_layers and self.peft.enabled:
            raise PipelineError("model.backbone.freeze_layers and model.peft both decide what trains: set one of them")
        if self.backbone.cached and self.entity_dropout:
            raise PipelineError(
                "model.entity_dropout changes the tokens at every step, so the frozen layers' output cannot be "
                "cached: set model.entity_dropout: 0 or model.backbone.frozen_cache: none"
            )


class EntityEmbedding(nn.Module):
    """A learned vector per token role (0 other, 1 subject, 2 object) added to the input embeddings:
    (B, T, H) + role (B, T) -> (B, T, H). Zero-initialised, so a pretrained encoder starts exactly as it was."""

    def __init__(self, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(3, hidden)
        nn.init.zeros_(self.embedding.weight)

    def forward(self, inputs_embeds: torch.Tensor, entity_mask: torch.Tensor) -> torch.Tensor:
        return inputs_embeds + self.embedding(entity_mask)


class PairHeads(nn.Module):
    """One linear classifier per (subject type, object type) pair, stored as one batched weight.

    (B, D) features and (B,) pair ids -> (B, C) logits and the (B, C) mask of relations allowed for the pair.
    """

    def __init__(self, in_dim: int, allowed: torch.Tensor):
        super().__init__()
        num_pairs, num_labels = allowed.shape
        self.register_buffer("allowed", allowed.bool())  # (P, C)
        self.weight = nn.Parameter(torch.randn(num_pairs, in_dim, num_labels) * 0.02)  # (P, D, C)
        self.bias = nn.Parameter(torch.zeros(num_pairs, num_labels))  # (P, C)

    def forward(self, features: torch.Tensor, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.einsum("bd,bdc->bc", features, self.weight[pair]) + self.bias[pair]
        return logits, self.allowed[pair]


class RelationModel(nn.Module):
    """Encoder plus relation head. `pair_labels` ([pairs, labels] bool) enables per-type-pair heads."""

    def __init__(
        self,
        encoder: nn.Module,
        config: ModelConfig,
        num_labels: int,
        pair_labels: torch.Tensor | None = None,
        mask_token_id: int | None = None,
    ):
        super().__init__()
        if config.entity_dropout and mask_token_id is None:
            raise PipelineError("model.entity_dropout needs a tokenizer with a mask token")
        self.mask_token_id = mask_token_id
        hidden = encoder.config.hidden_size
        head = HEADS[config.head]
        self.encoder = encoder
        self.config = config
        self.num_labels = num_labels
        self.entity_embedding = EntityEmbedding(hidden) if config.entity_embedding else None
        self.sequence = head.sequence(hidden) if head.sequence else None
        self.pooler = POOLERS[config.pooling](hidden, config.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = head.classifier(self.pooler.out_dim, hidden, num_labels, config.dropout)
        if config.type_pair_heads and pair_labels is None:
            raise PipelineError("type_pair_heads needs the relations seen per type pair (pair_labels)")
        self.pair_heads = PairHeads(self.pooler.out_dim, pair_labels) if config.type_pair_heads else None
        self.register_buffer("class_weights", torch.ones(num_labels), persistent=True)  # (C,)
        self.frozen_layers = config.backbone.freeze_layers
        self.frozen = freeze(encoder, self.frozen_layers)

    def train(self, mode: bool = True) -> RelationModel:
        """As `nn.Module.train`, but the frozen lower layers stay in eval mode (no dropout): their output is a
        function of the tokens alone, as the cache of it (`training/frozen_cache.py`) assumes."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def drop_entities(self, input_ids: torch.Tensor, entity_mask: torch.Tensor) -> torch.Tensor:
        """Training only: each row's subject (role 1) and object (role 2) word tokens become the mask token with
        chance `entity_dropout`, each entity on its own draw; (B, T) -> (B, T)."""
        drop = torch.rand(input_ids.size(0), 3, device=input_ids.device) < self.config.entity_dropout  # (B, roles)
        drop[:, 0] = False  # role 0: not an entity
        hit = drop.gather(1, entity_mask)  # (B, T)
        return input_ids.masked_fill(hit, self.mask_token_id)

    def encode(self, batch: dict) -> torch.Tensor:
        """Pooled features (B, D) from the batch's (B, T) `input_ids`, `attention_mask`, `entity_mask`."""
        input_ids = batch["input_ids"]
        if self.training and self.config.entity_dropout:
            input_ids = self.drop_entities(input_ids, batch["entity_mask"])
        if self.frozen_layers:
            states = self.frozen_encode(input_ids, batch)
        else:
            embeds = self.encoder.get_input_embeddings()(input_ids)  # (B, T, H)
            if self.entity_embedding is not None:
                embeds = self.entity_embedding(embeds, batch["entity_mask"])
            states = self.encoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state
        if self.sequence is not None:
            states = self.sequence(states, batch["attention_mask"])
        return self.dropout(self.pooler(states, batch))

    def frozen_encode(self, input_ids: torch.Tensor, batch: dict) -> torch.Tensor:
        """With frozen lower layers: their output (B, T, H) from the batch's cached `frozen_states` or computed
        now, the entity embedding added, then the trained layers -> (B, T, H)."""
        mask = batch["attention_mask"]
        states = batch.get("frozen_states")
        if states is None:
            states = lower_states(self.encoder, self.frozen_layers, input_ids, mask)
        states = states.to(self.class_weights.dtype)
        if self.entity_embedding is not None:
            states = self.entity_embedding(states, batch["entity_mask"])
        return upper_states(self.encoder, self.frozen_layers, states, mask)

    def forward(self, labels: torch.Tensor | None = None, pair: torch.Tensor | None = None, **batch) -> dict:
        """`batch`: the collator's inputs (`data.features.MODEL_INPUTS`): (B, T) `input_ids`, `attention_mask`,
        `entity_mask`, (B,) `subj_start`, `obj_start`, and (B, T, H) `frozen_states` with a frozen-layer cache;
        (B,) `pair` ids (-1: a pair unseen in training) and `labels` when given. Returns `logits` (B, C) (-inf where a pair head forbids a relation) and `loss`."""
        features = self.encode(batch)
        shared = self.classifier(features)  # (B, C)
        if self.pair_heads is None:
            out = {"logits": shared}
            if labels is not None:
                out["loss"] = relation_loss(shared, labels, self.config.loss, self.class_weights)
            return out
        known = pair >= 0  # (B,)
        pair_logits, allowed = self.pair_heads(features, pair.clamp(min=0))
        allowed = allowed | ~known.unsqueeze(-1)  # (B, C)
        raw = torch.where(known.unsqueeze(-1), pair_logits, shared)
        out = {"logits": raw.masked_fill(~allowed, float("-inf"))}
        if labels is not None:
            # A gold label its pair head blocks (a validation row whose relation training never showed for its
            # type pair) would cost about -MASKED_LOSS_LOGIT = 1e4 and swamp the evaluation loss. Such a row is
            # scored with the shared head, the model's answer for what the pair heads do not know, so the loss
            # stays a readable cross-entropy; its prediction still blocks the label.
            blocked = ~allowed.gather(1, labels.clamp(min=0)[:, None])  # (B, 1)
            loss_logits = torch.where(blocked, shared, raw.masked_fill(~allowed, MASKED_LOSS_LOGIT))
            loss = relation_loss(loss_logits, labels, self.config.loss, self.class_weights, allowed | blocked)
            # the shared head learns from every example, for unseen pairs
            out["loss"] = loss + relation_loss(shared, labels, self.config.loss, self.class_weights)
        return out


def pair_vocabulary(
    pairs: list[tuple[str, str]], labels: list[int], num_labels: int
) -> tuple[list[str], torch.Tensor]:
    """Type pairs seen in training (as "SUBJ|OBJ") and the (P, C) relations allowed for each."""
    names = sorted({f"{s}|{o}" for s, o in pairs})
    index = {n: i for i, n in enumerate(names)}
    allowed = torch.zeros(len(names), num_labels, dtype=torch.bool)
    for (s, o), label in zip(pairs, labels):
        allowed[index[f"{s}|{o}"], label] = True
    return names, allowed


def build_model(
    encoder,
    config: ModelConfig,
    label_set: LabelSet,
    train_examples: list[Example],
    new_tokens: list[int] = (),
    mask_token_id: int | None = None,
) -> tuple[RelationModel, list[str]]:
    """The relation model over `encoder`, with pair heads and class weights from the training rows.

    With `config.peft`, the encoder is frozen and the method's parts added; `new_tokens` (ids of the
    tokens added to the tokenizer) keep trainable embedding rows."""
    label_ids = label_set.ids(ex.label for ex in train_examples)
    pairs = [(ex.subject.type, ex.object.type) for ex in train_examples]
    pair_names, allowed = pair_vocabulary(pairs, label_ids, len(label_set))
    model = RelationModel(encoder, config, len(label_set), allowed if config.type_pair_heads else None, mask_token_id)
    model.class_weights.copy_(inverse_sqrt_weights(label_ids, len(label_set)))
    return apply_peft(model, list(new_tokens)), pair_names
