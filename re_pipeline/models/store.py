"""Save and load a trained relation model: encoder config, tokenizer, weights (safetensors), settings.

A model trained on a trimmed vocabulary (`models/trim.py`) records the kept piece ids and is expanded
back to the full vocabulary on loading. A PEFT model (`model.peft`) saves only its trainable weights plus where its frozen base encoder
comes from (a hub name, or a folder recorded both absolute and relative to the model folder);
loading rebuilds the base from there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ..core.errors import PipelineError
from ..core.io_utils import CACHE
from ..core.labels import LabelSet
from ..core.typed_config import from_dict
from .backbone import load_encoder
from .peft import apply_peft, load_peft_state_dict, peft_state_dict
from .relation import ModelConfig, RelationModel
from .trim import expand, trim_record


def save_relation_model(
    model: RelationModel,
    tokenizer,
    label_set: LabelSet,
    pair_names: list[str],
    out_dir: str | Path,
    base: str | Path | None = None,
) -> Path:
    """`base`: the encoder's hub name or folder, needed (and recorded) for a PEFT model."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(out_dir / "encoder")
    tokenizer.save_pretrained(out_dir / "tokenizer")
    meta = {"model": dataclasses.asdict(model.config), "labels": label_set.to_dict(), "pairs": pair_names}
    if model.config.peft.enabled:
        if base is None:
            raise PipelineError(
                "a PEFT model is saved without its frozen encoder: pass `base`, the encoder's hub name or folder"
            )
        save_file(peft_state_dict(model), str(out_dir / "model.safetensors"))
        local = Path(base).exists()
        meta["peft"] = {
            "base": str(Path(base).resolve()) if local else str(base),
            "base_relative": os.path.relpath(Path(base).resolve(), out_dir.resolve()) if local else None,
            "token_ids": model.peft_token_ids,
        }
    else:
        save_model(model, str(out_dir / "model.safetensors"))
    if trim := trim_record(base):
        meta["trim"] = trim
    (out_dir / "relation_model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return out_dir


def peft_base(model_dir: Path, peft: dict) -> str:
    """The recorded base encoder of a PEFT model: the relative path if it resolves, else the absolute path or hub name."""
    relative = peft["base_relative"]
    if relative is not None and (model_dir / relative).exists():
        return str((model_dir / relative).resolve())
    if os.path.isabs(peft["base"]) and not Path(peft["base"]).exists():
        raise PipelineError(
            f"{model_dir}: the PEFT model's base encoder is gone (looked for {peft['base']} and {model_dir / relative})"
        )
    return peft["base"]


DAMAGED = (
    "the run folder is incomplete or damaged: restore the file, or retrain the run "
    "(re-pipeline train --resume RUN_DIR if it was interrupted)"
)


@contextmanager
def reading(path: Path):
    """A missing or unreadable file of a saved model as one line naming it and what to do."""
    if not path.exists():
        raise PipelineError(f"{path} is missing: {DAMAGED}")
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:  # json, safetensors, tokenizers and torch each raise their own types on a broken file
        raise PipelineError(f"{path} cannot be read ({type(exc).__name__}): {DAMAGED}") from None


def load_relation_model(
    model_dir: str | Path, cache: Path = CACHE
) -> tuple[RelationModel, object, LabelSet, list[str]]:
    """Rebuild the model from its saved settings and load its weights (safetensors only). A model trained on a
    trimmed vocabulary comes back on the full one (the backbone's file is converted into `cache` if needed)."""
    model_dir = Path(model_dir)
    with reading(model_dir / "relation_model.json"):
        meta = json.loads((model_dir / "relation_model.json").read_text(encoding="utf-8"))
        config = from_dict(ModelConfig, meta["model"], "model")
        label_set = LabelSet.from_dict(meta["labels"])
        pairs, peft = meta["pairs"], meta.get("peft")
    with reading(model_dir / "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer")
    if peft:
        encoder = load_encoder(peft_base(model_dir, peft), len(tokenizer))
    else:
        with reading(model_dir / "encoder"):
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(model_dir / "encoder"), add_pooling_layer=False)
    pair_labels = torch.zeros(len(pairs), len(label_set), dtype=torch.bool) if config.type_pair_heads else None
    model = RelationModel(encoder, config, len(label_set), pair_labels)
    with reading(model_dir / "model.safetensors"):
        if peft:
            load_peft_state_dict(apply_peft(model, peft["token_ids"]), load_file(str(model_dir / "model.safetensors")))
        else:
            load_model(model, str(model_dir / "model.safetensors"))
    if meta.get("trim"):
        tokenizer = expand(model, tokenizer, meta["trim"], cache)
    model.eval()
    return model, tokenizer, label_set, pairs
