"""Parameter-efficient fine-tuning: the encoder frozen, a few percent of the weights trained.

`model.peft.method`:
- `lora`: low-rank updates of the attention projections, through `peft` (`inject_adapter_in_model`);
  mergeable into the base weights for inference.
- `houlsby` / `pfeiffer`: bottleneck adapters (down-projection, ReLU, zero-initialised up-projection,
  residual) on the output of the attention and feed-forward sublayers (Houlsby) or of the feed-forward
  sublayer only (Pfeiffer), before the sublayer's residual + LayerNorm. Our own modules: the `adapters`
  library pins transformers 4.x.
- `prefix`: prefix tuning / P-tuning v2: trainable keys and values prepended at every layer
  (`prefix_projection`: produced by an MLP, as in Li & Liang).
- `prompt`: prompt tuning (`encoder: null`) or P-tuning (`encoder: mlp | lstm`): trainable embeddings
  prepended to the input.

Prefix and prompt use peft's prompt encoders (`PrefixEncoder`, `PromptEmbedding`, `PromptEncoder`) with our
own wiring (`VirtualTokens`) rather than peft's `PeftModel`, which can drive the encoder but registers the
word embeddings twice (state dicts with shared tensors, which the Trainer's safetensors checkpoints refuse),
shifts the real tokens' positions by the prompt length (past the end of the offline default's position
table at max_length 256), and returns hidden states for the virtual tokens too. Here the real tokens keep
their positions and only their states come back, so pooling at subj_start/obj_start is unchanged.

With every method the classifier, pair heads, entity embedding, LSTM and pooler stay fully trainable, and
the rows of tokens added to the tokenizer (entity markers) are trained through peft's trainable tokens.
A PEFT model saves only its trainable weights (`store.save_relation_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from ..core.errors import PipelineError
from ..core.typed_config import check, option

METHODS = ("none", "lora", "houlsby", "pfeiffer", "prefix", "prompt")
PROMPT_ENCODERS = (None, "mlp", "lstm")
# Our adapters and virtual tokens rely on these encoders' layout and position numbering.
OWN_ARCHITECTURES = ("bert", "roberta", "xlm-roberta")


@dataclass
class PeftConfig:
    """`method`: none | lora | houlsby | pfeiffer | prefix | prompt.

    LoRA: `rank`, `alpha`, `dropout`, `target_modules`. Adapters: `reduction_factor` (bottleneck =
    hidden size / reduction_factor). Prefix and prompt: `num_virtual_tokens`; `prefix_projection`
    (prefix only); `encoder` (prompt only: null = prompt tuning, mlp | lstm = P-tuning).
    """

    method: str = option(
        "none", "none | lora | houlsby | pfeiffer | prefix | prompt (the encoder frozen, a few percent trained)"
    )
    rank: int = option(8, "lora: rank of the update")
    alpha: float = option(16.0, "lora: scaling (alpha / rank)")
    dropout: float = option(0.1, "lora: dropout on the update path")
    target_modules: list[str] = option(
        help="lora: the encoder modules that get updates", factory=lambda: ["query", "value"]
    )
    reduction_factor: int = option(16, "houlsby | pfeiffer: bottleneck = hidden size / reduction_factor")
    num_virtual_tokens: int = option(20, "prefix | prompt: virtual tokens")
    prefix_projection: bool = option(False, "prefix: produce the prefixes with an MLP (Li & Liang)")
    encoder: str | None = option(None, "prompt: null (prompt tuning) | mlp | lstm (P-tuning)")

    def __post_init__(self) -> None:
        checks = (
            ("method", self.method in METHODS, f"one of {', '.join(METHODS)}"),
            ("rank", self.rank >= 1, "at least 1"),
            ("alpha", self.alpha > 0, "positive"),
            ("dropout", 0 <= self.dropout < 1, "in [0, 1)"),
            ("target_modules", len(self.target_modules) > 0, "a non-empty list of module names"),
            ("reduction_factor", self.reduction_factor >= 1, "at least 1"),
            ("num_virtual_tokens", self.num_virtual_tokens >= 1, "at least 1"),
            ("encoder", self.encoder in PROMPT_ENCODERS, "null, mlp or lstm"),
        )
        for key, ok, expected in checks:
            check(f"model.peft.{key}", ok, expected, getattr(self, key))
        if self.prefix_projection and self.method != "prefix":
            raise PipelineError(f"model.peft.prefix_projection applies to method prefix only, not {self.method!r}")
        if self.encoder and self.method != "prompt":
            raise PipelineError(f"model.peft.encoder applies to method prompt only, not {self.method!r}")

    @property
    def enabled(self) -> bool:
        return self.method != "none"


class Bottleneck(nn.Module):
    """x + up(relu(down(x))); `up` starts at zero, so a new adapter is the identity."""

    def __init__(self, hidden: int, reduction_factor: int):
        super().__init__()
        self.down = nn.Linear(hidden, max(1, hidden // reduction_factor))
        self.up = nn.Linear(self.down.out_features, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, T, H): the input plus the bottleneck's output."""
        return x + self.up(torch.relu(self.down(x)))


