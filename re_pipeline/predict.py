"""Inference from a run folder: a one-call API and batch prediction to a submission.

    predictor = Predictor.from_run("runs/20261121-120000-default")
    predictor("이순신은 조선 중기의 무신이다.", subject=(0, 2, "PER"), object=(11, 12, "POH"))
    # -> ("per:title", 0.93)

The fold models of a run are averaged, as for the run's own submission.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import Config, load_config
from .core.device import autocast, resolve_precision
from .core.errors import PipelineError
from .core.io_utils import read_json
from .core.labels import LabelSet
from .data.features import (
    RelationCollator,
    add_pair_column,
    build_features,
    length_order,
    shared_head_note,
    window_note,
)
from .data.load import load_configured
from .data.schema import Entity, Example
from .evaluation.metrics import softmax
from .evaluation.prior import Reference
from .models.classical import CLASSICAL
from .models.peft import merge_for_inference
from .models.store import load_relation_model
from .submit.submission import validate_submission, with_quarantined_rows, write_submission
from .training.train import REFIT


def model_dirs(run_dir: Path, folder: str) -> list[Path]:
    """The run's models that predict: the `train.refit` model alone when there is one, else every fold's."""
    refit = run_dir / REFIT / folder
    found = [refit] if refit.exists() else sorted(run_dir.glob(f"fold*/{folder}"))
    if not found:
        raise PipelineError(f"{run_dir}: no trained model found (expected fold*/{folder} or {REFIT}/{folder})")
    return found


class TransformerFolds:
    """The fold models of a `model.kind: transformer` run: probabilities averaged over them."""

    def __init__(self, run_dir: Path, config: Config, batch_size: int):
        loaded = [load_relation_model(d) for d in model_dirs(run_dir, "model")]
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        # Merged LoRA weights round differently in bf16: merge only in fp32, where it changes nothing.
        merge = resolve_precision(config.train.precision) == "fp32"
        self.models = [(merge_for_inference(m[0]) if merge else m[0]).to(self.device) for m in loaded]
        self.pairs = [m[3] for m in loaded]  # the type-pair vocabulary each fold model was trained with
        self.tokenizer, self.config, self.batch_size = loaded[0][1], config, batch_size
        self.collator = RelationCollator(self.tokenizer.pad_token_id)

    def __call__(self, examples: list[Example], num_labels: int, log) -> np.ndarray:
        """Softmax probabilities [n, labels], averaged over the fold models. `log` gets a line for rows windowed
        around each entity and, with type-pair heads, for rows the shared head answers."""
        max_length = self.config.train.max_length
        dataset, stats = build_features(examples, self.tokenizer, self.config.markers, None, max_length)
        notes = [window_note(stats, "data", max_length)]
        order = length_order(dataset)
        dataset = dataset.select(order)
        total = np.zeros((len(examples), num_labels))
        for k, (model, pairs) in enumerate(zip(self.models, self.pairs)):
            paired = add_pair_column(dataset, pairs)
            if self.config.model.type_pair_heads:
                notes.append(shared_head_note(paired, f"data (model {k + 1})"))
            logits = []
            starts = range(0, len(paired), self.batch_size)
            with torch.inference_mode(), autocast(self.config.train.precision, self.device):
                for start in tqdm(
                    starts, desc=f"predicting (model {k + 1}/{len(self.models)})", disable=len(starts) < 10
                ):
                    batch = self.collator(list(paired.select(range(start, min(start + self.batch_size, len(paired))))))
                    batch.pop("labels", None)
                    batch = {key: value.to(self.device) for key, value in batch.items()}
                    logits.append(model(**batch)["logits"].float().cpu().numpy())
            total[order] += softmax(np.concatenate(logits).astype(np.float64))
        for note in filter(None, notes):
            log(note)
        return total / len(self.models)


class ClassicalFolds:
    """The fold models of a classical run (`model.kind: tfidf | prior`): probabilities averaged over them."""

    def __init__(self, run_dir: Path, config: Config, batch_size: int):
        self.kind, self.config = CLASSICAL[config.model.kind], config
        self.models = [self.kind.load(d) for d in model_dirs(run_dir, self.kind.folder)]

    def __call__(self, examples: list[Example], num_labels: int, log) -> np.ndarray:
        inputs = self.kind.inputs(examples, self.config.markers)
        return np.mean([model.predict_proba(inputs) for model in self.models], axis=0)


SCORERS = {"transformer": TransformerFolds, **dict.fromkeys(CLASSICAL, ClassicalFolds)}


class Predictor:
    """A trained run, ready to predict: its fold models averaged, and the run's test-prior correction."""

    def __init__(self, config: Config, label_set: LabelSet, folds, reference: Reference | None = None):
        self.config, self.label_set, self.folds, self.reference = config, label_set, folds, reference

    @classmethod
    def from_run(cls, run_dir: str | Path, batch_size: int | None = None) -> Predictor:
        """The run's models; `batch_size` defaults to the run's `train.eval_batch_size`, so batches (and their
        rounding in bf16) are the ones the run's own predictions had."""
        run_dir = Path(run_dir)
        config = load_config(run_dir / "config.yaml")
        label_set = LabelSet.from_dict(read_json(run_dir / "labels.json"))
        prior = run_dir / "prior.json"
        reference = Reference.from_dict(read_json(prior)) if prior.exists() else None
        folds = SCORERS[config.model.kind](run_dir, config, batch_size or config.train.eval_batch_size)
        return cls(config, label_set, folds, reference)

    def predict_probs(self, examples: list[Example], log=None) -> np.ndarray:
        """Probabilities [n, labels], averaged over the run's fold models (no test-prior correction). `log` gets
        a line for rows windowed around each entity and, with type-pair heads, for rows the shared head answers."""
        return self.folds(examples, len(self.label_set), log or (lambda message: None))

    def predict_test(self, examples: list[Example], log=None) -> np.ndarray:
        """Probabilities of a whole test file, calibrated, corrected to its estimated label prior and scaled
        by the decision as the run's own submission was (`train.calibration`, `prior_shift`, `decision`)."""
        probs = self.predict_probs(examples, log)
        if self.reference is None:
            return probs
        return self.reference.shift(probs, self.config.train.prior_shift)[0]

    def __call__(
        self, sentence: str, subject: tuple[int, int, str], object: tuple[int, int, str]
    ) -> tuple[str, float]:
        """Relation and probability for one sentence; entities as (start, end inclusive, type, any case)."""
        entities = []
        for role, (start, end, type_) in (("subject", subject), ("object", object)):
            if not (0 <= start <= end < len(sentence)):
                raise PipelineError(f"{role} span ({start}, {end}) is outside the sentence (length {len(sentence)})")
            entities.append(Entity(sentence[start : end + 1], start, end, type_.strip().upper()))
        probs = self.predict_probs([Example("0", sentence, entities[0], entities[1], None)])[0]
        best = int(np.argmax(probs))
        return self.label_set.names[best], float(probs[best])


def predict_file(run_dir: str | Path, data: str | Path, out: str | Path, log=print) -> Path:
    """Predict every row of a test file with a run's models; write and validate a submission."""
    predictor = Predictor.from_run(run_dir)
    cfg = predictor.config
    test = load_configured(data, cfg.data, cfg.clean, predictor.label_set)
    ids, probs = with_quarantined_rows(test, predictor.predict_test(test.examples, log), log)
    path = write_submission(out, ids, probs, predictor.label_set)
    problems = validate_submission(path, ids, predictor.label_set)
    if problems:
        raise PipelineError(f"the written submission failed validation: {problems[0]}")
    return path
