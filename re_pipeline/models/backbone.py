"""Encoders: any hub name or local path through AutoModel/AutoTokenizer, or the offline default.

The offline default is a small XLM-R-architecture encoder built from config, with a
tokenizer trained on the task's own sentences (`models/tokenizer.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError


@dataclass
class BackboneConfig:
    """`name`: a hub name (`xlm-roberta-large`, `klue/roberta-large`), a local path, or null for
    the offline default built from the size fields below."""

    name: str | None = None
    vocab_size: int = 16000
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 1024
    max_position: int = 258
    dropout: float = 0.1


def offline_hint(name: str) -> str:
    return (
        f"model {name!r} is not in the local cache and the hub is unreachable (offline). Download it once "
        f"on a connected machine (`huggingface-cli download {name} --local-dir models/{name.split('/')[-1]}`), "
        f"copy the folder here, and set model.backbone.name to that local path"
    )


def load_tokenizer(name: str):
    """A fast tokenizer by hub name or local path, with a clear error when it cannot be found offline."""
    from transformers import AutoTokenizer

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


def load_encoder(name: str, vocab_size: int | None = None):
    """A pretrained encoder (`AutoModel`, no pooler), embeddings resized to `vocab_size` if given."""
    from transformers import AutoModel

    return load_pretrained(AutoModel, name, vocab_size, add_pooling_layer=False)


def build_config(cfg: BackboneConfig, vocab_size: int, pad_token_id: int = 1):
    """An XLM-R configuration of the configured size."""
    from transformers import XLMRobertaConfig

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
    from transformers import XLMRobertaModel

    return XLMRobertaModel(build_config(cfg, vocab_size, pad_token_id), add_pooling_layer=False)


def default_tokenizer(sentences: Iterable[str], cfg: BackboneConfig, out_dir: str | Path):
    """Train (or reuse, if `out_dir` already holds one) the offline default tokenizer."""
    from .tokenizer import train_tokenizer

    out_dir = Path(out_dir)
    if not (out_dir / "tokenizer.json").exists():
        train_tokenizer(sentences, cfg.vocab_size, out_dir)
    # Always the reloaded one: the in-memory trained object splits text around tokens added
    # later (markers) differently from its saved form, which every later step loads.
    return load_tokenizer(str(out_dir))
