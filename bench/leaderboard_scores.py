"""Public-leaderboard scores of sweep runs, beside their validation scores.

Reads bench/sweep.py's results JSON and test probabilities (.npz), writes one submission CSV per run under
submissions/sweep/ (ids from the test file, in its order) and scores each with ../shared/tools/leaderboard.py,
as the competition's public board did. The public labels are read by that tool only: nothing here trains,
tunes or selects on them.

Usage: python bench/leaderboard_scores.py results.json probs.npz [--test ../shared/data/klue-re/test_data.csv]
           [--out scores.json]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np

from re_pipeline.labels import LabelSet
from re_pipeline.submission import write_submission

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("probs", type=Path)
    parser.add_argument("--test", type=Path, default=SHARED / "data" / "klue-re" / "test_data.csv")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = json.loads(args.results.read_text(encoding="utf-8"))
    probs = np.load(args.probs)
    ids = [row["id"] for row in csv.DictReader(open(args.test, encoding="utf-8"))]
    labels, rows = LabelSet.klue(), {}
    for name, info in results.items():
        if name not in probs.files:
            continue
        p = probs[name].astype(np.float64)
        path = write_submission(Path("submissions/sweep") / f"{name}.csv", ids, p / p.sum(1, keepdims=True), labels)
        val, rew = info.get("metrics") or {}, info.get("metrics_reweighted") or {}
        rows[name] = {
            "val_micro_f1": val.get("micro_f1"),
            "val_auprc": val.get("auprc"),
            "reweighted_micro_f1": rew.get("micro_f1"),
            "reweighted_auprc": rew.get("auprc"),
            **public_score(path),
            "seconds": info.get("seconds"),
        }
        print(name, json.dumps(rows[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
