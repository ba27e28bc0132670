"""Task-adaptive pretraining (TAPT): masked-LM training on the task's own sentences (train + test text).

Two things keep it cheap on a CPU:

* the vocabulary projection runs only at masked positions (`GatheredMLM`): with 15 % masking that
  is ~7x fewer rows through the hidden x vocab matmul than the stock MaskedLM forward, with the same
  loss and gradients;
* batches are padded per batch and grouped by length.

The trained model is saved as an ordinary `*ForMaskedLM` checkpoint (safetensors, tied weights
intact) next to its tokenizer, so `load_encoder(out_dir, len(tokenizer))` returns the adapted encoder.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModelForMaskedLM, Trainer, TrainingArguments, XLMRobertaForMaskedLM, set_seed

from ..core.device import PRECISIONS, precision_flags
from ..core.errors import PipelineError
from ..core.heap import ReleaseHeap
from ..core.progress import replace_stock_output
from ..core.typed_config import check, choice, option
from ..models.backbone import BackboneConfig, build_config, load_pretrained


@dataclass
class TaptConfig:
    """Task-adaptive pretraining: masked-LM steps on the train + test sentences (`enabled` is read by the
    caller; `run_tapt` ignores it). Length: `steps` when set, else `epochs` passes over the sentences."""

    enabled: bool = option(True, "masked-LM training on the train + test sentences first (cached by its inputs)")
    epochs: float = option(4.0, "passes over the sentences (ignored when steps is set)")
    steps: int | None = option(None, "optimizer steps (null: from epochs)")
    batch_size: int = option(64, "sentences per step")
    learning_rate: float = option(1e-3, "peak AdamW rate")
    warmup_ratio: float = option(0.06, "share of the steps with a linearly rising rate")
    weight_decay: float = option(0.01, "AdamW weight decay")
    mlm_probability: float = option(0.15, "share of tokens (or words) masked")
    whole_word: bool = option(False, "mask whole whitespace words (a Korean eojeol with its particles), not pieces")
    max_length: int = option(128, "tokens per sentence")
    seed: int = option(42, "seed of the masks and the initial weights")
    precision: str = option("auto", "auto (bf16 where the GPU or CPU computes it in hardware) | fp32 | bf16 | fp16")

    def __post_init__(self) -> None:
        choice("tapt.precision", self.precision, PRECISIONS)
        check("tapt.epochs", self.epochs > 0 or self.steps is not None, "above 0", self.epochs)
        check("tapt.steps", self.steps is None or self.steps >= 1, "null or at least 1", self.steps)
        check("tapt.batch_size", self.batch_size >= 1, "at least 1", self.batch_size)
        check("tapt.learning_rate", self.learning_rate > 0, "above 0", self.learning_rate)
        check("tapt.warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)", self.warmup_ratio)
        check("tapt.weight_decay", self.weight_decay >= 0, "at least 0", self.weight_decay)
        check("tapt.mlm_probability", 0 < self.mlm_probability <= 1, "in (0, 1]", self.mlm_probability)
        check("tapt.max_length", self.max_length >= 8, "at least 8", self.max_length)

    def total_steps(self, sentences: int) -> int:
        return self.steps if self.steps is not None else max(1, math.ceil(self.epochs * sentences / self.batch_size))


def find_lm_head(model: nn.Module) -> nn.Module:
    """The module that maps hidden states to vocabulary logits.

    It is the one top-level child of the MaskedLM model, other than `base_model`, that contains
    `get_output_embeddings()` (`lm_head` for RoBERTa/XLM-R, `cls` for BERT). Models whose head is
    spread over several top-level modules (DistilBERT, ELECTRA) are refused.
    """
    out, base = model.get_output_embeddings(), model.base_model
    others = [m for m in model.children() if m is not base]
    heads = [m for m in others if out is not None and any(sub is out for sub in m.modules())]
    loose = [m for m in others if m not in heads and next(m.parameters(), None) is not None]
    if len(heads) != 1 or loose:
        raise PipelineError(
            f"cannot find a single LM head module in {type(model).__name__} for TAPT "
            "(expected one child module holding the output embeddings, like `lm_head` or `cls`)"
        )
    return heads[0]


class GatheredMLM(nn.Module):
    """A MaskedLM model whose head runs only at masked positions (labels != -100).

    Wraps (does not copy) `mlm`: training this module trains `mlm`, weight tying included.
    The loss equals the stock mean cross-entropy over masked tokens.
    """

    def __init__(self, mlm: nn.Module):
        super().__init__()
        self.mlm = mlm
        self.head = find_lm_head(mlm)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """(B, T) ids, mask and labels (-100 where not masked) -> `loss` (scalar) and `logits` (M, V) at the M
        masked positions only."""
        if labels is None:
            raise ValueError("GatheredMLM needs labels: the masked positions pick the rows for the LM head")
        hidden = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
        masked = labels != -100
        logits = self.head(hidden[masked])
        return {"loss": F.cross_entropy(logits, labels[masked]), "logits": logits}


@dataclass
class MaskingCollator:
    """Masked-LM batches from our own seeded generator (features: `input_ids`, `units`, -1 = special token).

    A unit is a token (`encode(..., whole_word=False)`) or a whitespace word with all its pieces
    (`whole_word=True`). Each unit is picked with probability `mlm_probability`; picked tokens follow
    BERT's 80 % <mask> / 10 % random / 10 % unchanged rule.

    Written by hand because the stock `DataCollatorForLanguageModeling` (1) re-creates its generator
    on every call from the process it runs in, and refuses outside a main process or a DataLoader
    worker (TAPT in a spawned job or benchmark child), and (2) finds whole words from character
    offsets, which the Metaspace ("▁") pieces of XLM-R-style tokenizers defeat: every piece looks
    glued to the previous one and a whole sentence becomes one "word". One generator, seeded once,
    makes the masks the same in every process.
    """

    tokenizer: Any
    mlm_probability: float = 0.15
    seed: int | None = None

    def __post_init__(self) -> None:
        self.generator = torch.Generator()
        if self.seed is not None:
            self.generator.manual_seed(self.seed)

    def _bernoulli(self, p: float, shape: torch.Size) -> torch.Tensor:
        return torch.bernoulli(torch.full(shape, p), generator=self.generator).bool()

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], return_tensors="pt")
        width = batch["input_ids"].shape[1]
        left = self.tokenizer.padding_side == "left"
        units = torch.tensor(
            [
                [-1] * (width - len(u)) + u if left else u + [-1] * (width - len(u))
                for u in (f["units"] for f in features)
            ]
        )  # (B, T)
        picked = self._bernoulli(self.mlm_probability, (len(features), int(units.max()) + 1))  # (B, units)
        masked = picked.gather(1, units.clamp(min=0)) & (units >= 0)  # (B, T)
        inputs = batch["input_ids"]
        batch["labels"] = inputs.masked_fill(~masked, -100)
        to_mask = masked & self._bernoulli(0.8, inputs.shape)
        to_random = masked & ~to_mask & self._bernoulli(0.5, inputs.shape)
        inputs[to_mask] = self.tokenizer.mask_token_id
        inputs[to_random] = torch.randint(len(self.tokenizer), inputs.shape, generator=self.generator)[to_random]
        return batch


def encode(sentences: list[str], tokenizer: Any, max_length: int, whole_word: bool) -> list[dict[str, list[int]]]:
    """Tokenised sentences (no padding) with their masking `units`: the token's word (`whole_word`) or
    its own position; -1 for special tokens."""
    enc = tokenizer(sentences, truncation=True, max_length=max_length)
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        words = enc.word_ids(i)
        units = [-1 if w is None else (w if whole_word else j) for j, w in enumerate(words)]
        out.append({"input_ids": ids, "units": units})
    return out


def make_collator(tokenizer: Any, config: TaptConfig) -> MaskingCollator:
    """The seeded masking collator for `config` (token or whole-word units come from `encode`)."""
    return MaskingCollator(tokenizer, config.mlm_probability, config.seed)


def build_mlm(source: str | None, backbone: BackboneConfig, vocab_size: int, pad_token_id: int) -> nn.Module:
    """A MaskedLM model: the pretrained encoder at `source` (hub name or folder) resized to `vocab_size`, else
    the offline default XLM-R of the configured size, freshly initialised. A pretrained encoder saved without
    its MLM head (multilingual-e5-small) gets the library's new one: the decoder tied to the word embeddings,
    its transform layer and bias initialised fresh."""
    if source is None:
        return XLMRobertaForMaskedLM(build_config(backbone, vocab_size, pad_token_id))
    return load_pretrained(AutoModelForMaskedLM, source, vocab_size)


def run_tapt(
    sentences: list[str],
    tokenizer: Any,
    source: str | None,
    backbone: BackboneConfig,
    config: TaptConfig,
    out_dir: str | Path,
    callbacks: tuple = (),
) -> Path:
    """Train a masked LM on `sentences` (`config.total_steps` steps); save model + tokenizer + `tapt_log.json`.
    `callbacks`: `TrainerCallback`s for the trainer (a `StageBars` shows it as the stage "TAPT").

    The log holds the loss at each logging step, the wall time and the sentences/s throughput.
    """
    out_dir = Path(out_dir)
    steps = config.total_steps(len(sentences))
    set_seed(config.seed)
    mlm = build_mlm(source, backbone, len(tokenizer), tokenizer.pad_token_id)
    args = TrainingArguments(
        output_dir=str(out_dir),
        run_name="TAPT",
        max_steps=steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=round(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        use_cpu=not torch.cuda.is_available(),  # lets bf16 autocast run on a CPU-only machine
        optim="adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch",
        **precision_flags(config.precision),
        seed=config.seed,
        train_sampling_strategy="group_by_length",
        logging_steps=max(1, steps // 50),
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,  # keep `units` for the masking collator
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=GatheredMLM(mlm),
        args=args,
        train_dataset=encode(sentences, tokenizer, config.max_length, config.whole_word),
        data_collator=make_collator(tokenizer, config),
        processing_class=tokenizer,
        callbacks=[ReleaseHeap(), *callbacks],
    )
    replace_stock_output(trainer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    mlm.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    log = {
        "steps": trainer.state.global_step,
        "loss": [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e],
        "seconds": seconds,
        "sentences_per_s": trainer.state.global_step * config.batch_size / seconds,
        "sentences": len(sentences),
        "config": asdict(config),
    }
    (out_dir / "tapt_log.json").write_text(json.dumps(log, indent=2))
    return out_dir
