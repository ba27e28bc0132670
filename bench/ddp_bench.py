"""Training throughput of `re-pipeline train` in one process against two data-parallel processes
(torchrun, gloo on CPU), same global batch (32 against 2 x 16), on the full shared train set.

Each run trains `train.max_steps` steps of the default model without TAPT, validation or test
rows (only the training loop is timed: the Trainer's `train_samples_per_second`, which counts
the global batch). One process uses every core's thread; two processes get one thread each.

Usage: python bench/ddp_bench.py [--data ../shared/data/klue-re] [--steps 60]   (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = 60


def samples_per_second(processes: int, data: str, steps: int) -> float:
    batch = 32 // processes
    sets = [
        f"data.train={data}/train.csv",
        "data.test=null",
        "train.validation=none",
        "tapt.enabled=false",
        f"train.max_steps={steps}",
        f"train.batch_size={batch}",
        "name=ddp-bench",
    ]
    launcher = [sys.executable, "-m", "re_pipeline"]
    env = dict(os.environ)
    if processes > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            "re_pipeline",
        ]
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [
            *launcher,
            "train",
            "-c",
            "configs/transformer.yaml",
            "--run-dir",
            str(run_dir),
            *[a for s in sets for a in ("--set", s)],
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    summary = next(e for e in result["folds"]["fold0"]["log_history"] if "train_samples_per_second" in e)
    return summary["train_samples_per_second"]


def main(data: str, steps: int) -> dict:
    return {f"{n} process{'es' if n > 1 else ''}": samples_per_second(n, data, steps) for n in (1, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/klue-re")
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    print(json.dumps(main(args.data, args.steps), indent=1))
