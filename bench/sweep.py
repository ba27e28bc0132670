"""Run many variants of a config as separate `re-pipeline train` processes, N at a time, under a deadline,
and collect what the leaderboard comparison needs: each run's validation metrics (raw and reweighted), wall
time and test probabilities (one compressed .npz), written again after every finished run so a run that is
stopped at its deadline still returns what finished.

Variants are named lists of `--set` overrides in a YAML file (bench/sweeps/*.yaml):

    base: configs/default.yaml          # the config every variant starts from
    variants:
      default: []
      no-tapt: [tapt.enabled=false]
      team-1st: {config: configs/teams/1st-kiyoung2.yaml, set: [train.validation=holdout]}

`--first NAME` runs that variant alone before the others start (it trains the tokenizer and TAPT that the
others then reuse from the cache, and its wall time is an undisturbed end-to-end time).

Usage: python bench/sweep.py bench/sweeps/issue13.yaml --data DIR --out results.json --probs probs.npz
           [--workers 4] [--deadline 600] [--min-left 30] [--first default] [--only a,b] [--set k=v ...]
           [--workdir DIR]
Score the probabilities on the public leaderboard with bench/leaderboard_scores.py (never in here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from re_pipeline.core.io_utils import write_json


def variants(path: Path) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = {}
    for name, value in spec["variants"].items():
        if isinstance(value, dict):
            out[name] = (value.get("config", spec["base"]), list(value.get("set", [])))
        else:
            out[name] = (spec["base"], list(value or []))
    return spec["base"], out


def train_command(config: str | Path, data: str | Path, run_dir: str | Path, sets: list[str]) -> list[str]:
    """`python -m re_pipeline train` on `config` and `data` into `run_dir`, with `--set` overrides."""
    command = [sys.executable, "-m", "re_pipeline", "train", "-c", str(config), "--data", str(data)]
    return [*command, "--run-dir", str(run_dir), *[arg for item in sets for arg in ("--set", item)]]


class Sweep:
    def __init__(self, args):
        self.args, self.lock = args, threading.Lock()
        self.results = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        self.probs = dict(np.load(args.probs)) if Path(args.probs).exists() else {}
        self.stop_at = time.time() + args.deadline

    def run(self, name: str, config: str, sets: list[str]) -> None:
        if name in self.results and self.results[name].get("status") == "done":
            return
        left = self.stop_at - time.time()
        if left < self.args.min_left:
            self.record(name, {"status": "not started (deadline)"})
            return
        run_dir = Path(self.args.runs).resolve() / name
        command = train_command(
            Path(config).resolve(), Path(self.args.data).resolve(), run_dir, [*self.args.set, *sets]
        )
        started = time.time()
        log = Path(self.args.runs) / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as fh:
            try:
                code = subprocess.run(
                    command, stdout=fh, stderr=subprocess.STDOUT, timeout=left, env=self.env(), cwd=self.args.workdir
                ).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        info = {"config": config, "set": sets, "seconds": round(time.time() - started, 1), "returncode": code}
        result_file = run_dir / "result.json"
        if code == 0 and result_file.exists():
            result = json.loads(result_file.read_text(encoding="utf-8"))
            info.update(
                status="done",
                metrics=result.get("metrics"),
                metrics_reweighted=result.get("metrics_reweighted"),
                test_prior=result.get("test_prior"),
                run_seconds=result.get("seconds"),
                folds=len(result.get("folds", {})),
                trainable_percent=next(iter(result["folds"].values()), {}).get("trainable", {}).get("percent"),
                saved_MB=round(sum(f.stat().st_size for f in (run_dir / "fold0" / "model").rglob("*")) / 2**20, 1),
            )
            with self.lock:
                self.probs[name] = np.load(run_dir / "test_probs.npy").astype(np.float32)
        else:
            info.update(status="failed", tail=log.read_text(encoding="utf-8")[-1500:])
        self.record(name, info)

    def env(self) -> dict:
        return {**os.environ, "OMP_NUM_THREADS": str(self.args.threads)}

    def record(self, name: str, info: dict) -> None:
        with self.lock:
            self.results[name] = info
            # written aside, then renamed: a copy taken meanwhile (gpu_session.sh) never reads half a file
            write_json(self.args.out, self.results)
            probs = Path(self.args.probs)
            part = probs.with_name(probs.name + ".part")
            with open(part, "wb") as fh:  # binary: atomic_write is for text
                np.savez_compressed(fh, **self.probs)
            part.replace(probs)
            print(
                f"{time.strftime('%H:%M:%S')} {name}: {info.get('status')} in {info.get('seconds')} s "
                f"{info.get('metrics') or ''}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--probs", required=True)
    parser.add_argument("--runs", default="runs/sweep")
    parser.add_argument("--workdir", default=".", help="where the runs start (their submissions/ and .cache/)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="OMP threads per run")
    parser.add_argument("--deadline", type=float, default=3600, help="seconds from now; later runs are not started")
    parser.add_argument("--min-left", type=float, default=30, help="no run starts with fewer seconds left")
    parser.add_argument("--first", default=None)
    parser.add_argument("--only", default=None, help="comma-separated variant names, in this order")
    parser.add_argument("--set", action="append", default=[], help="an override for every variant")
    args = parser.parse_args()
    _, table = variants(args.spec)
    names = args.only.split(",") if args.only else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(table)}")
    sweep = Sweep(args)
    if args.first:
        sweep.run(args.first, *table[args.first])
        names = [n for n in names if n != args.first]
    with ThreadPoolExecutor(args.workers) as pool:
        for future in [pool.submit(sweep.run, n, *table[n]) for n in names]:
            future.result()


if __name__ == "__main__":
    main()
