"""Load → validate → clean in one call, with the ledger and a data fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..core.errors import PipelineError
from ..core.labels import LabelSet
from ..core.typed_config import choice, option
from .audit import Ledger
from .clean import CleanConfig, clean_examples
from .io import END_OFFSETS, ReadOptions, check_labels, infer_label_set, read_examples, require_labels
from .schema import Example

COMPETITION_TEST_LABEL = "100"  # the competition's test file marks every label unknown with 100


@dataclass
class DataConfig:
    """Where the data is and how to read it."""

    train: str = option("data/raw/train.csv", "competition CSV, KLUE JSON (.json/.jsonl), or hub:klue/re:train")
    test: str | None = option("data/raw/test_data.csv", "the test file to predict (null: no submission)")
    labels: str = option(
        "auto",
        "auto (the competition's order when every label is a KLUE-RE label) | klue | data | path/to/labels.json",
    )
    no_relation: str | None = option(
        None, "the no-relation class (null: no_relation, 관계없음 or 관계_없음 when present)"
    )
    end_offsets: str = option("auto", "inclusive | exclusive | auto (detected per file)")
    unlabelled_values: list[str] = option(help="label cells that mean unlabelled", factory=lambda: ["100", ""])
    sample_overrides: list[str] = option(
        help="section.key=value settings for runs on the embedded sample (no data/raw/train.csv and no --data), "
        "under any --set of the same key: a smaller setting that keeps the first `make train` short",
        factory=list,
    )

    def __post_init__(self) -> None:
        choice("data.end_offsets", self.end_offsets, END_OFFSETS)


@dataclass
class LoadedData:
    """Loaded rows, their ledger and label set. `test_labels`: the label cells a test file carried (then ignored
    for prediction); `test_gold`: id -> label of its rows whose cell is a label, not an unlabelled value."""

    examples: list[Example]
    ledger: Ledger
    label_set: LabelSet
    fingerprint: str
    test_labels: frozenset[str] = field(default_factory=frozenset)
    test_gold: dict[str, str] = field(default_factory=dict)


def load_data(
    path: str | Path,
    read: ReadOptions | None = None,
    clean: CleanConfig | None = None,
    labels: str | LabelSet = "auto",
    no_relation: str | None = None,
    test: bool = False,
    label_rules: bool = True,
) -> LoadedData:
    """Read a file, clean it, check its labels. Unlabelled files skip label rules and deduplication; in a
    labelled file, a row without a label is quarantined.

    `test`: ids must be unique, and labels a test file carries are ignored (noted in the ledger, kept in
    `test_labels` and `test_gold` to score the submission with), so every row is kept and predicted.
    `label_rules=False`: the rules that read the gold label are left to the caller (`clean.apply_label_rules`).
    """
    read = read or ReadOptions()
    clean = clean or CleanConfig()
    examples, ledger = read_examples(path, replace(read, unlabelled_values=(), unique_ids=True) if test else read)
    cells = frozenset(ex.label for ex in examples if ex.label is not None) if test else frozenset()
    gold = {}
    if test:
        gold = {ex.id: ex.label for ex in examples if ex.label not in (None, *read.unlabelled_values)}
        if gold:
            ledger.note(f"test file carries {len(gold)} labels; prediction ignores them, scoring reads them")
        examples = [ex.with_(label=None) for ex in examples]
    labelled = any(ex.label is not None for ex in examples)
    if labelled:
        examples = require_labels(examples, ledger)
    examples = clean_examples(examples, ledger, clean, labelled=labelled, label_rules=label_rules)
    if isinstance(labels, LabelSet):
        label_set = labels
    else:
        label_set = infer_label_set(examples, labels, no_relation, ledger)
    examples = check_labels(examples, label_set, ledger)
    settings = {
        "read": asdict(read),
        "clean": asdict(clean),
        "labels": label_set.to_dict(),
        "label_rules": label_rules,
    }
    return LoadedData(examples, ledger, label_set, fingerprint(examples, settings), cells, gold)


def check_test_labels(label_set: LabelSet, test: LoadedData, unlabelled_values: list[str]) -> None:
    """Refuse a label set whose submission cannot answer `test`: the competition's test file (labels 100) needs
    the 30 KLUE-RE labels, and labels a test file carries must be in the set."""
    carried = sorted(test.test_labels - set(unlabelled_values))
    klue = LabelSet.klue()
    if not carried and COMPETITION_TEST_LABEL in test.test_labels and label_set != klue:
        raise PipelineError(
            f"{test.ledger.source}: label {COMPETITION_TEST_LABEL} marks the competition's test file, which needs the "
            f"{len(klue)} KLUE-RE labels, but the train label set {label_set.name!r} has {len(label_set)} labels: "
            f"fix the train labels (see the label-set note of the train summary), or set data.labels: data "
            f"to submit {len(label_set)} labels anyway"
        )
    missing = [label for label in carried if label not in label_set]
    if missing:
        raise PipelineError(
            f"{test.ledger.source}: the test file carries labels the train label set lacks: "
            f"{', '.join(map(repr, missing))}; set data.labels to a label file that has them"
        )


def fingerprint(examples: list[Example], settings: dict) -> str:
    """SHA-256 (first 16 hex digits) of the loaded rows and the settings that produced them."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str).encode())
    for ex in examples:
        rec = ex.to_record()
        digest.update(json.dumps([rec[k] for k in sorted(rec) if k != "row"], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def read_options(data: DataConfig) -> ReadOptions:
    """Reader settings from the `data` section of a config."""
    return ReadOptions(end_offsets=data.end_offsets, unlabelled_values=tuple(data.unlabelled_values))


def load_configured(
    path: str | Path, data: DataConfig, clean: CleanConfig, labels: LabelSet | None = None, label_rules: bool = True
) -> LoadedData:
    """`load_data` with a config's `data` and `clean` sections; a fixed label set marks a test file."""
    test = labels is not None
    return load_data(path, read_options(data), clean, labels or data.labels, data.no_relation, test, label_rules)
