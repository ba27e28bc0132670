"""The main job (`make train`): load -> clean -> tokenizer -> (TAPT) -> folds -> predict -> submission.

`run_pipeline` prepares what every fold shares (`RunInputs`), trains each fold (`train_fold`: augment,
featurize, build the model, train, predict, save), then writes the run's results. It writes
`runs/<run_id>/` (resolved config, data fingerprints, ledgers, metrics, out-of-fold and test
probabilities, models) and `submissions/<run_id>.csv` (validated).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from transformers import set_seed

from .config import Config, load_config, to_yaml, with_values
from .core.errors import PipelineError
from .core.heap import release_heap
from .core.io_utils import CACHE, atomic_dir, atomic_write, read_json, write_json
from .core.labels import LabelSet
from .core.progress import StageBars, stage
from .data.audit import Ledger
from .data.augment import augment
from .data.clean import apply_label_rules
from .data.features import (
    RelationCollator,
    add_pair_column,
    build_features,
    prepare_tokenizer,
    shared_head_note,
    token_lengths,
    window_note,
)
from .data.load import LoadedData, check_test_labels, load_configured
from .data.markers import mark
from .data.morphemes import space_examples, space_sentences
from .data.schema import Example
from .data.split import Fold, split_rows, stratified_share
from .evaluation.metrics import compute_metrics, labelled_test_metrics, per_class_report
from .evaluation.prior import Reference, cross_fitted_decision
from .evaluation.shift import shift_tables, weights_like_test
from .models.backbone import build_encoder, default_tokenizer, load_encoder, load_tokenizer
from .models.classical import CLASSICAL
from .models.packaged import backbone_folder, is_packaged
from .models.peft import new_token_ids, trainable_parameters
from .models.relation import RelationModel, build_model
from .models.store import save_relation_model
from .models.trim import RECORD as TRIM_RECORD
from .models.trim import kept_ids, trim_record, trimmed_folder
from .records.html_report import write_report
from .records.reports import write_reports
from .records.runs import data_files, environment, new_run_id, write_metrics_log
from .submit.ensemble import run_ensemble
from .submit.submission import validate_submission, with_quarantined_rows, write_submission
from .training.frozen_cache import frozen_store
from .training.hf_trainer import resume_training
from .training.tapt import run_tapt
from .training.train import REFIT, last_checkpoint, make_trainer, predict_probs


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def distributed() -> PartialState:
    """This process's `accelerate` state; under torchrun the first call starts the process group (gloo on CPU)."""
    return PartialState(cpu=not torch.cuda.is_available())


def load_inputs(config: Config) -> tuple[LoadedData, LoadedData | None]:
    """The cleaned train data (labelled rows required) and the test data read with train's label set. The
    rules that read the gold label are left for the training part of each split (`train_fold`)."""
    train = load_configured(config.data.train, config.data, config.clean, label_rules=False)
    if not train.examples or all(ex.label is None for ex in train.examples):
        raise PipelineError(f"{config.data.train}: no labelled rows to train on")
    test = None
    if config.data.test:
        test = load_configured(config.data.test, config.data, config.clean, train.label_set)
        if config.data.labels == "auto":  # a label set the user named is their choice
            check_test_labels(train.label_set, test, config.data.unlabelled_values)
    return train, test


def task_sentences(config: Config, train: LoadedData, test: LoadedData | None) -> list[str]:
    """The unique train and test sentences (the competition allows the unlabelled test text), morpheme-spaced
    when the input format is."""
    sentences = sorted({ex.sentence for ex in train.examples + (test.examples if test else [])})
    return space_sentences(sentences) if config.markers.morphemes else sentences


