"""Load → validate → clean in one call, with the ledger and a data fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..labels import LabelSet
from ..typed_config import option
from .audit import Ledger
from .clean import CleanConfig, clean_examples
from .io import ReadOptions, check_labels, infer_label_set, read_examples
from .schema import Example


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


@dataclass
class LoadedData:
    examples: list[Example]
    ledger: Ledger
    label_set: LabelSet
    fingerprint: str


def load_data(
    path: str | Path,
    read: ReadOptions | None = None,
    clean: CleanConfig | None = None,
    labels: str | LabelSet = "auto",
    no_relation: str | None = None,
    test: bool = False,
    label_rules: bool = True,
) -> LoadedData:
    """Read a file, clean it, check its labels. Unlabelled files skip label rules and deduplication.

    `test`: labels a test file carries are ignored (noted in the ledger), so every row is kept and predicted.
    `label_rules=False`: the rules that read the gold label are left to the caller (`clean.apply_label_rules`).
    """
    read = read or ReadOptions()
    clean = clean or CleanConfig()
    examples, ledger = read_examples(path, read)
    carried = sum(ex.label is not None for ex in examples) if test else 0
    if carried:
        ledger.note(f"test file carries {carried} labels; they are ignored")
        examples = [ex.with_(label=None) for ex in examples]
    labelled = any(ex.label is not None for ex in examples)
    examples = clean_examples(examples, ledger, clean, labelled=labelled, label_rules=label_rules)
    label_set = labels if isinstance(labels, LabelSet) else infer_label_set(examples, labels, no_relation)
    examples = check_labels(examples, label_set, ledger)
    settings = {
        "read": asdict(read),
        "clean": asdict(clean),
        "labels": label_set.to_dict(),
        "label_rules": label_rules,
    }
    return LoadedData(examples, ledger, label_set, fingerprint(examples, settings))


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
