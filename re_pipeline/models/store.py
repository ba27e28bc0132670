"""Save and load a trained relation model: encoder config, tokenizer, weights (safetensors), settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from ..labels import LabelSet
from .relation import ModelConfig, RelationModel


def save_relation_model(model: RelationModel, tokenizer, label_set: LabelSet, pair_names: list[str], out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(out_dir / "encoder")
    tokenizer.save_pretrained(out_dir / "tokenizer")
    save_model(model, str(out_dir / "model.safetensors"))
    meta = {"model": dataclasses.asdict(model.config), "labels": label_set.to_dict(), "pairs": pair_names}
    (out_dir / "relation_model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return out_dir


def load_relation_model(model_dir: str | Path) -> tuple[RelationModel, object, LabelSet, list[str]]:
    """Rebuild the model from its saved settings and load its weights (safetensors only)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from ..config import from_dict

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "relation_model.json").read_text(encoding="utf-8"))
    config = from_dict(ModelConfig, meta["model"], "model")
    label_set = LabelSet.from_dict(meta["labels"])
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(model_dir / "encoder"), add_pooling_layer=False)
    pairs = meta["pairs"]
    pair_labels = torch.zeros(len(pairs), len(label_set), dtype=torch.bool) if config.type_pair_heads else None
    model = RelationModel(encoder, config, len(label_set), pair_labels)
    load_model(model, str(model_dir / "model.safetensors"))
    model.eval()
    return model, AutoTokenizer.from_pretrained(model_dir / "tokenizer"), label_set, pairs