def prepare_backbone(
    config: Config,
    sentences: list[str],
    log,
    cache: Path = CACHE,
    saved: Path | None = None,
    bars: StageBars | None = None,
    examples: list[Example] = (),
) -> tuple[Any, str | None]:
    """The tokenizer (the run's `saved` one when resuming) and where the encoder comes from (None: a fresh default).
    `examples`: the run's rows, whose marked texts decide a trimmed vocabulary (`model.backbone.trim_vocab`).
    `bars`: progress bars for the tokenizer and TAPT stages (None: the libraries' own output)."""
    backbone = config.model.backbone
    with distributed().main_process_first():  # rank 0 trains and caches a tokenizer; the other ranks then read it
        if backbone.name is None:
            tok_dir = cache / "tokenizers" / _digest(sorted(sentences), backbone.vocab_size)
            log(f"tokenizer: {'cached' if (tok_dir / 'tokenizer.json').exists() else 'training'} ({tok_dir})")
            if not (tok_dir / "tokenizer.json").exists():
                with atomic_dir(tok_dir) as tmp, stage(bars, "tokenizer"):
                    default_tokenizer(sentences, backbone, tmp, show_progress=bars is None)
            tokenizer, source = load_tokenizer(str(tok_dir)), None
        elif is_packaged(backbone.name):
            source = str(packaged_source(config, sentences, examples, log, cache))
            tokenizer = load_tokenizer(source)
        else:
            tokenizer, source = load_tokenizer(backbone.name), backbone.name
        if saved is not None and (saved / "tokenizer.json").exists():
            tokenizer = load_tokenizer(str(saved))
    if config.tapt.enabled:
        vocab = sorted(tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False).items())
        tapt_dir = cache / "tapt" / _digest(sorted(sentences), asdict(backbone), asdict(config.tapt), vocab)
        if (tapt_dir / "tapt_log.json").exists():  # written last: the checkpoint is complete
            log(f"TAPT: reusing {tapt_dir}")
        else:
            log(f"TAPT: {config.tapt.total_steps(len(sentences))} masked-LM steps on {len(sentences):,} sentences")
            with atomic_dir(tapt_dir) as tmp:  # every rank trains (data parallel); the first to finish publishes
                run_tapt(sentences, tokenizer, source, backbone, config.tapt, tmp, (bars,) if bars else ())
                if trim_record(source):  # a TAPT model of a trimmed backbone is expanded like one
                    shutil.copy(Path(source) / TRIM_RECORD, tmp / TRIM_RECORD)
        source = str(tapt_dir)
    return tokenizer, source


def packaged_source(config: Config, sentences: list[str], examples: list[Example], log, cache: Path) -> Path:
    """The converted folder of a packaged backbone, trimmed to what the run tokenizes when the config says so:
    the sentences (TAPT's input) and every example as its format marks it, with the format's tokens added."""
    backbone, markers = config.model.backbone, config.markers
    full = backbone_folder(backbone.name, cache, log)
    if not backbone.trims(config.model.peft.enabled):
        return full
    tokenizer = load_tokenizer(str(full))
    prepare_tokenizer(tokenizer, markers, {e.type for ex in examples for e in (ex.subject, ex.object)})
    marked = [
        mark(ex, markers, tokenizer.sep_token) for ex in (space_examples(examples) if markers.morphemes else examples)
    ]
    texts = [*sentences, *(m.text for m in marked), *(m.first for m in marked if m.first)]
    kept = kept_ids(tokenizer, texts)
    log(f"backbone: vocabulary trimmed to the {len(kept):,} of {tokenizer.vocab_size:,} pieces the run's texts use")
    return trimmed_folder(full, backbone.name, kept, cache)


@dataclass(frozen=True)
class RunInputs:
    """What every fold of a run shares."""

    config: Config
    tokenizer: Any  # fast tokenizer with the format's marker tokens added
    label_set: LabelSet
    source: str | None  # where the encoder comes from (a hub name or folder, e.g. TAPT's); None: a fresh default
    callbacks: tuple = ()  # extra `TrainerCallback`s for every fold
    cache: Path = CACHE  # where frozen-layer stores go (training/frozen_cache.py)

    @property
    def bars(self) -> StageBars | None:
        """The console's progress bars among the callbacks (None: the libraries' own output)."""
        return next((cb for cb in self.callbacks if isinstance(cb, StageBars)), None)

    def features(self, examples: list[Example]):
        """Tokenized model inputs of `examples` (a `datasets.Dataset`) and their stats."""
        train = self.config.train
        return build_features(
            examples, self.tokenizer, self.config.markers, self.label_set, train.max_length, train.num_proc
        )