class VirtualTokens(nn.Module):
    """The encoder with trainable virtual tokens, prepended to every layer's keys and values (`prefix`)
    or to the input embeddings (`prompt`). Real tokens keep their positions; only their states are returned."""

    def __init__(self, encoder: nn.Module, cfg: PeftConfig):
        from peft import (
            PrefixEncoder,
            PrefixTuningConfig,
            PromptEmbedding,
            PromptEncoder,
            PromptEncoderConfig,
            PromptTuningConfig,
        )

        super().__init__()
        c = encoder.config
        self.model, self.method, self.n, self.heads = (
            encoder,
            cfg.method,
            cfg.num_virtual_tokens,
            c.num_attention_heads,
        )
        shape = dict(
            num_virtual_tokens=self.n,
            token_dim=c.hidden_size,
            num_layers=c.num_hidden_layers,
            num_attention_heads=self.heads,
            num_transformer_submodules=1,
        )
        if cfg.method == "prefix":
            self.prompt = PrefixEncoder(
                PrefixTuningConfig(**shape, prefix_projection=cfg.prefix_projection, encoder_hidden_size=c.hidden_size)
            )
        elif cfg.encoder:
            self.prompt = PromptEncoder(
                PromptEncoderConfig(
                    **shape, encoder_reparameterization_type=cfg.encoder.upper(), encoder_hidden_size=c.hidden_size
                )
            )
        else:  # initialised from the embeddings of random vocabulary tokens
            self.prompt = PromptEmbedding(
                PromptTuningConfig(**shape, prompt_tuning_init="SAMPLE_VOCAB"), encoder.get_input_embeddings()
            )
        self.register_buffer("tokens", torch.arange(self.n), persistent=False)
        # RoBERTa-style embeddings number positions from padding_idx + 1, BERT's from 0.
        self.first_position = getattr(encoder.embeddings, "padding_idx", -1) + 1

    @property
    def config(self):
        return self.model.config

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor):
        """(B, T, H) embeddings and (B, T) mask -> the encoder's output for the T real tokens only
        (`last_hidden_state` (B, T, H)); the N virtual tokens sit in front, in the keys and values or the input."""
        batch, length = inputs_embeds.shape[:2]
        virtual = self.prompt(self.tokens.expand(batch, -1))
        mask = torch.cat([attention_mask.new_ones(batch, self.n), attention_mask], dim=1)
        positions = self.first_position + torch.arange(length, device=inputs_embeds.device).expand(batch, -1)
        if self.method == "prefix":
            # [batch, n, layers * 2 * hidden] -> per layer: keys and values [batch, heads, n, head_dim]
            kv = virtual.view(batch, self.n, -1, 2, self.heads, inputs_embeds.size(-1) // self.heads).permute(
                2, 3, 0, 4, 1, 5
            )
            cache = DynamicCache([(k.to(inputs_embeds.dtype), v.to(inputs_embeds.dtype)) for k, v in kv])
            return self.model(
                inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=positions, past_key_values=cache
            )
        out = self.model(
            inputs_embeds=torch.cat([virtual.to(inputs_embeds.dtype), inputs_embeds], dim=1),
            attention_mask=mask,
            position_ids=torch.cat([self.first_position + self.tokens.expand(batch, -1), positions], dim=1),
        )
        out.last_hidden_state = out.last_hidden_state[:, self.n :]
        return out


