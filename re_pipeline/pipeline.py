"""The main job (`make train`): load -> clean -> tokenizer -> (TAPT) -> folds -> predict -> submission.

Writes `runs/<run_id>/` (resolved config, data fingerprints, ledgers, metrics, out-of-fold
and test probabilities, models) and `submissions/<run_id>.csv` (validated).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .config import Config, to_yaml
from .data.augment import augment
from .data.features import build_features, prepare_tokenizer, token_lengths
from .data.load import LoadedData, load_configured
from .errors import PipelineError
from .metrics import compute_metrics, per_class_report
from .models.backbone import build_encoder, default_tokenizer, load_encoder, load_tokenizer
from .models.store import save_relation_model
from .runs import environment, new_run_id
from .submission import validate_submission, write_submission
from .train import RelationCollator, add_pair_column, build_model, curriculum_order, make_trainer, predict_probs, split_indices, write_json

CACHE = Path(".cache")  # trained tokenizers and TAPT checkpoints, keyed by their inputs


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def load_inputs(config: Config) -> tuple[LoadedData, LoadedData | None]:
    train = load_configured(config.data.train, config)
    if not train.examples or all(ex.label is None for ex in train.examples):
        raise PipelineError(f"{config.data.train}: no labelled rows to train on")
    test = None
    if config.data.test:
        test = load_configured(config.data.test, config, train.label_set)
        labelled = sum(ex.label is not None for ex in test.examples)
        if labelled:
            test.ledger.note(f"test file carries {labelled} labels; they are ignored for prediction")
    return train, test


def prepare_backbone(config: Config, sentences: list[str], log, cache: Path = CACHE, saved: Path | None = None) -> tuple[object, str | None]:
    """The tokenizer (the run's `saved` one when resuming) and where the encoder comes from (None: a fresh default)."""
    backbone = config.model.backbone
    if saved is not None and (saved / "tokenizer.json").exists():
        tokenizer, source = load_tokenizer(str(saved)), backbone.name
    elif backbone.name:
        tokenizer, source = load_tokenizer(backbone.name), backbone.name
    else:
        tok_dir = cache / "tokenizers" / _digest(sorted(sentences), backbone.vocab_size)
        log(f"tokenizer: {'cached' if (tok_dir / 'tokenizer.json').exists() else 'training'} ({tok_dir})")
        tokenizer, source = default_tokenizer(sentences, backbone, tok_dir), None
    if config.tapt.enabled:
        from .tapt import run_tapt

        vocab = sorted(tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False).items())
        tapt_dir = cache / "tapt" / _digest(sorted(sentences), asdict(backbone), asdict(config.tapt), vocab)
        if (tapt_dir / "tapt_log.json").exists():  # written last: the checkpoint is complete
            log(f"TAPT: reusing {tapt_dir}")
        else:
            log(f"TAPT: {config.tapt.total_steps(len(sentences))} masked-LM steps on {len(sentences):,} sentences")
            run_tapt(sentences, tokenizer, backbone, config.tapt, tapt_dir)
        source = str(tapt_dir)
    return tokenizer, source