@dataclass
class FoldResult:
    """One fold's outputs: probabilities [rows, labels] of its validation and test rows (None when it has
    none), and `info`, what `fold.json` keeps (augmentation and feature stats, trainable parameters, the
    trainer's log history, validation metrics)."""

    val_probs: np.ndarray | None
    test_probs: np.ndarray | None
    info: dict

    @classmethod
    def load(cls, fold_dir: Path) -> FoldResult:
        return cls(
            _load(fold_dir / "val_probs.npy"), _load(fold_dir / "test_probs.npy"), read_json(fold_dir / "fold.json")
        )

    def save(self, fold_dir: Path) -> None:
        for name, probs in (("val_probs", self.val_probs), ("test_probs", self.test_probs)):
            if probs is not None:
                np.save(fold_dir / f"{name}.npy", probs, allow_pickle=False)
        write_json(fold_dir / "fold.json", self.info)  # last: a fold with fold.json is finished


def _load(path: Path) -> np.ndarray | None:
    return np.load(path, allow_pickle=False) if path.exists() else None


def fold_encoder(inputs: RunInputs, fold_dir: Path) -> tuple[torch.nn.Module, str | None]:
    """The fold's encoder and where it comes from. A PEFT fold model keeps only its trained parts, so a fresh
    default base goes on disk first, once per run (`base_encoder/`), for the saved model to point at."""
    config, tokenizer, source = inputs.config, inputs.tokenizer, inputs.source
    if config.model.peft.enabled and source is None:
        base = fold_dir.parent / "base_encoder"
        with distributed().main_process_first():
            if not (base / "model.safetensors").exists():
                with atomic_dir(base) as tmp:
                    build_encoder(config.model.backbone, len(tokenizer), tokenizer.pad_token_id).save_pretrained(tmp)
        source = str(base)
    if source:
        return load_encoder(source, len(tokenizer), config.model.backbone), source
    return build_encoder(config.model.backbone, len(tokenizer), tokenizer.pad_token_id), None


def fold_label(k: int, fold_dir: Path) -> str:
    """How logs and progress bars name fold `k` ("fold 1", ...), or the `train.refit` model."""
    return "refit" if fold_dir.name == REFIT else f"fold {k + 1}"


def model_seed(config: Config) -> int:
    """The seed of the initial weights and the batches: `train.seed`, else the run's (which draws the split)."""
    return config.seed if config.train.seed is None else config.train.seed


def train_fold(
    k: int,
    fold_dir: Path,
    fold_train: list[Example],
    fold_val: list[Example],
    test_examples: list[Example],
    test_ds,
    inputs: RunInputs,
    log,
) -> FoldResult:
    """Train one fold (resuming from its last checkpoint if there is one); save and return its outputs.

    The training rows get the rules that read the gold label (`clean.apply_label_rules`) and augmentation
    here, after the split: validation rows are never relabelled, deduplicated by label or augmented."""
    if (fold_dir / "fold.json").exists():
        log(f"{fold_label(k, fold_dir)}: already finished, outputs reused")
        return FoldResult.load(fold_dir)
    config = inputs.config
    if config.train.train_fraction < 1:
        keep = stratified_share([ex.label for ex in fold_train], config.train.train_fraction, config.seed)
        log(f"{fold_label(k, fold_dir)}: training on {len(keep):,} of {len(fold_train):,} rows (train.train_fraction)")
        fold_train = [fold_train[i] for i in keep]
    rules = Ledger("training rows", rows_read=len(fold_train))
    fold_train = apply_label_rules(fold_train, rules, config.clean)
    fold_train, aug_summary = augment(fold_train, config.augment)
    train = FOLD_TRAINERS[config.model.kind]
    val_probs, test_probs, info = train(k, fold_dir, fold_train, fold_val, test_examples, test_ds, inputs, log)
    result = FoldResult(val_probs, test_probs, {"label_rules": rules.rule_counts(), "augment": aug_summary, **info})
    if val_probs is not None:
        result.info["metrics"] = compute_metrics(
            np.array(inputs.label_set.ids(ex.label for ex in fold_val)), val_probs
        )
    if distributed().is_main_process:
        result.save(fold_dir)
    return result


