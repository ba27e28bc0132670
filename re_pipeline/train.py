"""Training: `transformers.Trainer` underneath, hold-out or stratified k-fold, test predictions averaged.

One call, `run_training(config, run_dir)`, goes load -> clean -> (TAPT) -> per fold:
augment the training part -> tokenize -> train -> predict the held-out rows (out of fold)
and the test rows. Augmented children are made after the split, from training rows only,
so a parent and its children are always on the same side.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .data.features import token_lengths
from .errors import PipelineError
from .io_utils import atomic_write
from .labels import LabelSet
from .metrics import compute_metrics, softmax
from .models.relation import RelationModel, pair_vocabulary

VALIDATIONS = ("holdout", "kfold", "none")
CURRICULA = (None, "length")


@dataclass
class TrainConfig:
    """Fine-tuning settings. `validation`: holdout | kfold | none; `curriculum`: null | length."""

    epochs: float = 2.0
    max_steps: int = -1
    batch_size: int = 32
    eval_batch_size: int = 128
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 256
    validation: str = "holdout"
    holdout_fraction: float = 0.2
    folds: int = 5
    eval_steps: int | None = None
    early_stopping_patience: int = 3
    group_by_length: bool = True
    pad_to_dataset_max: bool = False
    curriculum: str | None = None
    precision: str = "auto"
    num_proc: int = 1
    logging_steps: int = 50
    report_to: list[str] = field(default_factory=list)  # e.g. [tensorboard, mlflow]: files inside each fold folder

    def __post_init__(self) -> None:
        if {"all", "none"} & set(self.report_to):
            raise PipelineError("train.report_to lists trackers by name ([] for none), not 'all' or 'none'")
        if self.validation not in VALIDATIONS:
            raise PipelineError(f"train.validation must be one of {', '.join(VALIDATIONS)}, not {self.validation!r}")
        if self.curriculum not in CURRICULA:
            raise PipelineError(f"train.curriculum must be null or 'length', not {self.curriculum!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise PipelineError(f"train.precision must be auto, fp32, bf16 or fp16, not {self.precision!r}")


class RelationCollator:
    """Pads a batch to its longest row (or to a fixed length, as the official baseline did)."""

    SEQUENCE = ("input_ids", "attention_mask", "entity_mask")
    SCALAR = ("subj_start", "obj_start", "pair", "labels")

    def __init__(self, pad_id: int, pad_to: int | None = None, multiple_of: int = 8):
        self.pad_id = pad_id
        self.pad_to = pad_to
        self.multiple_of = multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        width = self.pad_to or -(-longest // self.multiple_of) * self.multiple_of
        batch = {}
        for key in self.SEQUENCE:
            fill = self.pad_id if key == "input_ids" else 0
            batch[key] = torch.tensor([list(r[key]) + [fill] * (width - len(r[key])) for r in rows])
        for key in self.SCALAR:
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows])
        return batch


def split_indices(
    labels: list[str], groups: list[str], config: TrainConfig, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, validation) index pairs; rows sharing a group stay together."""
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(labels)
    if config.validation == "none":
        return [(np.arange(n), np.arange(0))]
    folds = config.folds if config.validation == "kfold" else max(2, round(1 / config.holdout_fraction))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(n), labels, groups))
    return splits if config.validation == "kfold" else splits[:1]


def precision_flags(precision: str) -> dict:
    cuda = torch.cuda.is_available()
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def make_trainer(
    model, train_ds, eval_ds, collator, config: TrainConfig, out_dir: Path, seed: int, callbacks: tuple = ()
):
    """A `Trainer` with early stopping and best-checkpoint selection on micro-F1; `callbacks` are added."""
    from transformers import EarlyStoppingCallback, TrainingArguments

    from .hf_trainer import RelationTrainer

    has_eval = eval_ds is not None and len(eval_ds) > 0
    epochs, eval_steps, sampling = (
        config.epochs,
        config.eval_steps,
        "group_by_length" if config.group_by_length else "random",
    )
    if config.curriculum:
        # The caller laid out every epoch in `train_ds` (the first sorted easy-to-hard): read it in order.
        steps_per_epoch = -(-len(train_ds) // max(1, round(config.epochs)) // config.batch_size)
        epochs, eval_steps, sampling = 1, eval_steps or steps_per_epoch, "sequential"
    strategy = "steps" if eval_steps else "epoch"
    args = TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        eval_strategy=strategy if has_eval else "no",
        save_strategy=strategy,
        eval_steps=eval_steps,
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=has_eval,
        restore_callback_states_from_checkpoint=True,  # early stopping's patience count survives a resume
        metric_for_best_model="micro_f1",
        greater_is_better=True,
        logging_steps=config.logging_steps,
        train_sampling_strategy=sampling,
        remove_unused_columns=False,
        report_to=local_reporting(config.report_to, out_dir.parent),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # without it, accelerate leaves torchrun's CPU processes unconnected
        disable_tqdm=False,
        **precision_flags(config.precision),
    )
    stopping = (
        [EarlyStoppingCallback(config.early_stopping_patience)]
        if has_eval and config.early_stopping_patience > 0
        else []
    )

    return RelationTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds.select(length_order(eval_ds))
        if has_eval
        else None,  # shortest first: less padding, same metrics
        data_collator=collator,
        compute_metrics=metrics_from_eval if has_eval else None,
        callbacks=[*stopping, *callbacks],
    )


