"""Public-leaderboard scores of runs, beside their validation scores.

Sweep mode reads bench/sweep.py's results JSON and test probabilities (.npz), writes one submission CSV per run
under submissions/sweep/ (ids from the test file, in its order); `--runs` reads finished run folders and their
submissions. Each submission is scored with ../shared/tools/leaderboard.py, as the competition's public board
did. The public labels are read by that tool only: nothing here trains, tunes or selects on them.

Usage: python bench/leaderboard_scores.py results.json probs.npz [--test ../shared/data/klue-re/test_data.csv]
           [--out scores.json]
       python bench/leaderboard_scores.py --runs RUN_DIR [RUN_DIR ...] [--out scores.json]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import yaml

from re_pipeline.core.labels import LabelSet
from re_pipeline.submit.submission import write_submission

SHARED = Path(__file__).resolve().parents[2] / "shared"


def board():
    spec = importlib.util.spec_from_file_location("leaderboard", SHARED / "tools" / "leaderboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_score(path: Path) -> dict:
    line = board().score(path)
    f1, auprc = (float(x) for x in re.findall(r"(?:micro-F1|AUPRC) ([\d.]+)", line))
    return {"public_micro_f1": f1, "public_auprc": auprc}


def score_row(name: str, result: dict, submission: Path) -> dict:
    """A run's validation scores (raw and reweighted; `result` holds them as result.json and sweep results do),
    the public-leaderboard scores of its submission, and its wall time."""
    val, rew = result.get("metrics") or {}, result.get("metrics_reweighted") or {}
    row = {
        "val_micro_f1": val.get("micro_f1"),
        "val_auprc": val.get("auprc"),
        "reweighted_micro_f1": rew.get("micro_f1"),
        "reweighted_auprc": rew.get("auprc"),
        **public_score(submission),
        "seconds": result.get("seconds"),
    }
    print(name, json.dumps(row), flush=True)
    return row


def score_runs(run_dirs: list[Path]) -> dict[str, dict]:
    """Each finished run's settings that tell runs apart and its `score_row`, by run folder name."""
    rows = {}
    for run in run_dirs:
        result = json.loads((run / "result.json").read_text(encoding="utf-8"))
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        rows[run.name] = {
            "kind": config["model"]["kind"],
            "split": config["train"]["split"],
            **score_row(run.name, result, Path(result["submission"])),
        }
    return rows


def score_sweep(results_path: Path, probs_path: Path, test: Path) -> dict[str, dict]:
    """Each bench/sweep.py run with test probabilities: its submission under submissions/sweep/, scored."""
    results = json.loads(results_path.read_text(encoding="utf-8"))
    probs = np.load(probs_path)
    ids = [row["id"] for row in csv.DictReader(open(test, encoding="utf-8"))]
    labels, rows = LabelSet.klue(), {}
    for name, info in results.items():
        if name not in probs.files:
            continue
        p = probs[name].astype(np.float64)
        path = write_submission(Path("submissions/sweep") / f"{name}.csv", ids, p / p.sum(1, keepdims=True), labels)
        rows[name] = score_row(name, info, path)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, nargs="?")
    parser.add_argument("probs", type=Path, nargs="?")
    parser.add_argument("--runs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--test", type=Path, default=SHARED / "data" / "klue-re" / "test_data.csv")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.runs and not (args.results and args.probs):
        parser.error("give results.json and probs.npz, or --runs")
    rows = score_runs(args.runs) if args.runs else score_sweep(args.results, args.probs, args.test)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
