"""Encoders: any hub name or local path through AutoModel/AutoTokenizer, a packaged file (`packaged.py`),
or the offline default.

The offline default is a small XLM-R-architecture encoder built from config, with a
tokenizer trained on the task's own sentences (`models/tokenizer.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

from ..core.errors import PipelineError
from ..core.typed_config import check, choice, option
from .packaged import PACKAGED, is_packaged
from .tokenizer import train_tokenizer

FROZEN_CACHES = ("float16", "float32", "none")
ATTENTIONS = ("auto", "eager", "sdpa")


@dataclass
class BackboneConfig:
    """The encoder: a hub name or local folder, or the offline default built from the size fields below."""

    name: str | None = option(
        None, "hub name (xlm-roberta-large, klue/roberta-large) or local folder; null: offline default"
    )
    vocab_size: int = option(16000, "offline default: tokenizer vocabulary trained on the task's sentences")
    hidden_size: int = option(256, "offline default: hidden size")
    num_layers: int = option(4, "offline default: transformer layers")
    num_heads: int = option(4, "offline default: attention heads (must divide hidden_size)")
    intermediate_size: int = option(1024, "offline default: feed-forward size")
    max_position: int = option(258, "offline default: position embeddings (max_length + 2)")
    dropout: float = option(0.1, "offline default: dropout in the encoder")
    trim_vocab: bool | None = option(
        None,
        "keep only the embedding rows of the pieces the run's texts use (packaged backbones, full fine-tuning); "
        "saved models get the full vocabulary back. null: on for packaged backbones unless model.peft is on",
    )

    encoder_dropout: float | None = option(
        None,
        "hidden and attention dropout inside a loaded encoder (null: its own config's). On CPU each dropout "
        "mask costs about as much as the layer's matrix multiplies (bench/step_profile.py)",
    )
    attention: str = option(
        "auto",
        "attention kernel of a loaded encoder: eager | sdpa | auto (eager on CPU when encoder_dropout is 0, where "
        "PyTorch's CPU flash-attention backward is about 50x slower than eager's; sdpa otherwise)",
    )
    freeze_layers: int = option(
        0,
        "the embeddings and this many bottom encoder layers stay fixed (no dropout in them either); the entity "
        "embedding is then added to the first trained layer's input (models/frozen.py)",
    )
    frozen_cache: str = option(
        "float16",
        "with freeze_layers: the frozen layers' output computed once per distinct input and read from disk in "
        "every epoch, validation and test, stored as float16 | float32; none: run them at every step "
        "(training/frozen_cache.py)",
    )

    def __post_init__(self) -> None:
        choice("model.backbone.attention", self.attention, ATTENTIONS)
        check("model.backbone.freeze_layers", self.freeze_layers >= 0, "at least 0", self.freeze_layers)
        choice("model.backbone.frozen_cache", self.frozen_cache, FROZEN_CACHES)
        for key in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position"):
            check(f"model.backbone.{key}", getattr(self, key) >= 1, "at least 1", getattr(self, key))
        divides = f"a divisor of model.backbone.hidden_size ({self.hidden_size})"
        check("model.backbone.num_heads", self.hidden_size % self.num_heads == 0, divides, self.num_heads)
        check("model.backbone.dropout", 0 <= self.dropout < 1, "in [0, 1)", self.dropout)
        if self.encoder_dropout is not None:
            check("model.backbone.encoder_dropout", 0 <= self.encoder_dropout < 1, "in [0, 1)", self.encoder_dropout)

    @property
    def cached(self) -> bool:
        """Whether the frozen layers' output is read from the cache instead of computed at each step."""
        return self.freeze_layers > 0 and self.frozen_cache != "none"

    def attention_kernel(self) -> str:
        """`attention` made concrete for this machine."""
        if self.attention != "auto":
            return self.attention
        return "eager" if self.encoder_dropout == 0 and not torch.cuda.is_available() else "sdpa"

    def trims(self, peft: bool) -> bool:
        """Whether a run trims the vocabulary (`peft`: whether model.peft is on)."""
        return is_packaged(self.name) and not peft if self.trim_vocab is None else self.trim_vocab


def offline_hint(name: str) -> str:
    return (
        f"model {name!r} is not in the local cache and the hub is unreachable (offline). Download it once "
        f"on a connected machine (`huggingface-cli download {name} --local-dir models/{name.split('/')[-1]}`), "
        f"copy the folder here, and set model.backbone.name to that local path (or use a packaged backbone: "
        f"{', '.join(PACKAGED)})"
    )


def load_tokenizer(name: str):
    """A fast tokenizer by hub name or local path, with a clear error when it cannot be found offline."""
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True)
    except OSError:
        raise PipelineError(offline_hint(name)) from None


def load_pretrained(auto_class, name: str, vocab_size: int | None = None, **kwargs):
    """`auto_class.from_pretrained(name)` with the offline hint as its error, embeddings resized
    to `vocab_size` (= len(tokenizer)) if given. `kwargs` the architecture does not take are dropped."""
    try:
        try:
            model = auto_class.from_pretrained(name, **kwargs)
        except TypeError:  # e.g. `add_pooling_layer` for encoders without a pooler
            model = auto_class.from_pretrained(name)
    except OSError:
        raise PipelineError(offline_hint(name)) from None
    if vocab_size is not None and vocab_size != model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(vocab_size)
    return model


def load_encoder(name: str, vocab_size: int | None = None, cfg: BackboneConfig | None = None):
    """A pretrained encoder (`AutoModel`, no pooler), embeddings resized to `vocab_size` if given, with `cfg`'s
    dropout and attention kernel when given."""
    settings = {}
    if cfg is not None:
        settings["attn_implementation"] = cfg.attention_kernel()
        if cfg.encoder_dropout is not None:
            settings.update(hidden_dropout_prob=cfg.encoder_dropout, attention_probs_dropout_prob=cfg.encoder_dropout)
    return load_pretrained(AutoModel, name, vocab_size, add_pooling_layer=False, **settings)


def build_config(cfg: BackboneConfig, vocab_size: int, pad_token_id: int = 1):
    """An XLM-R configuration of the configured size."""
    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=pad_token_id,
        type_vocab_size=1,
    )


def build_encoder(cfg: BackboneConfig, vocab_size: int, pad_token_id: int = 1):
    """A freshly initialised small XLM-R encoder (the offline default before TAPT)."""
    return XLMRobertaModel(build_config(cfg, vocab_size, pad_token_id), add_pooling_layer=False)


def default_tokenizer(sentences: Iterable[str], cfg: BackboneConfig, out_dir: str | Path, show_progress: bool = True):
    """Train (or reuse, if `out_dir` already holds one) the offline default tokenizer."""
    out_dir = Path(out_dir)
    if not (out_dir / "tokenizer.json").exists():
        train_tokenizer(sentences, cfg.vocab_size, out_dir, show_progress)
    # Always the reloaded one: the in-memory trained object splits text around tokens added
    # later (markers) differently from its saved form, which every later step loads.
    return load_tokenizer(str(out_dir))
