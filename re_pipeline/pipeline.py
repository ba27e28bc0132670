"""The main job (`make train`): load -> clean -> tokenizer -> (TAPT) -> folds -> predict -> submission.

Writes `runs/<run_id>/` (resolved config, data fingerprints, ledgers, metrics, out-of-fold
and test probabilities, models) and `submissions/<run_id>.csv` (validated).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .config import Config, to_yaml, with_values
from .data.augment import augment
from .data.features import build_features, prepare_tokenizer, token_lengths
from .data.load import LoadedData, load_configured
from .errors import PipelineError
from .hf_trainer import resume_training
from .io_utils import atomic_dir, atomic_write
from .metrics import compute_metrics, per_class_report
from .models.backbone import build_encoder, default_tokenizer, load_encoder, load_tokenizer
from .models.peft import new_token_ids, trainable_parameters
from .models.store import save_relation_model
from .reports import write_reports
from .runs import data_files, environment, new_run_id, write_metrics_log
from .submission import validate_submission, write_submission
from .train import (
    RelationCollator,
    add_pair_column,
    build_model,
    curriculum_order,
    last_checkpoint,
    make_trainer,
    predict_probs,
    split_indices,
    write_json,
)

CACHE = Path(".cache")  # trained tokenizers and TAPT checkpoints, keyed by their inputs


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def distributed():
    """This process's `accelerate` state; under torchrun the first call starts the process group (gloo on CPU)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def load_inputs(config: Config) -> tuple[LoadedData, LoadedData | None]:
    train = load_configured(config.data.train, config)
    if not train.examples or all(ex.label is None for ex in train.examples):
        raise PipelineError(f"{config.data.train}: no labelled rows to train on")
    test = None
    if config.data.test:
        test = load_configured(config.data.test, config, train.label_set)
    return train, test


def task_sentences(train: LoadedData, test: LoadedData | None) -> list[str]:
    """The unique train and test sentences (the competition allows the unlabelled test text)."""
    return sorted({ex.sentence for ex in train.examples + (test.examples if test else [])})


def prepare_backbone(
    config: Config, sentences: list[str], log, cache: Path = CACHE, saved: Path | None = None
) -> tuple[object, str | None]:
    """The tokenizer (the run's `saved` one when resuming) and where the encoder comes from (None: a fresh default)."""
    backbone = config.model.backbone
    with distributed().main_process_first():  # rank 0 trains and caches a tokenizer; the other ranks then read it
        if saved is not None and (saved / "tokenizer.json").exists():
            tokenizer, source = load_tokenizer(str(saved)), backbone.name
        elif backbone.name:
            tokenizer, source = load_tokenizer(backbone.name), backbone.name
        else:
            tok_dir = cache / "tokenizers" / _digest(sorted(sentences), backbone.vocab_size)
            log(f"tokenizer: {'cached' if (tok_dir / 'tokenizer.json').exists() else 'training'} ({tok_dir})")
            if not (tok_dir / "tokenizer.json").exists():
                with atomic_dir(tok_dir) as tmp:
                    default_tokenizer(sentences, backbone, tmp)
            tokenizer, source = load_tokenizer(str(tok_dir)), None
    if config.tapt.enabled:
        from .tapt import run_tapt

        vocab = sorted(tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False).items())
        tapt_dir = cache / "tapt" / _digest(sorted(sentences), asdict(backbone), asdict(config.tapt), vocab)
        if (tapt_dir / "tapt_log.json").exists():  # written last: the checkpoint is complete
            log(f"TAPT: reusing {tapt_dir}")
        else:
            log(f"TAPT: {config.tapt.total_steps(len(sentences))} masked-LM steps on {len(sentences):,} sentences")
            with atomic_dir(tapt_dir) as tmp:  # every rank trains (data parallel); the first to finish publishes
                run_tapt(sentences, tokenizer, backbone, config.tapt, tmp)
        source = str(tapt_dir)
    return tokenizer, source