def train_transformer(k, fold_dir, fold_train, fold_val, test_examples, test_ds, inputs: RunInputs, log):
    """`model.kind: transformer`: featurize, build the relation model, train it, predict; the model is saved
    in `fold_dir/model`. Returns validation and test probabilities and what `fold.json` keeps."""
    config = inputs.config
    train_ds, stats = inputs.features(fold_train)
    val_ds, val_stats = inputs.features(fold_val) if fold_val else (None, None)
    max_length = config.train.max_length
    notes = [window_note(stats, "training", max_length), window_note(val_stats, "validation", max_length)]
    encoder, source = fold_encoder(inputs, fold_dir)
    tokenizer = inputs.tokenizer
    model, pair_names = build_model(
        encoder, config.model, inputs.label_set, fold_train, new_token_ids(tokenizer), tokenizer.mask_token_id
    )
    count, percent = trainable_parameters(model)
    label = fold_label(k, fold_dir)
    if config.model.peft.enabled:
        log(f"{label}: PEFT {config.model.peft.method}: {count:,} trainable parameters ({percent:.2f}%)")
    train_ds, val_ds, test_ds = (
        add_pair_column(ds, pair_names) if ds is not None else None for ds in (train_ds, val_ds, test_ds)
    )
    if config.model.type_pair_heads:
        notes += [shared_head_note(val_ds, "validation"), shared_head_note(test_ds, "test")]
    frozen = None
    if config.model.backbone.cached:
        frozen, (train_ds, val_ds, test_ds) = frozen_inputs(model, (train_ds, val_ds, test_ds), inputs, label, log)
        if new_token_ids(tokenizer):
            notes.append("the marker tokens added to the vocabulary keep their initial embeddings (frozen)")
    notes = list(filter(None, notes))
    for note in notes:
        log(f"{label}: {note}")
    trainer = fit(model, train_ds, val_ds, test_ds, inputs, fold_dir, k, log, frozen)
    started = time.perf_counter()
    val_probs = predict_probs(trainer, val_ds) if val_ds is not None else None
    test_probs = predict_probs(trainer, test_ds) if test_ds is not None else None
    throughput = {
        **trainer.throughput.summary(trainer.args.device.type),
        "predict_seconds": round(time.perf_counter() - started, 1),
    }
    log(
        f"{label}: {throughput['rows_per_s']} rows/s, {throughput['gflops']} GFLOP/s "
        f"({100 * throughput['mfu']:.1f}% of the {throughput['precision']} matmul peak)"
    )
    if distributed().is_main_process:
        save_relation_model(model, tokenizer, inputs.label_set, pair_names, fold_dir / "model", base=source)
    info = {
        "features": stats,
        "notes": notes,
        "trainable": {"count": count, "percent": percent},
        "throughput": throughput,
        "log_history": trainer.state.log_history,
    }
    return val_probs, test_probs, info


def frozen_inputs(model: RelationModel, datasets: tuple, inputs: RunInputs, label: str, log):
    """The frozen-layer store over the fold's datasets (None entries stay None), and the datasets with the
    `frozen_row` column that indexes it; rank 0 builds the store, the other ranks then read it."""
    config = inputs.config
    present = [ds for ds in datasets if ds is not None]
    with distributed().main_process_first(), stage(inputs.bars, f"{label}: frozen layers"):
        store, indexed = frozen_store(
            model.encoder,
            config.model.backbone.freeze_layers,
            inputs.tokenizer,
            present,
            config.model.backbone.frozen_cache,
            config.train.precision,
            inputs.cache,
            config.train.eval_batch_size,
            lambda message: log(f"{label}: {message}"),
        )
    rows = iter(indexed)
    return store, tuple(next(rows) if ds is not None else None for ds in datasets)


