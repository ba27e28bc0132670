"""What each label-free answer to the test's no_relation share does to finished runs (issue 30).

For every run (its validated rows' probabilities and labels, its raw test probabilities) and every combination
of `train.calibration`, `train.prior_shift` and `train.decision`, the same `Reference` a run would build
re-decides the test: the estimated no_relation share, the share the submission predicts, the validation
micro-F1 / AUPRC with calibration and decision cross-fitted (each half of the validated rows scored with the
calibration and factor fitted on the other half: a prior shift cannot be validated on rows drawn with train's
prior), and the public score of the written submission. The public half's own no_relation share is printed
beside the estimates for the reader; nothing here chooses with it.

Usage: python research/prior_study.py RUN_DIR [RUN_DIR ...] [--out bench/results/prior_study.json]
       python research/prior_study.py --render bench/results/prior_study.json   (the tables, measuring nothing)
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # the board and the sweep runner
from leaderboard_scores import SHARED, public_score

from re_pipeline.core.labels import LabelSet
from re_pipeline.evaluation.metrics import compute_metrics
from re_pipeline.evaluation.prior import CALIBRATIONS, DECISIONS, PRIOR_SHIFTS, Reference, cross_fitted_decision
from re_pipeline.records.runs import finished
from re_pipeline.submit.submission import read_submission, write_submission

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "submissions" / "prior_study"


def study(run_dir: Path) -> list[dict]:
    result = finished(run_dir)
    if (result.get("test_prior") or {}).get("prior_shift", "none") != "none":
        raise SystemExit(f"{run_dir}: its submission is already prior-shifted; study runs trained without it")
    labels = LabelSet.from_dict(json.loads((run_dir / "labels.json").read_text()))
    oof = np.load(run_dir / "oof_probs.npy")
    validated = ~np.isnan(oof[:, 0])
    gold = np.array(labels.ids(json.loads((run_dir / "oof_ids.json").read_text())["labels"]))[validated]
    ids, _, test = read_submission(result["submission"])
    train_prior = np.array(json.loads((run_dir / "prior.json").read_text())["train"])
    rows = []
    for calibration, decision in itertools.product(CALIBRATIONS, DECISIONS):
        reference = Reference.from_validation(train_prior, oof[validated], gold, calibration, decision)
        decided = cross_fitted_decision(oof[validated], gold, calibration, decision)
        val = {k: round(v, 2) for k, v in compute_metrics(gold, decided).items()}
        for shift in PRIOR_SHIFTS:
            probs, estimated = reference.shift(test, shift)
            name = f"{run_dir.name}-{calibration}-{shift}-{decision}"
            submission = write_submission(OUT / f"{name}.csv", ids, probs, labels)
            rows.append(
                {
                    "run": str(run_dir.relative_to(HERE)) if run_dir.is_relative_to(HERE) else str(run_dir),
                    "calibration": calibration,
                    "prior_shift": shift,
                    "decision": decision,
                    "no_relation_estimated": round(100 * float(estimated[0]), 1),
                    "no_relation_predicted": round(100 * float((probs.argmax(1) == 0).mean()), 1),
                    "no_relation_scale": round(reference.scale, 3),
                    "val_micro_f1": val["micro_f1"],
                    "val_auprc": val["auprc"],
                    **public_score(submission),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def public_share() -> float:
    """The public half's no_relation share, in % (reported beside the estimates, never used to choose)."""
    path = SHARED / "data" / "klue-re" / "leaderboard" / "public_labels.csv"
    labels = [row["label"] for row in csv.DictReader(open(path, encoding="utf-8"))]
    return round(100 * sum(label == "no_relation" for label in labels) / len(labels), 1)


def render(rows: list[dict]) -> str:
    """The two markdown tables of BENCHMARKS.md: one column per run, estimators first, then calibration x decision."""
    runs = list(dict.fromkeys(r["run"] for r in rows))
    cell = {(r["run"], r["calibration"], r["prior_shift"], r["decision"]): r for r in rows}
    head = " | ".join(Path(run).name for run in runs)
    lines = [f"| estimated test no_relation share → public F1 / AUPRC | {head} |", "|---|" + "---:|" * len(runs)]
    for calibration, shift in itertools.product(("none", "bcts"), PRIOR_SHIFTS):
        if calibration != "none" and shift == "none":
            continue
        got = [cell[(run, calibration, shift, "argmax")] for run in runs]
        if shift == "none":
            name = f"no adjustment (the training share: {got[0]['no_relation_estimated']}%)"
            values = [f"{r['public_micro_f1']:.2f} / {r['public_auprc']:.2f}" for r in got]
        else:
            name = f"`{shift}`" + (" after BCTS" if calibration == "bcts" else "")
            values = [
                f"{r['no_relation_estimated']}% → {r['public_micro_f1']:.2f} / {r['public_auprc']:.2f}" for r in got
            ]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += [
        "",
        "| calibration, decision: validation (cross-fitted) F1 / AUPRC; public F1 / AUPRC; predicted "
        f"no_relation | {head} |",
        "|---|" + "---|" * len(runs),
    ]
    for calibration, decision in itertools.product(CALIBRATIONS, DECISIONS):
        values = []
        for run in runs:
            r = cell[(run, calibration, "none", decision)]
            scale = f" (×{r['no_relation_scale']:.2f})" if decision != "argmax" else ""
            values.append(
                f"{r['val_micro_f1']:.2f} / {r['val_auprc']:.2f}; {r['public_micro_f1']:.2f} / "
                f"{r['public_auprc']:.2f}; {r['no_relation_predicted']:.0f}%{scale}"
            )
        lines.append(f"| {calibration}, {decision} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, help="print the tables of a stored result and stop")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())["rows"]))
        return
    if not args.runs:
        parser.error("name at least one run folder (or --render a stored result)")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "public_no_relation_share": public_share(),
        "rows": [r for run in args.runs for r in study(run.resolve())],
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result["rows"]))


if __name__ == "__main__":
    main()