def last_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete `checkpoint-N` in `out_dir`: its `trainer_state.json`, written last, parses."""
    for path in sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]), reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            return path
        except (OSError, ValueError):
            continue
    return None


def local_reporting(report_to: list[str], fold_dir: Path) -> list[str]:
    """Check each tracker's package is installed; point tensorboard and mlflow at files inside `fold_dir`."""
    for name in report_to:
        if importlib.util.find_spec(name) is None:
            raise PipelineError(
                f"train.report_to lists {name!r} but the {name} package is not installed: pip install {name}"
            )
    if "tensorboard" in report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(fold_dir / "tensorboard")
    if "mlflow" in report_to:
        os.environ["MLFLOW_TRACKING_URI"] = (fold_dir / "mlruns").resolve().as_uri()
    return list(report_to)


def metrics_from_eval(eval_pred) -> dict:
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    logits = logits[0] if isinstance(logits, tuple) else logits
    return compute_metrics(np.asarray(labels), softmax(np.asarray(logits, dtype=np.float64)))


def curriculum_order(lengths: list[int], epochs: int, seed: int) -> list[int]:
    """Row order for curriculum training: epoch 1 shortest-first, later epochs shuffled."""
    rng = np.random.default_rng(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    for _ in range(max(1, epochs) - 1):
        order += rng.permutation(len(lengths)).tolist()
    return order


def predict_probs(trainer, dataset) -> np.ndarray:
    if dataset is None or len(dataset) == 0:
        return np.zeros((0, 0))
    if "labels" in dataset.column_names:  # unlabelled test rows carry -100: predict without metrics
        dataset = dataset.remove_columns("labels")
    order = length_order(dataset)
    output = trainer.predict(dataset.select(order))
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    probs = np.empty(logits.shape, dtype=np.float64)
    probs[order] = softmax(np.asarray(logits, dtype=np.float64))
    return probs


def length_order(dataset) -> np.ndarray:
    """Row indices shortest first: batches of similar length waste little padding at inference."""
    return np.argsort(token_lengths(dataset), kind="stable")


def build_model(
    encoder, config, label_set: LabelSet, train_examples, new_tokens: list[int] = ()
) -> tuple[RelationModel, list[str]]:
    """The relation model over `encoder`, with pair heads and class weights from the training rows.

    With `config.peft`, the encoder is frozen and the method's parts added; `new_tokens` (ids of the
    tokens added to the tokenizer) keep trainable embedding rows."""
    from .models.losses import inverse_sqrt_weights
    from .models.peft import apply_peft

    label_ids = label_set.ids(ex.label for ex in train_examples)
    pairs = [(ex.subject.type, ex.object.type) for ex in train_examples]
    pair_names, allowed = pair_vocabulary(pairs, label_ids, len(label_set))
    model = RelationModel(encoder, config, len(label_set), allowed if config.type_pair_heads else None)
    model.class_weights.copy_(inverse_sqrt_weights(label_ids, len(label_set)))
    return apply_peft(model, list(new_tokens)), pair_names


def add_pair_column(dataset, pair_names: list[str]):
    index = {n: i for i, n in enumerate(pair_names)}
    return dataset.map(
        lambda b: {"pair": [index.get(f"{s}|{o}", -1) for s, o in zip(b["subject_type"], b["object_type"])]},
        batched=True,
        desc="type pairs",
    )


def write_json(path: Path, data: dict) -> None:
    with atomic_write(path) as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1, default=str)
