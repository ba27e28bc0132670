"""The default config end to end, as a user runs it: `re-pipeline train -d DATA` in a fresh process. Reports its wall
time, its peak resident memory, its validation scores, and its public-leaderboard scores when the scorer
(../shared/tools/leaderboard.py) is there.

The peak is the child's own, from `os.wait4`. The run, its submission and any cache go to a temporary folder.

Usage: python bench/default_run.py [--data ../shared/data/klue-re] [-s key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from leaderboard_scores import SHARED, public_score
from sweep import train_command

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def main(data: str, overrides: list[str] = (), score: bool = True, config: Path = DEFAULT) -> dict:
    """One run of the default config (with `overrides`) on `data`: seconds, peak RSS (GiB), validation scores and,
    with `score` (for the competition's test only), public-leaderboard scores."""
    with tempfile.TemporaryDirectory() as tmp:
        command = train_command(config, Path(data).resolve(), "run", list(overrides))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        started = time.perf_counter()
        log = Path(tmp) / "train.log"
        with open(log, "wb") as err:  # a file, not a pipe: a pipe nobody reads fills up and stalls the run
            child = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text(errors='replace')[-3000:]}")
        runs = {"run": Path(tmp) / "run", **{p.name: p for p in sorted(Path(tmp).glob("run-*"))}}
        for path in Path(tmp).glob("*-ensemble"):  # a config with ensemble.members: its last submission
            runs["ensemble"] = path
        scored = {name: scores(path, Path(tmp), score) for name, path in runs.items()}
        return {
            "seconds": round(seconds, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),  # ru_maxrss is in KiB on Linux
            **scored.get("ensemble", scored["run"]),  # what the run submits last
            "runs": scored if len(scored) > 1 else None,
        }


def scores(run_dir: Path, cwd: Path, public: bool) -> dict:
    """A run folder's validation scores (an ensemble's as decided, cross-fitted) and its submission's public ones."""
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    decided = ((result.get("ensemble") or {}).get("test_prior") or {}).get("validation_decided")
    metrics = decided or result.get("metrics_decided") or result["metrics"]
    row = {"val_micro_f1": metrics["micro_f1"], "val_auprc": metrics["auprc"]}
    if public and (SHARED / "tools" / "leaderboard.py").exists() and result.get("submission"):
        row.update(public_score(cwd / result["submission"]))
    return row


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/klue-re")
    parser.add_argument("-s", "--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    print(json.dumps(main(args.data, args.overrides), indent=2))