def train_classical(k, fold_dir, fold_train, fold_val, test_examples, test_ds, inputs: RunInputs, log):
    """`model.kind: tfidf | prior` (models/classical.py): fit on the fold's training rows, predict, save in the
    kind's folder of `fold_dir`. The refit of a kind with `warm_start` starts from the last fold's model."""
    config, label_set = inputs.config, inputs.label_set
    kind = CLASSICAL[config.model.kind]
    label = fold_label(k, fold_dir)
    log(f"{label}: {config.model.kind} on {len(fold_train):,} rows")
    started = time.time()
    fit, last = kind.fit, fold_dir.parent / f"fold{k - 1}" / kind.folder
    if fold_dir.name == REFIT and kind.warm_start and (last.parent / "fold.json").exists():  # written after the model
        log(f"{label}: the solver starts from fold {k}'s model")
        fit = partial(kind.fit, init=kind.load(last))
    with stage(inputs.bars, f"{label}: {config.model.kind}"):  # no steps to count: a bar per stage
        model = fit(
            kind.inputs(fold_train, config.markers),
            label_set.ids(ex.label for ex in fold_train),
            len(label_set),
            kind.settings(config.model),
            model_seed(config),
        )
    with stage(inputs.bars, f"{label}: predicting"):
        val_probs = model.predict_proba(kind.inputs(fold_val, config.markers)) if fold_val else None
        test_probs = model.predict_proba(kind.inputs(test_examples, config.markers)) if test_examples else None
    if distributed().is_main_process:
        model.save(fold_dir / kind.folder)
    release_heap()  # the solver's freed buffers, before the next fit
    return (
        val_probs,
        test_probs,
        {"features": {"examples": len(fold_train)}, "seconds": round(time.time() - started, 1)},
    )


FOLD_TRAINERS = {"transformer": train_transformer, **dict.fromkeys(CLASSICAL, train_classical)}


def fit(model: RelationModel, train_ds, val_ds, test_ds, inputs: RunInputs, fold_dir: Path, k: int, log, frozen=None):
    """Train `model` with the Trainer (resuming from the fold's last checkpoint), evaluating on `val_ds` or its
    `train.eval_rows` subset; returns the trainer, ready to predict with the best checkpoint loaded. `frozen`: the
    fold's frozen-layer store, read by the collator."""
    config = inputs.config
    pad_to = None
    if config.train.pad_to_dataset_max:
        pad_to = max(max(token_lengths(ds)) for ds in (train_ds, val_ds, test_ds) if ds is not None)
    collator = RelationCollator(inputs.tokenizer.pad_token_id, pad_to, frozen=frozen)
    label = fold_label(k, fold_dir)
    eval_ds, eval_rows = val_ds, config.train.eval_rows
    if val_ds is not None and eval_rows and eval_rows < len(val_ds):
        share = stratified_share(val_ds["labels"], eval_rows / len(val_ds), config.seed)
        eval_ds = val_ds.select(share).flatten_indices()  # token_lengths reads the Arrow table, not a selection
        log(f"{label}: evaluating during training on {len(eval_ds):,} of {len(val_ds):,} validation rows")
    trainer = make_trainer(
        model,
        train_ds,
        eval_ds,
        collator,
        config.train,
        fold_dir / "checkpoints",
        model_seed(config),
        inputs.callbacks,
        name=label,
    )
    checkpoint = last_checkpoint(fold_dir / "checkpoints")
    log(f"{label}: resuming from {checkpoint}" if checkpoint else f"{label}: training")
    resume_training(trainer, checkpoint)
    log(f"{label}: predicting")
    return trainer


