"""Where a training step of configs/e5-small.yaml spends its time, for each lever (`VARIANTS`): frozen lower
layers (`model.backbone.freeze_layers` K), encoder dropout, precision, batch size.

The model, tokenizer and rows are the pipeline's own (vocabulary trimmed, punctuation markers, type-pair heads);
for K > 0 the rows' frozen-layer output comes from a store built first (`training/frozen_cache.py`), as in a run. Each
step is timed in phases with `perf_counter` (collation, forward, backward, AdamW), and the forward and backward
passes are split by operator with `torch.profiler` (self time): matrix multiplies, attention, norms,
activations and dropout, dtype casts (autocast), the rest. Beside it: the model FLOPs of the steps
(`throughput.Throughput`'s count), achieved GFLOP/s and MFU against the matmul peak measured in this process.

Usage: python bench/step_profile.py [--data ../shared/data/klue-re] [--rows 2048] [--steps 20]
           [--variants "today's recipe" "K=8, dropout 0" ...] [--out step_profile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from re_pipeline.core.device import cpu_name

HERE = Path(__file__).resolve().parents[1]
SHARED = HERE.parent / "shared" / "data" / "klue-re"
CATEGORIES = {  # operator name fragments -> category, first match wins
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"),
    "attention": ("scaled_dot_product", "softmax", "attention"),
    "norms": ("layer_norm",),
    "activations and dropout": ("gelu", "dropout", "tanh", "bernoulli"),
    "casts": ("aten::to", "_to_copy", "aten::copy_"),
}


DROP0 = ["model.backbone.encoder_dropout=0"]
VARIANTS = {  # name -> (freeze_layers K, overrides, precision, batch): today's recipe first
    "today's recipe": (0, [], "auto", 32),
    "today's recipe, fp32": (0, [], "fp32", 32),
    "encoder dropout 0": (0, DROP0, "auto", 32),
    "K=4, dropout 0": (4, DROP0, "auto", 32),
    "K=6, dropout 0": (6, DROP0, "auto", 32),
    "K=8": (8, [], "auto", 32),
    "K=8, dropout 0": (8, DROP0, "auto", 32),
    "K=8, dropout 0, fp32": (8, DROP0, "fp32", 32),
    "K=8, dropout 0, batch 64": (8, DROP0, "auto", 64),
    "K=10, dropout 0": (10, DROP0, "auto", 32),
}


def category(name: str) -> str:
    return next((c for c, keys in CATEGORIES.items() if any(k in name for k in keys)), "other")


def by_category(prof) -> dict[str, float]:
    """Self CPU seconds per category over the profiled region (operators only, not the user ranges)."""
    out: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("aten::") or "::" in event.key:
            out[category(event.key)] += event.self_cpu_time_total / 1e6
    return dict(out)


def measure(data: Path, k: int, rows: int, steps: int, batch: int, precision: str, overrides=()) -> dict:
    from re_pipeline.config import load_config
    from re_pipeline.core.device import autocast
    from re_pipeline.data.features import RelationCollator, add_pair_column, length_order
    from re_pipeline.models.relation import build_model
    from re_pipeline.pipeline import fold_encoder, load_inputs, prepare_run
    from re_pipeline.training.frozen_cache import frozen_store
    from re_pipeline.training.hf_trainer import EpochLengthSampler
    from re_pipeline.training.throughput import Throughput, peaks

    config = load_config(
        HERE / "configs" / "e5-small.yaml",
        [
            f"data.train={data}/train.csv",
            f"data.test={data}/test_data.csv",
            f"model.backbone.freeze_layers={k}",
            f"train.precision={precision}",
            *overrides,
        ],
    )
    torch.manual_seed(0)
    train, test = load_inputs(config)
    work = Path(tempfile.mkdtemp(prefix="step_profile_"))
    inputs = prepare_run(config, train, test, work, lambda m: None, HERE / ".cache", ())
    examples = train.examples[:rows]
    ds, _ = inputs.features(examples)
    encoder, _ = fold_encoder(inputs, work / "fold0")
    model, pair_names = build_model(encoder, config.model, train.label_set, examples)
    ds = add_pair_column(ds, pair_names)
    store = None
    started = time.perf_counter()
    if k:
        store, (ds,) = frozen_store(
            model.encoder, k, inputs.tokenizer, [ds], "float16", precision, work / "cache", 128, lambda m: None
        )
    store_seconds = time.perf_counter() - started
    collator = RelationCollator(inputs.tokenizer.pad_token_id, frozen=store)
    order = list(EpochLengthSampler(batch, [len(x) for x in ds["input_ids"]], 0))  # the run's batches
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=5e-5)
    meter = Throughput(model.encoder.config, k, store is not None, False, precision)
    phases: dict[str, float] = defaultdict(float)
    model.train()

    def step(i: int, timed: bool) -> None:
        t0 = time.perf_counter()
        b = collator([ds[int(j)] for j in order[i * batch : (i + 1) * batch]])
        t1 = time.perf_counter()
        with autocast(precision):
            loss = model(**b)["loss"]
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if timed:
            meter.count(b)
            for name, seconds in zip(
                ("collation", "forward", "backward", "optimizer"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
            ):
                phases[name] += seconds

    step(0, False)  # allocates the optimizer's state
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(1, steps + 1):
            step(i, True)
    total = sum(phases.values())
    ops = by_category(prof)
    compute = phases["forward"] + phases["backward"]
    scale = compute / max(sum(ops.values()), 1e-9)  # the profiler's own overhead spread evenly
    peak = peaks()
    gflops = meter.flops / total / 1e9
    eval_rows = np.asarray(length_order(ds))[: min(len(ds), 1024)]
    model.eval()
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(precision):
        for i in range(0, len(eval_rows), 128):
            b = collator([ds[int(j)] for j in eval_rows[i : i + 128]])
            b.pop("labels", None)
            model(**b)
    eval_rows_per_s = len(eval_rows) / (time.perf_counter() - t0)
    return {
        "freeze_layers": k,
        "overrides": list(overrides),
        "precision": meter.precision,
        "trainable_M": round(sum(p.numel() for p in trained) / 1e6, 2),
        "rows_per_s": round(meter.rows / total, 2),
        "tokens_per_row": round(meter.tokens / meter.rows, 1),
        "gflops": round(gflops, 1),
        "peak_gflops": peak,
        "mfu": round(gflops / peak.get(meter.precision, peak["fp32"]), 3),
        "step_ms": {name: round(1000 * s / steps, 1) for name, s in phases.items()},
        "compute_ms_by_op": {name: round(1000 * s * scale / steps, 1) for name, s in sorted(ops.items())},
        "eval_rows_per_s": round(eval_rows_per_s, 1),
        "store_rows_per_s": round(len(ds) / store_seconds, 1) if k else None,
    }


def run_variant(data: Path, name: str, rows: int, steps: int) -> dict:
    k, overrides, precision, batch = VARIANTS[name]
    return {"variant": name, "batch": batch, **measure(data, k, rows, steps, batch, precision, overrides)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results = {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "runs": [run_variant(args.data, name, args.rows, args.steps) for name in args.variants],
    }
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
