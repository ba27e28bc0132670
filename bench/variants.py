"""Variants of configs/transformer.yaml (the transformer recipe) on the KLUE-RE hold-out, one change at a time, same budget.

Groups: `default` (the config as it is), `ablation` (TAPT, marker format, pooling, type-pair
heads, loss) and `peft` (full fine-tuning against LoRA, bottleneck adapters and prefix tuning).
Each variant is a normal run. A finished run under `runs/` whose resolved config (all but its
name) and data files equal the variant's is reused, whatever its folder is called; otherwise the
variant trains into `runs/variant-<digest of its resolved config>/`, in a child process so its
peak memory (`ru_maxrss`, in `bench.json`) is its own, and an interrupted variant resumes there.
Variants that resolve to the same config as an earlier one in the group are listed once. The
test sentences stay in (TAPT reads them and its cache is keyed by them), so every variant
writes a submission.

Usage: python bench/variants.py GROUP [--data ../shared/data/klue-re] [--set train.epochs=1 ...] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import resource
import time
from pathlib import Path

GROUPS = {
    "default": {"default": []},
    "ablation": {
        "default": [],
        "no TAPT": ["tapt.enabled=false"],
        "TAPT half as long": ["tapt.epochs=2.0"],
        "typed punct markers": ["markers.format=typed_entity_marker_punct"],
        "untyped punct markers": ["markers.format=entity_marker_punct"],
        "cls pooling": ["model.pooling=cls"],
        "no type-pair heads": ["model.type_pair_heads=false"],
        "unweighted CE": ["model.loss.class_weighted=false"],
    },
    "peft": {
        "full fine-tuning": [],
        "LoRA r=8 (q,v)": ["model.peft.method=lora", "train.learning_rate=1e-3"],
        "Houlsby adapters (1/16)": ["model.peft.method=houlsby", "train.learning_rate=1e-3"],
        "Pfeiffer adapters (1/16)": ["model.peft.method=pfeiffer", "train.learning_rate=1e-3"],
        "P-tuning v2 (prefix 20, MLP)": [
            "model.peft.method=prefix",
            "model.peft.prefix_projection=true",
            "train.learning_rate=5e-3",
        ],
    },
}


def resolved(overrides: list[str]):
    from re_pipeline.config import load_config

    return load_config(Path("configs/transformer.yaml"), overrides)


def comparable(config) -> dict:
    """What decides a run's result: the resolved config without its name."""
    return {key: value for key, value in dataclasses.asdict(config).items() if key != "name"}


def matching_run(config, root: Path) -> Path | None:
    """A finished run under `root` trained with this config (name aside) on these same data files."""
    from re_pipeline.config import load_config
    from re_pipeline.core.errors import PipelineError
    from re_pipeline.records.runs import data_files

    want, files = comparable(config), data_files(config)
    for result in sorted(root.glob("*/result.json")):
        try:
            same = comparable(load_config(result.parent / "config.yaml")) == want
        except PipelineError:  # a run from an older config schema, or not a training run
            continue
        if same and json.loads(result.read_text(encoding="utf-8")).get("data_files") == files:
            return result.parent
    return None


def train_child(overrides: list[str], run_dir: str, name: str) -> None:
    """Child process: one run, then its own peak resident memory next to it."""
    from re_pipeline.pipeline import run_pipeline

    config = resolved(overrides)
    config.name = name
    run_pipeline(config, run_dir=Path(run_dir), log=lambda msg: print(f"[{Path(run_dir).name}] {msg}", flush=True))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (Path(run_dir) / "bench.json").write_text(json.dumps({"peak_rss_mib": round(peak_mib)}))


def run_variant(name: str, overrides: list[str], config, root: Path) -> Path:
    """The finished run of this variant (`config`, resolved from `overrides`): an existing one, or trained now."""
    from re_pipeline.config import to_yaml, with_values

    found = matching_run(config, root)
    if found:
        return found
    digest = hashlib.sha256(to_yaml(with_values(config, {"name": "default"})).encode()).hexdigest()[
        :10
    ]  # the folder's name ignores the run's
    run_dir = root / f"variant-{digest}"
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
    bench = (
        json.loads((run_dir / "bench.json").read_text())
        if (run_dir / "bench.json").exists()
        else {"peak_rss_mib": None}
    )
    return {
        **result["metrics"],
        "run": run_dir.name,
        "minutes": result["seconds"] / 60,
        "step_s": train_log["train_runtime"] / steps,
        "model_mib": model_bytes / 2**20,
        "trainable": fold.get("trainable"),
        "curve": [
            {"epoch": e["epoch"], "micro_f1": e["eval_micro_f1"], "auprc": e["eval_auprc"]}
            for e in fold["log_history"]
            if "eval_micro_f1" in e
        ],
        **bench,
    }


def run_group(
    group: str, data: str, shared: list[str], only: list[str] | None = None, root: Path = Path("runs")
) -> list[dict]:
    """Every variant of `group` (or `only` these), trained or reused: one `describe` row each, with its name and change."""
    rows, seen = [], []
    for name, overrides in GROUPS[group].items():
        if only and name not in only:
            continue
        every = [f"data.train={data}/train.csv", f"data.test={data}/test_data.csv", *shared, *overrides]
        config = resolved(every)
        key = comparable(config)
        if key in seen:
            continue
        seen.append(key)
        rows.append(
            {"variant": name, "change": " ".join(overrides) or "—", **describe(run_variant(name, every, config, root))}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--data", default="../shared/data/klue-re", help="folder with train.csv and test_data.csv")
    parser.add_argument("--set", dest="shared", action="append", default=[], help="override applied to every variant")
    parser.add_argument("--only", action="append", help="run only these variants")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    args = parser.parse_args()
    rows = run_group(args.group, args.data, args.shared, args.only, args.runs)
    print(f"\nshared overrides: {' '.join(args.shared) or 'none'}\n")
    print("| variant | change | run | micro-F1 | AUPRC | trainable | saved MiB | s/step | peak RSS MiB | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in rows:
        peak = f"{d['peak_rss_mib']:,}" if d["peak_rss_mib"] else "—"
        print(
            f"| {d['variant']} | {d['change']} | {d['run']} | {d['micro_f1']:.2f} | {d['auprc']:.2f} | {d['trainable']['percent']:.2f}% "
            f"| {d['model_mib']:.1f} | {d['step_s']:.2f} | {peak} | {d['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