def run_pipeline(
    config: Config,
    run_dir: Path | None = None,
    submissions_dir: Path = Path("submissions"),
    log=print,
    cache: Path = CACHE,
    callbacks: tuple = (),
    only_folds: list[int] | None = None,
    bars: StageBars | None = None,
) -> Path:
    """Run a whole experiment into `run_dir` (new under runs/ when None; an existing one is resumed).

    Under torchrun every rank trains (data parallel); only rank 0 writes the run folder and the submission.
    `callbacks`: extra `TrainerCallback`s for every fold. `only_folds`: train only these folds (by index)
    and stop before the results; a later call without it reuses them (`re-pipeline jobs --folds`).
    `bars`: one progress bar per stage instead of the libraries' own output.
    """
    started = time.time()
    state = distributed()
    main = state.is_main_process
    log = log if main else (lambda message: None)
    run_dir = Path(
        broadcast_object_list([str(run_dir or Path("runs") / new_run_id(config.name))])[0]
    )  # one id for all ranks
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / "config.yaml") as fh:
            fh.write(to_yaml(config))
    train, test = load_inputs(config)
    for name, loaded in (("train", train), ("test", test)):
        if loaded is not None:
            log(f"{name} data: " + ", ".join(f"{k} {n:,}" for k, n in loaded.ledger.counts().items()))
            for note in loaded.ledger.notes:
                log(f"  {name}: {note}")
            if main:
                loaded.ledger.write(run_dir / f"{name}.audit.csv", run_dir / f"{name}.quarantine.csv")
    if main:
        write_json(run_dir / "labels.json", train.label_set.to_dict())
    inputs = prepare_run(config, train, test, run_dir, log, cache, callbacks, bars)
    examples, test_examples = train.examples, test.examples if test else []
    kind = CLASSICAL.get(config.model.kind)
    if kind is not None and kind.prepare is not None:
        with stage(bars, "preparing rows"):
            kind.prepare(examples + test_examples, kind.settings(config.model))
        release_heap()
    test_ds = None
    if test_examples and inputs.tokenizer is not None:  # tfidf runs read the examples themselves
        test_ds, test_stats = inputs.features(test_examples)
        note = window_note(test_stats, "test data", config.train.max_length)
        if note:
            log(f"test: {note}")
            test.ledger.note(note)  # in result.json's ledger summary

    t = config.train
    splits = split_rows(examples, t.split, t.validation, t.holdout_fraction, t.folds, config.seed)
    if only_folds is not None and not set(only_folds) <= set(range(len(splits))):
        raise PipelineError(
            f"fold {max(only_folds)} does not exist: the config makes {len(splits)} fold(s), numbered from 0"
        )
    oof = np.full((len(examples), len(train.label_set)), np.nan)
    test_probs, folds = [], {}
    for k, split in enumerate(splits):
        if only_folds is not None and k not in only_folds:
            continue
        left_out = split.left_out(len(examples))
        log(
            f"fold {k + 1}/{len(splits)} ({t.split} split): {len(split.train):,} train rows, "
            f"{len(split.val):,} validation rows" + (f", {left_out:,} rows left out of both" if left_out else "")
        )
        set_seed(model_seed(config))  # the model's initial weights must not depend on what ran before in this process
        fold = train_fold(
            k,
            run_dir / f"fold{k}",
            [examples[i] for i in split.train],
            [examples[i] for i in split.val],
            test_examples,
            test_ds,
            inputs,
            log,
        )
        fold.info["rows"] = {"train": len(split.train), "validation": len(split.val), "left_out": left_out}
        if fold.val_probs is not None:
            oof[split.val] = fold.val_probs
            log(f"fold {k + 1}: " + ", ".join(f"{m} {v:.2f}" for m, v in fold.info["metrics"].items()))
        if fold.test_probs is not None:
            test_probs.append(fold.test_probs)
        folds[f"fold{k}"] = fold.info
    if only_folds is not None:
        return run_dir
    refit = t.refit == "always" or (t.refit == "auto" and kind is not None)
    if refit and test_examples and any(len(split.val) for split in splits):
        log(f"refit: every row ({len(examples):,}) trains the model that predicts the test")
        state.wait_for_everyone()  # rank 0 has saved the last fold, which a warm-started refit reads
        set_seed(model_seed(config))
        whole = train_fold(len(splits), run_dir / REFIT, examples, [], test_examples, test_ds, inputs, log)
        test_probs, folds[REFIT] = [whole.test_probs], whole.info
    if not main:
        return run_dir
    write_results(config, run_dir, submissions_dir, train, test, splits[0], oof, test_probs, folds, started, log)
    return run_dir


def prepare_run(
    config: Config,
    train: LoadedData,
    test: LoadedData | None,
    run_dir: Path,
    log,
    cache: Path,
    callbacks: tuple,
    bars: StageBars | None = None,
) -> RunInputs:
    """The tokenizer (with the format's marker tokens, saved in the run folder) and the encoder's source (TAPT);
    neither for the classical kinds (tfidf, prior); `bars` shows every stage, each fold's training and prediction
    included."""
    callbacks = (*callbacks, *([bars] if bars else []))
    if config.model.kind in CLASSICAL:
        return RunInputs(config, None, train.label_set, None, callbacks, cache)
    state = distributed()
    examples = train.examples + (test.examples if test else [])
    sentences = task_sentences(config, train, test)
    tokenizer, source = prepare_backbone(
        config, sentences, log, cache, saved=run_dir / "tokenizer", bars=bars, examples=examples
    )
    state.wait_for_everyone()  # every rank has read the run's tokenizer before rank 0 writes it
    prepare_tokenizer(tokenizer, config.markers, sorted({e.type for ex in examples for e in (ex.subject, ex.object)}))
    if state.is_main_process:
        with atomic_dir(run_dir / "tokenizer") as tmp:
            tokenizer.save_pretrained(tmp)
    log(f"features: {config.markers.format} markers, max {config.train.max_length} tokens")
    return RunInputs(config, tokenizer, train.label_set, source, callbacks, cache)


