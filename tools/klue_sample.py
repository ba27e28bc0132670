"""Cut the embedded sample (data/sample/) from KLUE-RE's training set: a labelled test slice and a train slice
that shares none of its entities, so the sample's score, like the real test's, is on entities never trained on.

The test slice is `--test` rows drawn at random (seed `--seed`); the train slice is `--train` rows drawn at random
from the rows whose subject and object words both differ from every entity word of the test slice. Rows keep
their columns and ids (KLUE-RE v1.1 train, CC BY-SA 4.0); never a row of the competition's test file.

Usage: python tools/klue_sample.py ../shared/data/klue-re/train.csv [--out data/sample] [--train 2000]
           [--test 500] [--seed 7]
"""

from __future__ import annotations

import argparse
import ast
import csv
import random
from pathlib import Path


def entity_words(row: dict) -> set[str]:
    return {ast.literal_eval(row[key])["word"] for key in ("subject_entity", "object_entity")}


def cut(rows: list[dict], n_train: int, n_test: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The train and test slices, each in the file's order; no entity word of the test slice is in the train one."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    test = sorted(order[:n_test])
    held = set().union(*(entity_words(rows[i]) for i in test))
    train = sorted([i for i in order[n_test:] if not entity_words(rows[i]) & held][:n_train])
    if len(train) < n_train:
        raise SystemExit(f"only {len(train)} rows share no entity with the test slice; ask for fewer")
    return [rows[i] for i in train], [rows[i] for i in test]


def write(path: Path, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="KLUE-RE's train.csv")
    parser.add_argument("--out", type=Path, default=Path("data/sample"))
    parser.add_argument("--train", dest="n_train", type=int, default=2000)
    parser.add_argument("--test", dest="n_test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with open(args.train, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows, fields = list(reader), reader.fieldnames
    train, test = cut(rows, args.n_train, args.n_test, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "train.csv", train, fields)
    write(args.out / "test_data.csv", test, fields)
    print(f"{args.out}: {len(train)} train rows, {len(test)} labelled test rows (seed {args.seed})")


if __name__ == "__main__":
    main()