def new_token_ids(tokenizer) -> list[int]:
    """Ids of the tokens added on top of the tokenizer's base vocabulary (the entity markers)."""
    return list(range(tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=False), len(tokenizer)))


def apply_peft(model: nn.Module, token_ids: list[int]) -> nn.Module:
    """Freeze `model.encoder` and add `model.config.peft`'s trainable parts, in place.

    `token_ids`: rows of the embedding matrix trained on their own (tokens added to the tokenizer).
    """
    cfg = model.config.peft
    if not cfg.enabled:
        return model
    encoder = model.encoder
    encoder.requires_grad_(False)
    token_ids = sorted(set(token_ids))
    embeddings = next(name for name, m in encoder.named_modules() if m is encoder.get_input_embeddings())
    if cfg.method == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=cfg.target_modules,
            trainable_token_indices={embeddings: token_ids} if token_ids else None,
        )
        try:
            inject_adapter_in_model(lora, encoder)
        except ValueError as exc:
            raise PipelineError(f"model.peft.target_modules {cfg.target_modules}: {exc}") from None
    else:
        model_type = encoder.config.model_type
        if model_type not in OWN_ARCHITECTURES:
            raise PipelineError(
                f"model.peft.method {cfg.method!r} supports {', '.join(OWN_ARCHITECTURES)} encoders, not {model_type!r}; use lora"
            )
        if cfg.method in ("prefix", "prompt"):  # before the token rows: prompts start from plain embeddings
            model.encoder = VirtualTokens(encoder, cfg)
        if token_ids:  # before the adapters: peft freezes every other parameter of the module it injects into
            from peft import TrainableTokensConfig, inject_adapter_in_model

            inject_adapter_in_model(
                TrainableTokensConfig(target_modules=[embeddings], token_indices=token_ids), encoder
            )
        if cfg.method in ("houlsby", "pfeiffer"):
            hidden = encoder.config.hidden_size
            for layer in encoder.encoder.layer:
                sublayers = (layer.attention.output, layer.output) if cfg.method == "houlsby" else (layer.output,)
                for sublayer in sublayers:
                    sublayer.dense = nn.Sequential(sublayer.dense, Bottleneck(hidden, cfg.reduction_factor))
    model.peft_token_ids = token_ids
    return model


def trainable_parameters(model: nn.Module) -> tuple[int, float]:
    """Trainable parameters: their count and their percent of all parameters."""
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, 100.0 * trainable / sum(p.numel() for p in params)


def peft_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a PEFT model saves: its trainable weights and the buffers outside the encoder (class weights, pair masks)."""
    if any(getattr(m, "merged", False) for m in model.modules()):
        raise PipelineError("a model merged for inference cannot be saved as PEFT weights")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in trainable or not k.startswith("encoder.")}


def load_peft_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load saved PEFT weights into a model rebuilt with `apply_peft` (its frozen base already loaded)."""
    expected = set(peft_state_dict(model))
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise PipelineError(
            f"saved PEFT weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict(state, strict=False)


def merge_for_inference(model: nn.Module) -> nn.Module:
    """Fold peft's layers (LoRA, trained token rows) into the base weights: same outputs, less work.
    Adapters and virtual tokens stay as they are. A merged model cannot be saved as PEFT weights."""
    if model.config.peft.enabled:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in model.encoder.modules():
            if isinstance(module, BaseTunerLayer):
                module.merge()
    return model