def write_results(
    config: Config,
    run_dir: Path,
    submissions_dir: Path,
    train: LoadedData,
    test: LoadedData | None,
    first: Fold,
    oof: np.ndarray,
    test_probs: list[np.ndarray],
    folds: dict,
    started: float,
    log,
) -> None:
    """Out-of-fold metrics (raw, and reweighted to the test's type pairs and sources), reports, the shift table
    (the first fold's training and validation rows against the test's), the submission (fold models' test
    probabilities averaged, or the `train.refit` model's alone; prior-corrected with `train.prior_shift`), and
    `result.json`, written last: a run folder with result.json is finished. Then the HTML report and the runs'
    index."""
    label_set, examples = train.label_set, train.examples
    test_examples = test.examples if test else []
    labels = [ex.label for ex in examples]
    result = {
        "run_id": run_dir.name,
        "name": config.name,
        "seed": config.seed,
        "data_files": data_files(config),
        "train_fingerprint": train.fingerprint,
        "test_fingerprint": test.fingerprint if test else None,
    }
    predicted = ~np.isnan(oof[:, 0])
    gold = np.array(label_set.ids(labels))[predicted] if predicted.any() else None
    if predicted.any():
        result["metrics"] = compute_metrics(gold, oof[predicted])
        if test_examples:
            weights = weights_like_test([ex for ex, p in zip(examples, predicted) if p], test_examples)
            result["metrics_reweighted"] = compute_metrics(gold, oof[predicted], weights)
        write_json(run_dir / "per_class.json", {"report": per_class_report(gold, oof[predicted], label_set)})
        np.save(run_dir / "oof_probs.npy", oof, allow_pickle=False)
        write_json(run_dir / "oof_ids.json", {"ids": [ex.id for ex in examples], "labels": labels})
        write_oof_examples(run_dir / "oof_examples.jsonl", examples, predicted)
        result["reports"] = [path.name for path in write_reports(run_dir)]
    mean = None
    if test_probs:
        mean = np.mean(test_probs, axis=0)
        mean = mean / mean.sum(axis=1, keepdims=True)
        prior = np.bincount(label_set.ids(labels), minlength=len(label_set)) / len(labels)
        reference = Reference.from_validation(
            prior, oof[predicted], gold, config.train.calibration, config.train.decision
        )
        write_json(run_dir / "prior.json", reference.to_dict())  # for the run's Predictor
        if (config.train.calibration, config.train.decision) != ("none", "argmax"):
            decided = cross_fitted_decision(oof[predicted], gold, config.train.calibration, config.train.decision)
            result["metrics_decided"] = compute_metrics(gold, decided)  # each half fitted on the other
        mean, estimated = reference.shift(mean, config.train.prior_shift)
        result["test_prior"] = {
            "prior_shift": config.train.prior_shift,
            "no_relation_train": float(prior[0]),
            "no_relation_estimated": float(estimated[0]),
            "no_relation_predicted": float((mean.argmax(axis=1) == 0).mean()),
            "temperature": reference.calibration.temperature,
            "no_relation_scale": reference.scale,
        }
        log(
            f"test: {100 * result['test_prior']['no_relation_predicted']:.1f}% predicted no_relation "
            f"(training rows {100 * prior[0]:.1f}%, estimated for the test {100 * estimated[0]:.1f}%)"
        )
        ids, full = with_quarantined_rows(test, mean, log)
        np.save(run_dir / "test_probs.npy", full, allow_pickle=False)
        submission = write_submission(submissions_dir / f"{run_dir.name}.csv", ids, full, label_set)
        problems = validate_submission(submission, ids, label_set)
        if problems:
            raise PipelineError(f"the written submission failed validation: {problems[0]}")
        result["submission"] = str(submission)
        scored = labelled_test_metrics(test.test_gold, ids, full, label_set)
        if scored:
            result["test_metrics"] = scored
            log(
                f"test: scored on its own {scored['rows']:,} labels: micro-F1 {scored['micro_f1']:.2f}, AUPRC {scored['auprc']:.2f}"
            )
    tables = shift_tables(
        [examples[i] for i in first.train], [examples[i] for i in first.val], test_examples, mean, label_set
    )
    write_json(run_dir / "shift.json", {"tables": tables})
    write_metrics_log(run_dir / "metrics.jsonl", folds)
    result.update(
        ledgers={"train": train.ledger.summary(), "test": test.ledger.summary() if test else None},
        folds=folds,
        environment=environment(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        seconds=round(time.time() - started, 1),
    )
    write_json(run_dir / "result.json", result)
    log(f"report: {write_report(run_dir)}")


def run_members(config: Config, run_dir: Path, submissions_dir: Path = Path("submissions"), log=print) -> Path | None:
    """`config.ensemble`: each member config trained on the run's data, seed and split into a sibling run folder
    `<run>-<member name>` (one with result.json is reused), then all combined by `run_ensemble` into one more
    run folder and submission. None without members."""
    if not config.ensemble.members:
        return None
    runs = [run_dir]
    split = {
        f"train.{key}": getattr(config.train, key) for key in ("validation", "split", "holdout_fraction", "folds")
    }
    for path in config.ensemble.members:
        member = with_values(load_config(path), {"seed": config.seed, "data": asdict(config.data), **split})
        member_dir = run_dir.parent / f"{run_dir.name}-{member.name}"
        if not (member_dir / "result.json").exists():
            log(f"ensemble member {path}: training into {member_dir}")
            run_pipeline(member, member_dir, submissions_dir, log=log)
        runs.append(member_dir)
    e = config.ensemble
    log(f"ensemble: {len(runs)} runs, {e.method} weights, {e.pool} pool, decision {e.decision}")
    return run_ensemble(
        runs,
        e.method,
        runs_dir=run_dir.parent,
        submissions_dir=submissions_dir,
        log=log,
        pool=e.pool,
        calibration=e.calibration,
        prior_shift=e.prior_shift,
        decision=e.decision,
    )


def write_oof_examples(path: Path, examples: list[Example], validated: np.ndarray) -> None:
    """The validated rows' sentences and entity spans (`row`: the position in `oof_probs.npy`), one JSON line
    each, for the report's misclassified list."""
    with atomic_write(path) as fh:
        for row in np.flatnonzero(validated):
            ex = examples[row]
            record = {"row": int(row), "id": ex.id, "sentence": ex.sentence, "subject": ex.subject.to_dict()}
            fh.write(json.dumps({**record, "object": ex.object.to_dict()}, ensure_ascii=False) + "\n")


def run_tapt_stage(
    config: Config, run_dir: Path | None = None, log=print, cache: Path = CACHE, bars: StageBars | None = None
) -> Path:
    """`make tapt`: masked-LM pretraining alone, into `run_dir/model` (shared with the TAPT cache).

    A training config loads the result with `model.backbone.name: <run_dir>/model` and `tapt.enabled: false`.
    """
    started = time.time()
    run_dir = run_dir or Path("runs") / new_run_id(f"{config.name}-tapt")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = with_values(config, {"tapt.enabled": True})  # the caller's config stays as it was
    with atomic_write(run_dir / "config.yaml") as fh:
        fh.write(to_yaml(config))
    train, test = load_inputs(config)
    examples = train.examples + (test.examples if test else [])
    sentences = task_sentences(config, train, test)
    _, source = prepare_backbone(config, sentences, log, cache, bars=bars, examples=examples)
    shutil.copytree(source, run_dir / "model", dirs_exist_ok=True)
    tapt_log = read_json(run_dir / "model" / "tapt_log.json")
    result = {
        "run_id": run_dir.name,
        "train_fingerprint": train.fingerprint,
        "test_fingerprint": test.fingerprint if test else None,
        "tapt": {k: tapt_log[k] for k in ("steps", "sentences", "seconds")}
        | {"final_loss": tapt_log["loss"][-1]["loss"] if tapt_log["loss"] else None},
        "model": str(run_dir / "model"),
        "environment": environment(),
        "seconds": round(time.time() - started, 1),
    }
    write_json(run_dir / "result.json", result)
    return run_dir
