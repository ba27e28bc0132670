"""Training samples/s and inference sentences/s of the default model on CPU:
dynamic padding with length grouping versus padding every batch to the longest row of the
dataset (as the official baseline did), measured side by side in one run. Inference reads rows
shortest first (as `predict_probs` and `Predictor` do) versus in file order padded to the max.

Usage: python bench/train_speed_bench.py [train.csv]   (uses the cached 16k tokenizer of
bench/features_bench.py, or trains it)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from re_pipeline.config import Config
from re_pipeline.data.features import build_features, prepare_tokenizer, token_lengths
from re_pipeline.data.load import load_data
from re_pipeline.models.backbone import build_encoder, default_tokenizer
from re_pipeline.train import EpochLengthSampler, RelationCollator, add_pair_column, build_model, length_order

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-re"
ROWS, STEPS, BATCH, EVAL_ROWS, EVAL_BATCH = 4096, 30, 32, 2048, 128


def batches(ds, order, collator, size):
    for start in range(0, len(order), size):
        yield collator([ds[int(i)] for i in order[start : start + size]])


def main(train_path: Path) -> dict:
    torch.manual_seed(0)
    cfg = Config()
    loaded = load_data(train_path)
    sentences = sorted({ex.sentence for p in (train_path, train_path.parent / "test_data.csv") for ex in load_data(p).examples})
    tokenizer = default_tokenizer(sentences, cfg.model.backbone, Path(".cache/bench-tokenizer-16k"))
    prepare_tokenizer(tokenizer, cfg.markers, ["PER", "ORG", "LOC", "DAT", "POH", "NOH"])
    rng = np.random.default_rng(0)
    examples = [loaded.examples[i] for i in rng.choice(len(loaded.examples), ROWS, replace=False)]
    full, _ = build_features(loaded.examples, tokenizer, cfg.markers, loaded.label_set, 256)
    dataset_max = max(token_lengths(full))
    ds, _ = build_features(examples, tokenizer, cfg.markers, loaded.label_set, 256)
    model, pairs = build_model(build_encoder(cfg.model.backbone, len(tokenizer)), cfg.model, loaded.label_set, examples)
    ds = add_pair_column(ds, pairs)
    lengths = token_lengths(ds)
    out = {"dataset_max_tokens": dataset_max, "threads": torch.get_num_threads()}
    eval_ds = ds.select(range(EVAL_ROWS))
    for name, pad_to, order, eval_order in (
        ("dynamic + length grouping", None, list(EpochLengthSampler(BATCH, lengths, 0)), length_order(eval_ds).tolist()),
        ("pad to dataset max", dataset_max, rng.permutation(len(ds)).tolist(), list(range(EVAL_ROWS))),
    ):
        collator = RelationCollator(tokenizer.pad_token_id, pad_to)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()
        times = []
        for step, batch in enumerate(batches(ds, order[: (STEPS + 1) * BATCH], collator, BATCH)):
            start = time.perf_counter()
            model(**batch)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad()
            if step:  # the first step warms up
                times.append(time.perf_counter() - start)
        model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches(ds, eval_order, collator, EVAL_BATCH):
                batch.pop("labels")
                model(**batch)
        infer = time.perf_counter() - start
        out[name] = {"train_samples_per_s": round(BATCH / statistics.median(times), 1), "inference_sentences_per_s": round(EVAL_ROWS / infer, 1)}
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED / "train.csv"), indent=1))