def train_fold(k: int, fold_dir: Path, fold_train, fold_val, test_ds, ctx: dict, config: Config, log) -> dict:
    """Train one fold (resuming from its last checkpoint if there is one); save and return its outputs."""
    done = fold_dir / "fold.json"
    if done.exists():
        log(f"fold {k + 1}: already finished, outputs reused")
        return {
            **json.loads(done.read_text(encoding="utf-8")),
            "val_probs": _load(fold_dir / "val_probs.npy"),
            "test_probs": _load(fold_dir / "test_probs.npy"),
        }
    tokenizer, label_set = ctx["tokenizer"], ctx["label_set"]
    fold_train, aug_summary = augment(fold_train, config.augment)
    train_ds, stats = build_features(fold_train, **ctx["features"])
    val_ds = build_features(fold_val, **ctx["features"])[0] if fold_val else None
    source, peft = ctx["source"], config.model.peft
    if (
        peft.enabled and source is None
    ):  # PEFT fold models keep only their trained parts: the fresh base goes on disk, once per run
        base = fold_dir.parent / "base_encoder"
        with distributed().main_process_first():
            if not (base / "model.safetensors").exists():
                with atomic_dir(base) as tmp:
                    build_encoder(config.model.backbone, len(tokenizer), tokenizer.pad_token_id).save_pretrained(tmp)
        source = str(base)
    encoder = (
        load_encoder(source, len(tokenizer))
        if source
        else build_encoder(config.model.backbone, len(tokenizer), tokenizer.pad_token_id)
    )
    model, pair_names = build_model(encoder, config.model, label_set, fold_train, new_token_ids(tokenizer))
    count, percent = trainable_parameters(model)
    if peft.enabled:
        log(f"fold {k + 1}: PEFT {peft.method}: {count:,} trainable parameters ({percent:.2f}% of the model)")
    train_ds = add_pair_column(train_ds, pair_names)
    if config.train.curriculum == "length":
        train_ds = train_ds.select(curriculum_order(token_lengths(train_ds), round(config.train.epochs), config.seed))
    val_ds = add_pair_column(val_ds, pair_names) if val_ds is not None else None
    test_ds = add_pair_column(test_ds, pair_names) if test_ds is not None else None
    pad_to = None
    if config.train.pad_to_dataset_max:
        pad_to = max(max(token_lengths(ds)) for ds in (train_ds, val_ds, test_ds) if ds is not None)
    collator = RelationCollator(tokenizer.pad_token_id, pad_to)
    trainer = make_trainer(
        model,
        train_ds,
        val_ds,
        collator,
        config.train,
        fold_dir / "checkpoints",
        config.seed,
        ctx.get("callbacks", ()),
    )
    checkpoint = last_checkpoint(fold_dir / "checkpoints")
    if checkpoint:
        log(f"fold {k + 1}: resuming from {checkpoint}")
    log(f"fold {k + 1}: training")
    resume_training(trainer, checkpoint)
    out = {
        "augment": aug_summary,
        "features": stats,
        "trainable": {"count": count, "percent": percent},
        "log_history": trainer.state.log_history,
        "metrics": None,
    }
    log(f"fold {k + 1}: predicting")
    out["val_probs"] = predict_probs(trainer, val_ds) if val_ds is not None else None
    out["test_probs"] = predict_probs(trainer, test_ds) if test_ds is not None else None
    if out["val_probs"] is not None:
        out["metrics"] = compute_metrics(np.array(label_set.ids(ex.label for ex in fold_val)), out["val_probs"])
    if not distributed().is_main_process:
        return out
    save_relation_model(model, tokenizer, label_set, pair_names, fold_dir / "model", base=source)
    for name in ("val_probs", "test_probs"):
        if out[name] is not None:
            np.save(fold_dir / f"{name}.npy", out[name], allow_pickle=False)
    write_json(done, {k2: v for k2, v in out.items() if not k2.endswith("_probs")})
    return out


def _load(path: Path):
    return np.load(path, allow_pickle=False) if path.exists() else None


