"""The type-pair prior's weight in a TF-IDF run, chosen on the entity-split validation, then scored on the board.

Mixes the out-of-fold and test probabilities of a finished tfidf run (prior_weight 0) with those of a finished
prior run on the same split and seed: (1 - w) * tfidf + w * prior, for a few w. Prints the validation scores
(which choose w) beside the public-leaderboard scores (which only report).

Usage: python research/agreement/prior_weight.py runs/cpu/TFIDF_RUN runs/cpu/PRIOR_RUN
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # leaderboard_scores
from leaderboard_scores import SHARED, public_score

from re_pipeline.core.labels import LabelSet
from re_pipeline.evaluation.metrics import compute_metrics
from re_pipeline.submit.submission import write_submission

WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5)


def main(tfidf: Path, prior: Path) -> None:
    labels = LabelSet.klue()
    ids = json.loads((prior / "oof_ids.json").read_text())
    assert json.loads((tfidf / "oof_ids.json").read_text()) == ids, "the two runs must share the split"
    runs = [(np.load(r / "oof_probs.npy"), np.load(r / "test_probs.npy")) for r in (tfidf, prior)]
    validated = ~np.isnan(runs[0][0]).any(axis=1)
    gold = np.array(labels.ids(np.array(ids["labels"], dtype=object)[validated]))
    test_ids = [r["id"] for r in csv.DictReader(open(SHARED / "data" / "klue-re" / "test_data.csv", encoding="utf-8"))]
    print("| prior weight | validation micro-F1 / AUPRC | public micro-F1 / AUPRC |\n|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for w in WEIGHTS:
            val = compute_metrics(gold, ((1 - w) * runs[0][0] + w * runs[1][0])[validated])
            path = write_submission(Path(tmp) / f"w{w}.csv", test_ids, (1 - w) * runs[0][1] + w * runs[1][1], labels)
            public = public_score(path)
            print(
                f"| {w} | {val['micro_f1']:.2f} / {val['auprc']:.2f} "
                f"| {public['public_micro_f1']:.2f} / {public['public_auprc']:.2f} |"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
