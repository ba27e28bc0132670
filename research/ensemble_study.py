"""Ensembles of finished runs under every pool, weighting, member calibration and decision (issue 30: the
e5 recipe with the TF-IDF default).

Each combination is `re-pipeline ensemble MEMBERS --pool P --method M --calibration C --decision D` (the same
`run_ensemble`), into runs/ensemble_study/; its validation scores are the ensemble's own (cross-fitted where
weights are fitted), and its submission is scored on the public board by ../shared/tools/leaderboard.py,
which nothing here chooses with.

Usage: python research/ensemble_study.py RUN_DIR RUN_DIR [...] [--out bench/results/ensemble_study.json]
       python research/ensemble_study.py --render bench/results/ensemble_study.json   (the table, measuring nothing)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # the board and the sweep runner
from leaderboard_scores import public_score
from study import no_relation_share

from re_pipeline.submit.ensemble import run_ensemble

HERE = Path(__file__).resolve().parents[1]
RUNS = HERE / "runs" / "ensemble_study"
GRID = {
    "pool": ("mean", "log"),
    "method": ("mean", "fit-f1", "fit-auprc"),
    "calibration": ("none", "temperature"),
    "decision": ("argmax", "f1"),
}


def render(rows: list[dict]) -> str:
    """The markdown table of BENCHMARKS.md, one row per combination."""
    lines = [
        "| pool | weights | members calibrated | decision | weights (members) | validation F1 / AUPRC | "
        "public F1 / AUPRC | predicted no_relation |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        weights = " / ".join(f"{w:.2f}" for w in r["weights"])
        lines.append(
            f"| {r['pool']} | {r['method']} | {r['calibration']} | {r['decision']} | {weights} | "
            f"{r['val_micro_f1']:.2f} / {r['val_auprc']:.2f} | {r['public_micro_f1']:.2f} / {r['public_auprc']:.2f} | "
            f"{r['no_relation_predicted']:.1f}% |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="*", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, help="print the table of a stored result and stop")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())["rows"]))
        return
    if len(args.members) < 2:
        parser.error("name at least two finished run folders (or --render a stored result)")
    rows = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values))
        quiet = lambda message: None  # noqa: E731
        run = run_ensemble(args.members, runs_dir=RUNS, submissions_dir=RUNS / "submissions", log=quiet, **setting)
        result = json.loads((run / "result.json").read_text())
        decided = (result["ensemble"]["test_prior"] or {}).get("validation_decided", result["metrics"])
        row = {
            **setting,
            "weights": [round(w, 3) for w in result["ensemble"]["weights"]],
            "val_micro_f1": round(decided["micro_f1"], 2),
            "val_auprc": round(decided["auprc"], 2),
            **public_score(Path(result["submission"])),
            "no_relation_predicted": no_relation_share(Path(result["submission"])),
            "run": str(run.relative_to(HERE)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"members": [str(m) for m in args.members], "rows": rows}, indent=1) + "\n")
    print(render(rows))


if __name__ == "__main__":
    main()