def train_fold(k: int, fold_dir: Path, fold_train, fold_val, test_ds, ctx: dict, config: Config, log) -> dict:
    """Train one fold (resuming from its last checkpoint if there is one); save and return its outputs."""
    done = fold_dir / "fold.json"
    if done.exists():
        log(f"fold {k + 1}: already finished, outputs reused")
        return {**json.loads(done.read_text(encoding="utf-8")), "val_probs": _load(fold_dir / "val_probs.npy"), "test_probs": _load(fold_dir / "test_probs.npy")}
    tokenizer, label_set = ctx["tokenizer"], ctx["label_set"]
    fold_train, aug_summary = augment(fold_train, config.augment)
    train_ds, stats = build_features(fold_train, **ctx["features"])
    val_ds = build_features(fold_val, **ctx["features"])[0] if fold_val else None
    source = ctx["source"]
    encoder = load_encoder(source, len(tokenizer)) if source else build_encoder(config.model.backbone, len(tokenizer), tokenizer.pad_token_id)
    model, pair_names = build_model(encoder, config.model, label_set, fold_train)
    train_ds = add_pair_column(train_ds, pair_names)
    if config.train.curriculum == "length":
        train_ds = train_ds.select(curriculum_order(token_lengths(train_ds), round(config.train.epochs), config.seed))
    val_ds = add_pair_column(val_ds, pair_names) if val_ds is not None else None
    test_ds = add_pair_column(test_ds, pair_names) if test_ds is not None else None
    pad_to = None
    if config.train.pad_to_dataset_max:
        pad_to = max(max(token_lengths(ds)) for ds in (train_ds, val_ds, test_ds) if ds is not None)
    trainer = make_trainer(model, train_ds, val_ds, RelationCollator(tokenizer.pad_token_id, pad_to), config.train, fold_dir / "checkpoints", config.seed)
    checkpoints = sorted((fold_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if checkpoints:
        log(f"fold {k + 1}: resuming from {checkpoints[-1]}")
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    out = {"augment": aug_summary, "features": stats, "log_history": trainer.state.log_history, "metrics": None}
    out["val_probs"] = predict_probs(trainer, val_ds) if val_ds is not None else None
    out["test_probs"] = predict_probs(trainer, test_ds) if test_ds is not None else None
    if out["val_probs"] is not None:
        out["metrics"] = compute_metrics(np.array(label_set.ids(ex.label for ex in fold_val)), out["val_probs"])
    save_relation_model(model, tokenizer, label_set, pair_names, fold_dir / "model")
    for name in ("val_probs", "test_probs"):
        if out[name] is not None:
            np.save(fold_dir / f"{name}.npy", out[name], allow_pickle=False)
    write_json(done, {k2: v for k2, v in out.items() if not k2.endswith("_probs")})
    return out


def _load(path: Path):
    return np.load(path, allow_pickle=False) if path.exists() else None


def run_pipeline(
    config: Config, run_dir: Path | None = None, submissions_dir: Path = Path("submissions"), log=print, cache: Path = CACHE
) -> Path:
    """Run a whole experiment into `run_dir` (new under runs/ when None; an existing one is resumed)."""
    started = time.time()
    run_dir = run_dir or Path("runs") / new_run_id(config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(config), encoding="utf-8")
    train, test = load_inputs(config)
    for name, loaded in (("train", train), ("test", test)):
        if loaded is not None:
            loaded.ledger.write(run_dir / f"{name}.audit.csv", run_dir / f"{name}.quarantine.csv")
    label_set = train.label_set
    write_json(run_dir / "labels.json", label_set.to_dict())
    examples = train.examples
    test_examples = test.examples if test else []
    sentences = sorted({ex.sentence for ex in examples + test_examples})
    tokenizer, source = prepare_backbone(config, sentences, log, cache, saved=run_dir / "tokenizer")
    types = sorted({e.type for ex in examples + test_examples for e in (ex.subject, ex.object)})
    prepare_tokenizer(tokenizer, config.markers, types)
    tokenizer.save_pretrained(run_dir / "tokenizer")
    features = dict(tokenizer=tokenizer, markers=config.markers, label_set=label_set, max_length=config.train.max_length, num_proc=config.train.num_proc)
    ctx = {"tokenizer": tokenizer, "label_set": label_set, "source": source, "features": features}
    test_ds = build_features(test_examples, **features)[0] if test_examples else None

    labels = [ex.label for ex in examples]
    splits = split_indices(labels, [ex.parent_id or ex.id for ex in examples], config.train, config.seed)
    oof = np.full((len(examples), len(label_set)), np.nan)
    test_probs, folds = [], {}
    for k, (train_idx, val_idx) in enumerate(splits):
        log(f"fold {k + 1}/{len(splits)}: {len(train_idx):,} train rows, {len(val_idx):,} validation rows")
        fold = train_fold(k, run_dir / f"fold{k}", [examples[i] for i in train_idx], [examples[i] for i in val_idx], test_ds, ctx, config, log)
        if fold["val_probs"] is not None:
            oof[val_idx] = fold["val_probs"]
            log(f"fold {k + 1}: " + ", ".join(f"{m} {v:.2f}" for m, v in fold["metrics"].items()))
        if fold["test_probs"] is not None:
            test_probs.append(fold["test_probs"])
        folds[f"fold{k}"] = {key: v for key, v in fold.items() if not key.endswith("_probs")}

    result = {"run_id": run_dir.name, "train_fingerprint": train.fingerprint, "test_fingerprint": test.fingerprint if test else None}
    predicted = ~np.isnan(oof[:, 0])
    if predicted.any():
        gold = np.array(label_set.ids(labels))[predicted]
        result["metrics"] = compute_metrics(gold, oof[predicted])
        write_json(run_dir / "per_class.json", {"report": per_class_report(gold, oof[predicted], label_set)})
        np.save(run_dir / "oof_probs.npy", oof, allow_pickle=False)
        write_json(run_dir / "oof_ids.json", {"ids": [ex.id for ex in examples]})
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
    result.update(
        ledgers={"train": train.ledger.summary(), "test": test.ledger.summary() if test else None},
        folds=folds,
        environment=environment(),
        seconds=round(time.time() - started, 1),
    )
    write_json(run_dir / "result.json", result)
    return run_dir


def with_quarantined_rows(test: LoadedData, probs: np.ndarray, log) -> tuple[list[str], np.ndarray]:
    """Every test row gets a prediction: quarantined rows get no_relation (probability 1), in file order."""
    rows = [(ex.row, ex.id, p) for ex, p in zip(test.examples, probs)]
    fallback = np.eye(probs.shape[1])[0]
    rows += [(r.row, r.id, fallback) for r in test.ledger.removals]
    if test.ledger.removals:
        log(f"warning: {len(test.ledger.removals)} quarantined test rows are submitted as no_relation (see test.quarantine.csv)")
    rows.sort(key=lambda r: r[0])
    return [r[1] for r in rows], np.stack([r[2] for r in rows])
