"""What vocabulary trimming (`model.backbone.trim_vocab`) saves on configs/e5-small.yaml: training samples/s,
inference rows/s and peak RSS, trimmed versus the full 250k-piece vocabulary, each in a fresh process.

The vocabulary is trimmed to the pieces of all of train + test (as a run does); timing uses the first
`--rows` training rows, `--steps` AdamW steps of `--batch` rows (after one untimed warm-up step), then
inference over the same rows in batches of 128, shortest first.

Usage: python bench/trim_bench.py [--data ../shared/data/klue-re] [--rows 1024] [--steps 20] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parents[1]


def measure(data: str, trim: bool, rows: int, steps: int, batch: int) -> dict:
    from re_pipeline.config import load_config
    from re_pipeline.data.features import RelationCollator, add_pair_column, length_order
    from re_pipeline.models.relation import build_model
    from re_pipeline.pipeline import RunInputs, fold_encoder, load_inputs, prepare_run

    config = load_config(
        HERE / "configs" / "e5-small.yaml",
        [
            f"data.train={data}/train.csv",
            f"data.test={data}/test_data.csv",
            f"model.backbone.trim_vocab={str(trim).lower()}",
        ],
    )
    torch.manual_seed(0)
    train, test = load_inputs(config)
    run_dir = Path(tempfile.mkdtemp(prefix="trim_bench_"))
    inputs: RunInputs = prepare_run(config, train, test, run_dir, lambda m: None, HERE / ".cache", ())
    examples = train.examples[:rows]
    ds, _ = inputs.features(examples)
    encoder, _ = fold_encoder(inputs, run_dir / "fold0")
    model, pair_names = build_model(encoder, config.model, train.label_set, examples)
    ds = add_pair_column(ds, pair_names)
    collator = RelationCollator(inputs.tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=5e-5)
    model.train()
    times = []
    for step in range(steps + 1):
        rows_ = [ds[(step * batch + i) % len(ds)] for i in range(batch)]
        start = time.perf_counter()
        loss = model(**collator(rows_))["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimizer states
            times.append(time.perf_counter() - start)
    model.eval()
    order = length_order(ds)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(order), 128):
            batch_rows = collator([ds[int(j)] for j in order[i : i + 128]])
            batch_rows.pop("labels", None)
            model(**batch_rows)
    infer = time.perf_counter() - start
    return {
        "trim_vocab": trim,
        "vocabulary": len(inputs.tokenizer),
        "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "train_samples_per_s": round(steps * batch / sum(times), 2),
        "inference_rows_per_s": round(len(ds) / infer, 1),
        "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent / "shared" / "data" / "klue-re"))
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", choices=["true", "false"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.data, args.child == "true", args.rows, args.steps, args.batch)))
        return
    for trim in ("true", "false"):
        cmd = [sys.executable, __file__, "--child", trim, "--data", args.data, "--rows", str(args.rows)]
        cmd += ["--steps", str(args.steps), "--batch", str(args.batch)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(out, flush=True)


if __name__ == "__main__":
    main()
