"""Training samples/s (and tokens/s) and inference sentences/s of the relation model: dynamic padding
with length grouping versus padding every batch to the longest row of the dataset (as the official
baseline did), measured side by side in one run. Inference reads rows shortest first (as
`predict_probs` and `Predictor` do) versus in file order padded to the max.

The model is configs/transformer.yaml's. Sizes: `default` (the offline 4 x 256 encoder), `base` and `large` (xlm-roberta-base / -large shapes,
freshly initialised: no download; the vocabulary is the offline 16k one, and embedding lookups cost
no FLOPs). On a GPU, `--bf16` trains under bf16 autocast, and the model FLOPs utilisation is reported:
6 x (non-embedding parameters) x (real tokens) + 12 x layers x width x sum(length^2) for attention,
per second, over the device's dense bf16 peak. Padding tokens count as waste, not as model FLOPs.

The GPU levers, each a flag measured against the plain path in the same process: `--fused` (fused AdamW,
one kernel per step), `--no-sync` (no host synchronisation per step: steps are timed together), `--compile`
(torch.compile with dynamic shapes, compiled before the timing), `--eval-batch` (rows per inference batch).

Usage: python bench/train_speed_bench.py [--train train.csv] [--size default|base|large] [--device cpu|cuda] [--bf16]
           [--fused] [--no-sync] [--compile] [--eval-batch 128] [--batching both|dynamic]
(uses the cached 16k tokenizer of bench/features_bench.py, or trains it)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from re_pipeline.config import load_config
from re_pipeline.data.features import (
    RelationCollator,
    add_pair_column,
    build_features,
    length_order,
    prepare_tokenizer,
    token_lengths,
)
from re_pipeline.data.load import load_data
from re_pipeline.models.backbone import BackboneConfig, build_encoder, default_tokenizer
from re_pipeline.models.relation import build_model
from re_pipeline.training.hf_trainer import EpochLengthSampler

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-re"
DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "transformer.yaml"
ROWS, STEPS, BATCH, EVAL_ROWS, EVAL_BATCH = 4096, 30, 32, 2048, 128
SIZES = {
    "default": {},
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096),
}
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s by device name


def batches(ds, order, collator, size, device):
    for start in range(0, len(order), size):
        yield {k: v.to(device) for k, v in collator([ds[int(i)] for i in order[start : start + size]]).items()}


def model_flops(batch: dict, backbone: BackboneConfig, params: int) -> float:
    """Training FLOPs of one step on the batch's real (unpadded) tokens."""
    lengths = batch["attention_mask"].sum(dim=1).double()
    return 6 * params * float(lengths.sum()) + 12 * backbone.num_layers * backbone.hidden_size * float(
        (lengths**2).sum()
    )


def peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


def main(
    train_path: Path,
    size: str = "default",
    device: str = "cpu",
    bf16: bool = False,
    steps: int = STEPS,
    fused: bool = False,
    no_sync: bool = False,
    compile: bool = False,
    eval_batch: int = EVAL_BATCH,
    batching: str = "both",
) -> dict:
    torch.manual_seed(0)
    cfg = load_config(DEFAULT)  # its markers, heads and loss; the encoder's size from SIZES
    backbone = BackboneConfig(**SIZES[size])
    loaded = load_data(train_path)
    sentences = sorted(
        {ex.sentence for p in (train_path, train_path.parent / "test_data.csv") for ex in load_data(p).examples}
    )
    tokenizer = default_tokenizer(sentences, cfg.model.backbone, Path(".cache/bench-tokenizer-16k"))
    prepare_tokenizer(tokenizer, cfg.markers, ["PER", "ORG", "LOC", "DAT", "POH", "NOH"])
    rng = np.random.default_rng(0)
    examples = [loaded.examples[i] for i in rng.choice(len(loaded.examples), ROWS, replace=False)]
    full, _ = build_features(loaded.examples, tokenizer, cfg.markers, loaded.label_set, 256)
    dataset_max = max(token_lengths(full))
    ds, _ = build_features(examples, tokenizer, cfg.markers, loaded.label_set, 256)
    encoder = build_encoder(backbone, len(tokenizer), tokenizer.pad_token_id)
    params = sum(p.numel() for name, p in encoder.named_parameters() if "embeddings" not in name)
    model, pairs = build_model(encoder, cfg.model, loaded.label_set, examples)
    model.to(device)
    ds = add_pair_column(ds, pairs)
    lengths = token_lengths(ds)
    out = {
        "size": size,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "bf16": bf16,
        "non_embedding_params": params,
        "dataset_max_tokens": dataset_max,
        "threads": torch.get_num_threads(),
        "fused_adamw": fused,
        "no_sync": no_sync,
        "compile": compile,
        "eval_batch": eval_batch,
    }
    forward = torch.compile(model, dynamic=True) if compile else model
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    peak = peak_flops(device)
    eval_ds = ds.select(range(EVAL_ROWS))
    schemes = [
        (
            "dynamic + length grouping",
            None,
            list(EpochLengthSampler(BATCH, lengths, 0)),
            length_order(eval_ds).tolist(),
        ),
        ("pad to dataset max", dataset_max, rng.permutation(len(ds)).tolist(), list(range(EVAL_ROWS))),
    ]
    warm = 3 if compile else 1  # compiling takes the first steps of several lengths
    for name, pad_to, order, eval_order in schemes[:1] if batching == "dynamic" else schemes:
        collator = RelationCollator(tokenizer.pad_token_id, pad_to)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if fused else {}))
        model.train()
        times, tokens, flops = [], [], []
        loop = list(batches(ds, order[: (steps + warm) * BATCH], collator, BATCH, device))
        for step, batch in enumerate(loop):
            if step == warm:
                sync()
                timed = time.perf_counter()
            if not no_sync:
                sync()
            start = time.perf_counter()
            with autocast:
                loss = forward(**batch)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if not no_sync:
                sync()
            if step >= warm:  # the first steps warm up
                times.append(time.perf_counter() - start)
                tokens.append(float(batch["attention_mask"].sum()))
                flops.append(model_flops(batch, backbone, params))
        sync()
        if no_sync:  # steps timed together: spread the wall time evenly
            times = [(time.perf_counter() - timed) / len(times)] * len(times)
        model.eval()
        sync()
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            for batch in batches(ds, eval_order, collator, eval_batch, device):
                batch.pop("labels")
                forward(**batch)
        sync()
        infer = time.perf_counter() - start
        step_s = statistics.median(times)
        achieved = sum(flops) / sum(times)
        out[name] = {
            "train_samples_per_s": round(BATCH / step_s, 1),
            "train_tokens_per_s": round(sum(tokens) / sum(times)),
            "inference_sentences_per_s": round(EVAL_ROWS / infer, 1),
            "model_tflops": round(achieved / 1e12, 3),
        }
        if peak:
            out[name]["mfu"] = round(achieved / peak, 4)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=SHARED / "train.csv")
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--fused", action="store_true")
    parser.add_argument("--no-sync", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--eval-batch", type=int, default=EVAL_BATCH)
    parser.add_argument("--batching", choices=("both", "dynamic"), default="both")
    args = parser.parse_args()
    result = main(
        args.train,
        args.size,
        args.device,
        args.bf16,
        args.steps,
        args.fused,
        args.no_sync,
        args.compile,
        args.eval_batch,
        args.batching,
    )
    print(json.dumps(result, indent=1))
