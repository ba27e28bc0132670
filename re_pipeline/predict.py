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
from .errors import PipelineError
from .metrics import softmax
from .models.peft import merge_for_inference
from .models.store import load_relation_model
from .submission import validate_submission, with_quarantined_rows, write_submission


class Predictor:
    def __init__(
        self, models: list, tokenizer, label_set, pairs: list[list[str]], config: Config, batch_size: int = 64
    ):
        """`pairs[i]`: the type-pair vocabulary fold model i was trained with."""
        self.models, self.tokenizer, self.label_set, self.pairs, self.config = (
            models,
            tokenizer,
            label_set,
            pairs,
            config,
        )
        self.batch_size = batch_size
        self.collator = RelationCollator(tokenizer.pad_token_id)

    @classmethod
    def from_run(cls, run_dir: str | Path, batch_size: int = 64) -> Predictor:
        run_dir = Path(run_dir)
        model_dirs = sorted(run_dir.glob("fold*/model"))
        if not model_dirs:
            raise PipelineError(f"{run_dir}: no trained model found (expected fold*/model folders)")
        loaded = [load_relation_model(d) for d in model_dirs]
        _, tokenizer, label_set, _ = loaded[0]
        return cls(
            [merge_for_inference(m[0]) for m in loaded],
            tokenizer,
            label_set,
            [m[3] for m in loaded],
            load_config(run_dir / "config.yaml"),
            batch_size,
        )

    def predict_probs(self, examples: list[Example], log=None) -> np.ndarray:
        """Softmax probabilities [n, labels], averaged over the run's fold models. `log` gets a line for rows
        windowed around each entity and, with type-pair heads, for rows the shared head answers."""
        log = log or (lambda message: None)
        max_length = self.config.train.max_length
        dataset, stats = build_features(examples, self.tokenizer, self.config.markers, None, max_length)
        notes = [window_note(stats, "data", max_length)]
        order = length_order(dataset)
        dataset = dataset.select(order)
        total = np.zeros((len(examples), len(self.label_set)))
        for k, (model, pairs) in enumerate(zip(self.models, self.pairs)):
            paired = add_pair_column(dataset, pairs)
            if self.config.model.type_pair_heads:
                notes.append(shared_head_note(paired, f"data (model {k + 1})"))
            logits = []
            starts = range(0, len(paired), self.batch_size)
            with torch.inference_mode():
                for start in tqdm(
                    starts, desc=f"predicting (model {k + 1}/{len(self.models)})", disable=len(starts) < 10
                ):
                    batch = self.collator(list(paired.select(range(start, min(start + self.batch_size, len(paired))))))
                    batch.pop("labels", None)
                    logits.append(model(**batch)["logits"].float().numpy())
            total[order] += softmax(np.concatenate(logits).astype(np.float64))
        for note in filter(None, notes):
            log(note)
        return total / len(self.models)

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
    ids, probs = with_quarantined_rows(test, predictor.predict_probs(test.examples, log), log)
    path = write_submission(out, ids, probs, predictor.label_set)
    problems = validate_submission(path, ids, predictor.label_set)
    if problems:
        raise PipelineError(f"the written submission failed validation: {problems[0]}")
    return path