def run_pipeline(
    config: Config,
    run_dir: Path | None = None,
    submissions_dir: Path = Path("submissions"),
    log=print,
    cache: Path = CACHE,
    callbacks: tuple = (),
    only_folds: list[int] | None = None,
) -> Path:
    """Run a whole experiment into `run_dir` (new under runs/ when None; an existing one is resumed).

    Under torchrun every rank trains (data parallel); only rank 0 writes the run folder and the submission.
    `callbacks`: extra `TrainerCallback`s for every fold. `only_folds`: train only these folds (by index)
    and stop before the results; a later call without it reuses them (`re-pipeline jobs --folds`).
    """
    from accelerate.utils import broadcast_object_list
    from transformers import set_seed

    started = time.time()
    state = distributed()
    main = state.is_main_process
    log = log if main else (lambda message: None)
    run_dir = Path(
        broadcast_object_list([str(run_dir or Path("runs") / new_run_id(config.name))])[0]
    )  # one run id on all ranks
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / "config.yaml") as fh:
            fh.write(to_yaml(config))
    train, test = load_inputs(config)
    files = data_files(config)
    label_set = train.label_set
    if main:
        for name, loaded in (("train", train), ("test", test)):
            if loaded is not None:
                loaded.ledger.write(run_dir / f"{name}.audit.csv", run_dir / f"{name}.quarantine.csv")
        write_json(run_dir / "labels.json", label_set.to_dict())
    examples = train.examples
    test_examples = test.examples if test else []
    tokenizer, source = prepare_backbone(config, task_sentences(train, test), log, cache, saved=run_dir / "tokenizer")
    state.wait_for_everyone()  # every rank has read the run's tokenizer before rank 0 writes it
    types = sorted({e.type for ex in examples + test_examples for e in (ex.subject, ex.object)})
    prepare_tokenizer(tokenizer, config.markers, types)
    if main:
        with atomic_dir(run_dir / "tokenizer") as tmp:
            tokenizer.save_pretrained(tmp)
    log(f"features: {config.markers.format} markers, max {config.train.max_length} tokens")
    features = dict(
        tokenizer=tokenizer,
        markers=config.markers,
        label_set=label_set,
        max_length=config.train.max_length,
        num_proc=config.train.num_proc,
    )
    ctx = {
        "tokenizer": tokenizer,
        "label_set": label_set,
        "source": source,
        "features": features,
        "callbacks": callbacks,
    }
    test_ds = build_features(test_examples, **features)[0] if test_examples else None

    labels = [ex.label for ex in examples]
    splits = split_indices(labels, [ex.parent_id or ex.id for ex in examples], config.train, config.seed)
    oof = np.full((len(examples), len(label_set)), np.nan)
    test_probs, folds = [], {}
    if only_folds is not None and not set(only_folds) <= set(range(len(splits))):
        raise PipelineError(
            f"fold {max(only_folds)} does not exist: the config makes {len(splits)} fold(s), numbered from 0"
        )
    for k, (train_idx, val_idx) in enumerate(splits):
        if only_folds is not None and k not in only_folds:
            continue
        log(f"fold {k + 1}/{len(splits)}: {len(train_idx):,} train rows, {len(val_idx):,} validation rows")
        set_seed(config.seed)  # the model's initial weights must not depend on what ran before in this process
        fold = train_fold(
            k,
            run_dir / f"fold{k}",
            [examples[i] for i in train_idx],
            [examples[i] for i in val_idx],
            test_ds,
            ctx,
            config,
            log,
        )
        if fold["val_probs"] is not None:
            oof[val_idx] = fold["val_probs"]
            log(f"fold {k + 1}: " + ", ".join(f"{m} {v:.2f}" for m, v in fold["metrics"].items()))
        if fold["test_probs"] is not None:
            test_probs.append(fold["test_probs"])
        folds[f"fold{k}"] = {key: v for key, v in fold.items() if not key.endswith("_probs")}
    if not main or only_folds is not None:
        return run_dir

    result = {
        "run_id": run_dir.name,
        "name": config.name,
        "seed": config.seed,
        "data_files": files,
        "train_fingerprint": train.fingerprint,
        "test_fingerprint": test.fingerprint if test else None,
    }
    predicted = ~np.isnan(oof[:, 0])
    if predicted.any():
        gold = np.array(label_set.ids(labels))[predicted]
        result["metrics"] = compute_metrics(gold, oof[predicted])
        write_json(run_dir / "per_class.json", {"report": per_class_report(gold, oof[predicted], label_set)})
        np.save(run_dir / "oof_probs.npy", oof, allow_pickle=False)
        write_json(run_dir / "oof_ids.json", {"ids": [ex.id for ex in examples], "labels": labels})
        result["reports"] = [path.name for path in write_reports(run_dir)]
    if test_probs:
        mean = np.mean(test_probs, axis=0)
        mean = mean / mean.sum(axis=1, keepdims=True)
        ids, mean = with_quarantined_rows(test, mean, log)
        np.save(run_dir / "test_probs.npy", mean, allow_pickle=False)
        submission = write_submission(submissions_dir / f"{run_dir.name}.csv", ids, mean, label_set)
        problems = validate_submission(submission, ids, label_set)
        if problems:
            raise PipelineError(f"the written submission failed validation: {problems[0]}")
        result["submission"] = str(submission)
    write_metrics_log(run_dir / "metrics.jsonl", folds)
    result.update(
        ledgers={"train": train.ledger.summary(), "test": test.ledger.summary() if test else None},
        folds=folds,
        environment=environment(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        seconds=round(time.time() - started, 1),
    )
    write_json(run_dir / "result.json", result)  # last: a run folder with result.json is finished
    return run_dir


def run_tapt_stage(config: Config, run_dir: Path | None = None, log=print, cache: Path = CACHE) -> Path:
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
    _, source = prepare_backbone(config, task_sentences(train, test), log, cache)
    shutil.copytree(source, run_dir / "model", dirs_exist_ok=True)
    tapt_log = json.loads((run_dir / "model" / "tapt_log.json").read_text(encoding="utf-8"))
    result = {
        "run_id": run_dir.name,
        "train_fingerprint": train.fingerprint,
        "test_fingerprint": test.fingerprint if test else None,
        "tapt": {key: tapt_log[key] for key in ("steps", "sentences", "seconds")}
        | {"final_loss": tapt_log["loss"][-1]["loss"] if tapt_log["loss"] else None},
        "model": str(run_dir / "model"),
        "environment": environment(),
        "seconds": round(time.time() - started, 1),
    }
    write_json(run_dir / "result.json", result)
    return run_dir


def with_quarantined_rows(test: LoadedData, probs: np.ndarray, log) -> tuple[list[str], np.ndarray]:
    """Every test row gets a prediction: quarantined rows get no_relation (probability 1), in file order."""
    rows = [(ex.row, ex.id, p) for ex, p in zip(test.examples, probs)]
    fallback = np.eye(probs.shape[1])[0]
    rows += [(r.row, r.id, fallback) for r in test.ledger.removals]
    if test.ledger.removals:
        log(
            f"warning: {len(test.ledger.removals)} quarantined test rows are submitted as no_relation (see test.quarantine.csv)"
        )
    rows.sort(key=lambda r: r[0])
    return [r[1] for r in rows], np.stack([r[2] for r in rows])
