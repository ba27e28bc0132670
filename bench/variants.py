"""Variants of configs/default.yaml on the KLUE-RE hold-out, one change at a time, same budget.

Groups: `ablation` (TAPT, marker format, pooling, type-pair heads, loss) and `peft` (full
fine-tuning against LoRA, bottleneck adapters and prefix tuning). Each variant is a normal
run, `runs/variant-<digest of its overrides>/`, trained in a child process so its peak memory
(`ru_maxrss`) is its own; identical variants in two groups share one run. The test sentences
stay in (TAPT reads them and its cache is keyed by them), so every variant writes a submission.
Finished variants are read back, so an interrupted sweep resumes where it stopped.

Usage: python bench/variants.py GROUP [--data ../shared/data/klue-re] [--set train.epochs=1 ...] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import time
from pathlib import Path

GROUPS = {
    "ablation": {
        "default": [],
        "no TAPT": ["tapt.enabled=false"],
        "TAPT 1 epoch, lr 5e-4": ["tapt.epochs=1.0", "tapt.learning_rate=5.0e-4"],
        "untyped punct markers": ["markers.format=entity_marker_punct"],
        "cls pooling": ["model.pooling=cls"],
        "no type-pair heads": ["model.type_pair_heads=false"],
        "unweighted CE": ["model.loss.class_weighted=false"],
        "label smoothing 0.1": ["model.loss.label_smoothing=0.1"],
    },
    "peft": {
        "full fine-tuning": [],
        "LoRA r=8 (q,v)": ["model.peft.method=lora", "train.learning_rate=1e-3"],
        "Houlsby adapters (1/16)": ["model.peft.method=houlsby", "train.learning_rate=1e-3"],
        "Pfeiffer adapters (1/16)": ["model.peft.method=pfeiffer", "train.learning_rate=1e-3"],
        "P-tuning v2 (prefix 20, MLP)": ["model.peft.method=prefix", "model.peft.prefix_projection=true", "train.learning_rate=5e-3"],
    },
}


def train_child(overrides: list[str], run_dir: str, name: str) -> None:
    """Child process: one run, then its own peak resident memory next to it."""
    from re_pipeline.config import load_config
    from re_pipeline.pipeline import run_pipeline

    config = load_config(Path("configs/default.yaml"), overrides)
    config.name = name
    run_pipeline(config, run_dir=Path(run_dir), log=lambda msg: print(f"[{Path(run_dir).name}] {msg}", flush=True))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (Path(run_dir) / "bench.json").write_text(json.dumps({"peak_rss_mib": round(peak_mib)}))


def run_variant(name: str, overrides: list[str], root: Path) -> Path:
    run_dir = root / f"variant-{hashlib.sha256(' '.join(overrides).encode()).hexdigest()[:10]}"
    if not (run_dir / "bench.json").exists():
        start = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=train_child, args=(overrides, str(run_dir), name))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"variant {overrides} failed (exit {child.exitcode}); its run folder: {run_dir}")
        print(f"{run_dir.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return run_dir


def describe(run_dir: Path) -> dict:
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    fold = result["folds"]["fold0"]
    train_log = next(e for e in fold["log_history"] if "train_runtime" in e)
    steps = max(e.get("step", 0) for e in fold["log_history"])
    model_bytes = sum(p.stat().st_size for p in (run_dir / "fold0" / "model").rglob("*") if p.is_file())
    return {
        **result["metrics"],
        "minutes": result["seconds"] / 60,
        "step_s": train_log["train_runtime"] / steps,
        "model_mib": model_bytes / 2**20,
        "trainable": fold.get("trainable"),
        **json.loads((run_dir / "bench.json").read_text()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--data", default="../shared/data/klue-re", help="folder with train.csv and test_data.csv")
    parser.add_argument("--set", dest="shared", action="append", default=[], help="override applied to every variant")
    parser.add_argument("--only", action="append", help="run only these variants")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    data = [f"data.train={args.data}/train.csv", f"data.test={args.data}/test_data.csv"]
    rows = []
    for name, overrides in GROUPS[args.group].items():
        if args.only and name not in args.only:
            continue
        d = describe(run_variant(name, [*data, *args.shared, *overrides], args.runs))
        trainable = d["trainable"]
        share = f"{trainable['percent']:.2f}%"
        rows.append(
            f"| {name} | {' '.join(overrides) or '—'} | {d['micro_f1']:.2f} | {d['auprc']:.2f} | {share} | {d['model_mib']:.1f} "
            f"| {d['step_s']:.2f} | {d['peak_rss_mib']:,} | {d['minutes']:.1f} |"
        )
    print(f"\nshared overrides: {' '.join(args.shared) or 'none'}\n")
    print("| variant | change | micro-F1 | AUPRC | trainable | saved MiB | s/step | peak RSS MiB | minutes |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
