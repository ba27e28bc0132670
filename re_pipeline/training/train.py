"""Fine-tuning with `transformers.Trainer`: the train settings, the validation split, and prediction.

`pipeline.train_fold` calls these per fold: `make_trainer` (early stopping and best-checkpoint selection on
micro-F1, length-grouped or curriculum batches), `resume_training` (in `hf_trainer`), then `predict_probs`
for the validation and test rows.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import EarlyStoppingCallback, TrainingArguments

from ..core.device import PRECISIONS, precision_flags
from ..core.errors import PipelineError
from ..core.heap import ReleaseHeap
from ..core.progress import replace_stock_output
from ..core.typed_config import check, choice, option
from ..data.features import length_order, token_lengths
from ..data.split import SPLITS
from ..evaluation.metrics import compute_metrics, softmax
from ..evaluation.prior import CALIBRATIONS, DECISIONS, PRIOR_SHIFTS
from .hf_trainer import RelationTrainer
from .throughput import Throughput

VALIDATIONS = ("holdout", "kfold", "none")
CURRICULA = (None, "length")


REFIT = "refit"  # the run folder's subfolder of the model `train.refit` trains on every row
REFITS = ("auto", "always", "never")


@dataclass
class TrainConfig:
    """Fine-tuning settings."""

    epochs: float = option(5.0, "passes over the training rows")
    max_steps: int = option(-1, "stop after this many optimizer steps (-1: run the epochs)")
    batch_size: int = option(32, "training rows per step (per process under torchrun)")
    eval_batch_size: int = option(128, "rows per evaluation and prediction batch")
    learning_rate: float = option(3e-4, "peak AdamW rate; ~1e-5 to 3e-5 for large pretrained encoders")
    weight_decay: float = option(0.01, "AdamW weight decay")
    layer_decay: float = option(
        1.0,
        "layer-wise learning-rate decay: each encoder layer's rate this times the one above, the embeddings "
        "lowest, the head at learning_rate (1: one rate)",
    )
    warmup_ratio: float = option(0.1, "share of the steps with a linearly rising rate")
    warmup_steps: int | None = option(None, "steps with a linearly rising rate (overrides warmup_ratio)")
    gradient_accumulation: int = option(1, "steps whose gradients add up before each optimizer step")
    max_length: int = option(256, "tokens per input; longer inputs keep a window around the entities")
    validation: str = option("holdout", "holdout | kfold | none")
    split: str = option(
        "entity",
        "which rows validate: "
        + " | ".join(SPLITS)
        + " (data/split.py). entity: it ranks systems like the public leaderboard (rank correlation 0.89 "
        "micro-F1 / 0.93 AUPRC over 12 systems; random 0.83 / 0.23), research/agreement/",
    )
    holdout_fraction: float = option(0.2, "share of rows validated with validation: holdout")
    train_fraction: float = option(
        1.0, "share of each fold's training rows trained on, stratified by label (screening runs: re-pipeline screen)"
    )
    seed: int | None = option(
        None,
        "seed of the initial weights and the batches' order (null: the run's `seed`, which also draws the split "
        "and the training and evaluation shares): another value gives a second seed on the same rows",
    )
    eval_rows: int | None = option(
        None,
        "evaluate during training (early stopping, best checkpoint) on a fixed label-stratified subset of this "
        "many validation rows; every validation row is still predicted and scored at the end (null: all, each time)",
    )
    folds: int = option(5, "folds with validation: kfold")
    refit: str = option(
        "auto",
        "after validation, train once more on every row and predict the test with that model alone (the "
        "validated folds keep the scores; a TF-IDF refit's solver starts from the last fold's solution): auto (for "
        "the classical kinds, whose fit takes minutes) | always | never",
    )
    eval_steps: int | None = option(None, "evaluate every N steps (null: every epoch)")
    early_stopping_patience: int = option(3, "evaluations without a better micro-F1 before stopping (0: never)")
    group_by_length: bool = option(True, "batches of similar length (less padding)")
    pad_to_dataset_max: bool = option(False, "pad every batch to the longest row of the data (the baseline's way)")
    curriculum: str | None = option(None, "null | length: the first epoch shortest rows first")
    calibration: str = option(
        "none",
        "test probabilities calibrated on the validated rows first (evaluation/prior.py): none | temperature | bcts "
        "(temperature and a bias per class)",
    )
    prior_shift: str = option(
        "none",
        "test probabilities adjusted to a test label prior estimated without labels (evaluation/prior.py): "
        + " | ".join(PRIOR_SHIFTS),
    )
    decision: str = option(
        "argmax",
        "argmax | f1: the no_relation probability scaled by the factor with the best validation micro-F1 "
        "(a threshold on training labels; the label stays the argmax)",
    )
    precision: str = option("auto", "auto (bf16 where the GPU or CPU computes it in hardware) | fp32 | bf16 | fp16")
    compile: bool = option(False, "torch.compile the model (dynamic shapes)")
    num_proc: int = option(1, "processes for tokenization")
    logging_steps: int = option(50, "training-loss log interval in steps")
    report_to: list[str] = option(
        help="trackers writing inside each fold folder, e.g. [tensorboard, mlflow]", factory=list
    )

    def __post_init__(self) -> None:
        if {"all", "none"} & set(self.report_to):
            raise PipelineError("train.report_to lists trackers by name ([] for none), not 'all' or 'none'")
        choice("train.validation", self.validation, VALIDATIONS)
        choice("train.split", self.split, SPLITS)
        choice("train.curriculum", self.curriculum, CURRICULA)
        choice("train.precision", self.precision, PRECISIONS)
        choice("train.prior_shift", self.prior_shift, PRIOR_SHIFTS)
        choice("train.calibration", self.calibration, CALIBRATIONS)
        choice("train.decision", self.decision, DECISIONS)
        needs = [f"train.calibration {self.calibration}"] if self.calibration != "none" else []
        needs += [f"train.decision {self.decision}"] if self.decision != "argmax" else []
        needs += [f"train.prior_shift {self.prior_shift}"] if self.prior_shift.startswith("bbse") else []
        if needs and self.validation == "none":
            raise PipelineError(
                f"{', '.join(needs)}: fitted on validated rows; set train.validation to holdout or kfold"
            )
        for key in ("batch_size", "eval_batch_size", "num_proc", "logging_steps"):
            check(f"train.{key}", getattr(self, key) >= 1, "at least 1", getattr(self, key))
        check("train.epochs", self.epochs > 0 or self.max_steps >= 1, "above 0", self.epochs)
        check(
            "train.max_steps",
            self.max_steps == -1 or self.max_steps >= 1,
            "-1 (run the epochs) or at least 1",
            self.max_steps,
        )
        check("train.learning_rate", self.learning_rate > 0, "above 0", self.learning_rate)
        check("train.weight_decay", self.weight_decay >= 0, "at least 0", self.weight_decay)
        check("train.layer_decay", 0 < self.layer_decay <= 1, "in (0, 1]", self.layer_decay)
        check("train.warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)", self.warmup_ratio)
        check("train.max_length", self.max_length >= 16, "at least 16", self.max_length)
        check(
            "train.holdout_fraction",
            0 < self.holdout_fraction < 1,
            "between 0 and 1 (exclusive)",
            self.holdout_fraction,
        )
        check("train.folds", self.folds >= 2, "at least 2", self.folds)
        check("train.train_fraction", 0 < self.train_fraction <= 1, "in (0, 1]", self.train_fraction)
        check("train.seed", self.seed is None or self.seed >= 0, "null or at least 0", self.seed)
        check("train.eval_rows", self.eval_rows is None or self.eval_rows >= 1, "null or at least 1", self.eval_rows)
        choice("train.refit", self.refit, REFITS)
        check(
            "train.eval_steps", self.eval_steps is None or self.eval_steps >= 1, "null or at least 1", self.eval_steps
        )
        check(
            "train.early_stopping_patience",
            self.early_stopping_patience >= 0,
            "at least 0",
            self.early_stopping_patience,
        )


def curriculum_order(lengths: list[int], epochs: int, seed: int) -> list[int]:
    """Row order for curriculum training: epoch 1 shortest-first, later epochs shuffled."""
    rng = np.random.default_rng(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    for _ in range(max(1, epochs) - 1):
        order += rng.permutation(len(lengths)).tolist()
    return order


def make_trainer(
    model,
    train_ds,
    eval_ds,
    collator,
    config: TrainConfig,
    out_dir: Path,
    seed: int,
    callbacks: tuple = (),
    name: str | None = None,
) -> RelationTrainer:
    """A `RelationTrainer` with early stopping and best-checkpoint selection on micro-F1; `callbacks` are added
    (a `StageBars` among them replaces the stock progress output); `name` names the run (e.g. "fold 1").

    With `config.curriculum: length`, every epoch is laid out in one pass over `train_ds` (the first
    shortest-first), read in order; evaluation still happens once per epoch.
    """
    has_eval = eval_ds is not None and len(eval_ds) > 0
    epochs, eval_steps = config.epochs, config.eval_steps
    sampling = "group_by_length" if config.group_by_length else "random"
    if config.curriculum:
        train_ds = train_ds.select(curriculum_order(token_lengths(train_ds), round(config.epochs), seed))
        steps_per_epoch = -(-len(train_ds) // max(1, round(config.epochs)) // config.batch_size)
        epochs, eval_steps, sampling = 1, eval_steps or steps_per_epoch, "sequential"
    strategy = "steps" if eval_steps else "epoch"
    args = TrainingArguments(
        output_dir=str(out_dir),
        run_name=name,
        num_train_epochs=epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps if config.warmup_steps is not None else config.warmup_ratio,
        gradient_accumulation_steps=config.gradient_accumulation,
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
        optim="adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch",  # one kernel per step on a GPU
        torch_compile=config.compile,
        use_cpu=not torch.cuda.is_available(),  # without it, accelerate leaves torchrun's CPU processes unconnected
        disable_tqdm=False,
        **precision_flags(config.precision),
    )
    patience = config.early_stopping_patience
    stopping = [EarlyStoppingCallback(patience)] if has_eval and patience > 0 else []
    cached = getattr(collator, "frozen", None) is not None
    meter = Throughput(model.encoder.config, model.frozen_layers, cached, model.config.peft.enabled, config.precision)
    trainer = RelationTrainer(
        throughput=meter,
        layer_decay=config.layer_decay,
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds.select(length_order(eval_ds)) if has_eval else None,  # shortest first: same metrics
        data_collator=collator,
        compute_metrics=metrics_from_eval if has_eval else None,
        callbacks=[*stopping, ReleaseHeap(), meter, *callbacks],
    )
    return replace_stock_output(trainer)


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


def predict_probs(trainer, dataset) -> np.ndarray:
    """Softmax probabilities [rows, labels] for `dataset`, read shortest first and returned in its order."""
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
