"""Validation splits: the entity split keeps every validation entity word and pair out of training, every
scheme gives the asked fraction, k folds validate each row once, and the pipeline never validates an
augmented row or relabels a validation row."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter

import numpy as np
import pytest
from conftest import write_csv
from test_pipeline import TINY_MODEL

from re_pipeline.config import load_config
from re_pipeline.data.sample import write_sample
from re_pipeline.data.schema import Entity, Example
from re_pipeline.data.split import SPLITS, split_rows
from re_pipeline.pipeline import run_pipeline

NAMES = [f"이름{i}" for i in range(60)]
PLACES = [f"장소{i}" for i in range(25)]


def corpus(n: int = 600, seed: int = 0) -> list[Example]:
    """Rows over a small vocabulary of entity words, so words and sentences repeat across rows."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        subj, obj = rng.choice(NAMES), rng.choice(PLACES)
        sentence = f"{subj}은 {obj}에서 {rng.randint(0, 40)}번 일했다."
        s, o = sentence.index(subj), sentence.index(obj)
        label = rng.choice(["no_relation", "per:employee_of", "per:place_of_residence"])
        rows.append(
            Example(
                str(i),
                sentence,
                Entity(subj, s, s + len(subj) - 1, "PER"),
                Entity(obj, o, o + len(obj) - 1, "LOC"),
                label,
            )
        )
    return rows


def words(rows):
    return {e.word for ex in rows for e in (ex.subject, ex.object)}


@pytest.mark.parametrize("scheme", SPLITS)
def test_every_scheme_validates_about_the_asked_fraction_and_keeps_sides_apart(scheme):
    rows = corpus()
    (fold,) = split_rows(rows, scheme, "holdout", 0.2, 5, seed=1)
    assert not set(fold.train) & set(fold.val) and len(fold.train) + len(fold.val) <= len(rows)
    assert 0.17 <= len(fold.val) / len(rows) <= 0.3, len(fold.val)
    if scheme == "random":
        assert len(fold.val) == round(0.2 * len(rows)) and fold.left_out(len(rows)) == 0


def test_the_entity_split_keeps_validation_words_pairs_and_sentences_out_of_training():
    rows = corpus()
    (fold,) = split_rows(rows, "entity", "holdout", 0.2, 5, seed=3)
    train, val = [rows[i] for i in fold.train], [rows[i] for i in fold.val]
    pairs = {(ex.subject.word, ex.object.word) for ex in train}
    assert not any((ex.subject.word, ex.object.word) in pairs for ex in val)
    held_out = words(val) - words(train)
    assert all(ex.subject.word in held_out or ex.object.word in held_out for ex in val)  # each uses an unseen word
    assert not {ex.sentence for ex in val} & {ex.sentence for ex in train}


def test_a_row_sharing_a_sentence_with_a_validation_row_is_left_out():
    rows = corpus(300)
    (fold,) = split_rows(rows, "entity", "holdout", 0.2, 5, seed=0)
    first = fold.val[0]
    a, b = sorted(words([rows[i] for i in fold.train]))[:2]  # two words training rows use
    sentence = rows[first].sentence + f" {a}와 {b}도 있었다."
    twin = Example(
        "twin",
        sentence,
        Entity(a, sentence.index(a), sentence.index(a) + len(a) - 1, "PER"),
        Entity(b, sentence.rindex(b), sentence.rindex(b) + len(b) - 1, "PER"),
        "no_relation",
    )
    rows = [r.with_(sentence=sentence) if i == first else r for i, r in enumerate(rows)] + [twin]
    (again,) = split_rows(rows, "entity", "holdout", 0.2, 5, seed=0)
    assert first in again.val and len(rows) - 1 not in again.val  # the twin uses no held-out word...
    assert len(rows) - 1 not in again.train and again.left_out(len(rows)) == 1  # ...but shares a validated sentence


def test_a_random_split_repeats_pairs_the_entity_split_never_does():
    rows = corpus()
    seen = {}
    for scheme in ("random", "entity"):
        (fold,) = split_rows(rows, scheme, "holdout", 0.2, 5, seed=0)
        pairs = {(rows[i].subject.word, rows[i].object.word) for i in fold.train}
        seen[scheme] = np.mean([(rows[i].subject.word, rows[i].object.word) in pairs for i in fold.val])
    assert seen["random"] > 0.15 and seen["entity"] == 0  # 60 x 25 pairs over 600 rows: some repeat


@pytest.mark.parametrize("scheme", SPLITS)
def test_k_folds_validate_every_row_once(scheme):
    rows = corpus()
    folds = split_rows(rows, scheme, "kfold", 0.2, 4, seed=0)
    counts = Counter(i for fold in folds for i in fold.val)
    assert len(folds) == 4 and set(counts.values()) == {1} and len(counts) == len(rows)
    for fold in folds:
        assert not set(fold.train) & set(fold.val)
        if scheme == "entity":
            train_words = words([rows[i] for i in fold.train])
            assert all(
                rows[i].subject.word not in train_words or rows[i].object.word not in train_words for i in fold.val
            )


def test_no_validation_is_one_fold_of_everything():
    (fold,) = split_rows(corpus(50), "entity", "none", 0.2, 5, seed=0)
    assert len(fold.train) == 50 and len(fold.val) == 0


def test_augmented_rows_are_never_validated_and_label_rules_touch_training_rows_only(tmp_path):
    train_csv, test_csv = write_sample(tmp_path / "sample", n_train=120, n_test=10)
    rows = list(csv.DictReader(open(train_csv, encoding="utf-8")))
    for row in rows:  # every per:* row gets an ORG subject: type_from_label would set it back to PER
        if row["label"].startswith("per:"):
            row["subject_entity"] = row["subject_entity"].replace("'PER'", "'ORG'")
    write_csv(train_csv, rows)
    tiny = [
        *TINY_MODEL,
        "train.max_steps=2",
        "train.batch_size=16",
        "train.split=entity",
        "clean.type_from_label=true",
        "augment.methods=[{name: aeda, prob: 0.3}]",
        f"data.train={train_csv}",
        f"data.test={test_csv}",
    ]
    run = run_pipeline(
        load_config(None, tiny), tmp_path / "run", tmp_path / "subs", log=lambda m: None, cache=tmp_path / "c"
    )
    result = json.loads((run / "result.json").read_text())
    fold = result["folds"]["fold0"]
    meta = json.loads((run / "oof_ids.json").read_text())
    validated = {i for i, row in zip(meta["ids"], np.load(run / "oof_probs.npy")) if not np.isnan(row).any()}
    assert fold["augment"]["aeda"]["children"] > 0 and validated
    assert not any("-aug-" in i for i in meta["ids"])  # children exist only inside the fold's training rows
    assert len(validated) == fold["rows"]["validation"]
    per_rows = {row["id"] for row in rows if row["label"].startswith("per:")}
    trained = len(per_rows) - len(per_rows & validated) - fold["rows"]["left_out"]
    assert fold["label_rules"].get("type_from_label", 0) >= trained > 0  # relabelled in training...
    assert "type_from_label" not in result["ledgers"]["train"]["rules"]  # ...never before the split
    assert "metrics_reweighted" in result and (run / "shift.json").exists()
