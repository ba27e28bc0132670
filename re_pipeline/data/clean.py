"""Noise correction: configurable rules, each writing audit records to the ledger.

Order: unicode -> offsets -> hand corrections -> entity type from label -> duplicates.
"""

from __future__ import annotations

import csv
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import PipelineError
from ..core.typed_config import choice, option
from .audit import Ledger
from .schema import Entity, Example

# Soft hyphen, zero-width space/joiners, word joiner, BOM, and other format characters.
INVISIBLE = {"\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u200e", "\u200f"}
CONFLICT_POLICIES = ("keep_first", "majority", "drop_all", "keep_all")
CORRECTABLE_FIELDS = ("label", "subject_type", "object_type")


@dataclass
class CleanConfig:
    """Which noise rules run. Each rule writes audit records for every row it changes."""

    unicode: bool = option(True, "NFC + invisible characters removed, offsets remapped")
    repair_offsets: bool = option(
        True, "move a wrong span to the nearest occurrence of its word; quarantine when absent"
    )
    type_from_label: bool = option(
        False,
        "training rows: per:* => PER subject, org:* => ORG subject (off: on real data the label was often wrong)",
    )
    label_subject_types: dict[str, str] = option(
        help="label prefix -> subject type, for type_from_label", factory=lambda: {"per": "PER", "org": "ORG"}
    )
    corrections: str | None = option(
        None, "CSV of hand fixes: id,field,old,new (fields: label, subject_type, object_type)"
    )
    drop_exact_duplicates: bool = option(True, "drop later rows with the same sentence, entities and label")
    conflict_policy: str = option(
        "keep_first", "same sentence and entities, different labels: keep_first | majority | drop_all | keep_all"
    )

    def __post_init__(self) -> None:
        choice("clean.conflict_policy", self.conflict_policy, CONFLICT_POLICIES)


def clean_examples(
    examples: list[Example], ledger: Ledger, config: CleanConfig, labelled: bool = True, label_rules: bool = True
) -> list[Example]:
    """Run the enabled rules. Unlabelled (test) data is never deduplicated or retyped from labels.
    `label_rules=False` leaves out the rules that read the gold label (type_from_label, label conflicts): the
    pipeline applies them to the training part of each split only (`apply_label_rules`), so they never
    rewrite a validation row."""
    out = []
    for ex in examples:
        if config.unicode:
            ex = normalise_unicode(ex, ledger)
        if config.repair_offsets:
            ex = repair_offsets(ex, ledger)
            if ex is None:
                continue
        elif not ex.spans_ok():
            ledger.quarantine(ex.row, ex.id, "span_mismatch", "entity offsets do not match the word", ex.to_record())
            continue
        if not (ex.subject.end < ex.object.start or ex.object.end < ex.subject.start):
            ledger.quarantine(
                ex.row,
                ex.id,
                "entities_overlap",
                "subject and object spans overlap; no input format can mark them",
                ex.to_record(),
            )
            continue
        out.append(ex)
    if config.corrections:
        out = apply_corrections(out, ledger, Path(config.corrections))
    if labelled and config.drop_exact_duplicates:
        out = drop_exact_duplicates(out, ledger)
    if labelled and label_rules:
        out = apply_label_rules(out, ledger, config)
    return out


def apply_label_rules(examples: list[Example], ledger: Ledger, config: CleanConfig) -> list[Example]:
    """The rules that read the gold label: subject type from the label, then conflicting labels."""
    if config.type_from_label:
        typed = [subject_type_from_label(ex, ledger, config.label_subject_types) for ex in examples]
        changed = sum(new is not old for new, old in zip(typed, examples))
        ledger.note(f"type_from_label changed the subject type of {changed} row(s) (see the audit)")
        examples = typed
    return resolve_conflicts(examples, ledger, config.conflict_policy)


def _strip_text(text: str) -> str:
    return unicodedata.normalize("NFC", "".join(ch for ch in text if ch not in INVISIBLE))


def _visible(text: str) -> str:
    """Show invisible and non-NFC characters as <U+XXXX> so an audit record reveals them."""
    return "".join(
        f"<U+{ord(ch):04X}>" if ch in INVISIBLE or unicodedata.normalize("NFC", ch) != ch else ch for ch in text
    )


def normalise_unicode(ex: Example, ledger: Ledger) -> Example:
    """NFC and invisible-character removal on the sentence and words, offsets remapped."""
    sentence = _strip_text(ex.sentence)
    if sentence == ex.sentence and all(_strip_text(e.word) == e.word for e in (ex.subject, ex.object)):
        return ex
    entities = []
    for role, e in (("subject", ex.subject), ("object", ex.object)):
        start = len(_strip_text(ex.sentence[: e.start]))
        end = len(_strip_text(ex.sentence[: e.end + 1])) - 1
        entities.append(Entity(_strip_text(e.word), start, end, e.type))
        if (start, end, entities[-1].word) != (e.start, e.end, e.word):
            ledger.repair(
                ex.row,
                ex.id,
                "unicode",
                f"{role}_entity",
                f"{e.word!r}@{e.start}-{e.end}",
                f"{entities[-1].word!r}@{start}-{end}",
            )
    if sentence != ex.sentence:
        ledger.repair(ex.row, ex.id, "unicode", "sentence", _visible(ex.sentence), sentence)
    return ex.with_(sentence=sentence, subject=entities[0], object=entities[1])


def repair_offsets(ex: Example, ledger: Ledger) -> Example | None:
    """Move a mismatched span to the nearest occurrence of its word; quarantine if none exists."""
    fixed = {}
    for role, e in (("subject", ex.subject), ("object", ex.object)):
        if e.span_ok(ex.sentence):
            fixed[role] = e
            continue
        found = _nearest_occurrence(ex.sentence, e)
        if found is None:
            ledger.quarantine(
                ex.row,
                ex.id,
                "span_not_found",
                f"{role} word {e.word!r} does not occur in the sentence",
                ex.to_record(),
            )
            return None
        ledger.repair(
            ex.row,
            ex.id,
            "offsets",
            f"{role}_entity",
            f"{e.word!r}@{e.start}-{e.end}",
            f"{found.word!r}@{found.start}-{found.end}",
        )
        fixed[role] = found
    return ex.with_(subject=fixed["subject"], object=fixed["object"])


def _nearest_occurrence(sentence: str, e: Entity) -> Entity | None:
    for word in dict.fromkeys((e.word, e.word.strip())):
        starts = [i for i in range(len(sentence)) if word and sentence.startswith(word, i)]
        if starts:
            start = min(starts, key=lambda i: (abs(i - e.start), i))
            return Entity(word, start, start + len(word) - 1, e.type)
    return None


def subject_type_from_label(ex: Example, ledger: Ledger, prefixes: dict[str, str]) -> Example:
    """`per:*` implies a PER subject, `org:*` an ORG subject (prefixes from config)."""
    prefix = (ex.label or "").split(":", 1)[0]
    want = prefixes.get(prefix) if ex.label and ":" in ex.label else None
    if want is None or ex.subject.type == want:
        return ex
    ledger.repair(ex.row, ex.id, "type_from_label", "subject_entity.type", ex.subject.type, want)
    return ex.with_(subject=Entity(ex.subject.word, ex.subject.start, ex.subject.end, want))


def read_corrections(path: Path) -> list[dict]:
    """A hand-corrections CSV with columns id, field, old, new."""
    if not path.exists():
        raise PipelineError(f"corrections file not found: {path}")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if set(reader.fieldnames or []) < {"id", "field", "old", "new"}:
            raise PipelineError(f"{path}: a corrections file needs the columns id, field, old, new")
        rows = list(reader)
    for i, row in enumerate(rows, start=2):
        if row["field"] not in CORRECTABLE_FIELDS:
            raise PipelineError(
                f"{path}:{i}: field {row['field']!r} cannot be corrected (use {', '.join(CORRECTABLE_FIELDS)})"
            )
    return rows


def apply_corrections(examples: list[Example], ledger: Ledger, path: Path) -> list[Example]:
    """Apply hand fixes; a fix whose `old` no longer matches is skipped and noted."""
    by_id = defaultdict(list)
    for fix in read_corrections(path):
        by_id[fix["id"].strip()].append(fix)
    known = {ex.id for ex in examples}
    for missing in sorted(set(by_id) - known):
        ledger.note(f"correction for unknown id {missing!r} skipped")
    out = []
    for ex in examples:
        for fix in by_id.get(ex.id, ()):
            current = _field(ex, fix["field"])
            if current != fix["old"]:
                ledger.note(
                    f"correction {fix['field']} of id {ex.id!r} skipped: value is {current!r}, not {fix['old']!r}"
                )
                continue
            ex = _set_field(ex, fix["field"], fix["new"])
            ledger.repair(ex.row, ex.id, "correction", fix["field"], fix["old"], fix["new"])
        out.append(ex)
    return out


def _field(ex: Example, name: str) -> str | None:
    return {"label": ex.label, "subject_type": ex.subject.type, "object_type": ex.object.type}[name]


def _set_field(ex: Example, name: str, value: str) -> Example:
    if name == "label":
        return ex.with_(label=value)
    role = name.split("_")[0]
    e = getattr(ex, role)
    return ex.with_(**{role: Entity(e.word, e.start, e.end, value)})


def _triple(ex: Example) -> tuple:
    return (ex.sentence, ex.subject, ex.object)


def drop_exact_duplicates(examples: list[Example], ledger: Ledger) -> list[Example]:
    """Later rows with the same sentence, entities and label are dropped."""
    first: dict[tuple, Example] = {}
    kept = []
    for ex in examples:
        key = (*_triple(ex), ex.label)
        if key in first:
            ledger.drop(ex.row, ex.id, "exact_duplicate", f"same as id {first[key].id}", ex.to_record())
        else:
            first[key] = ex
            kept.append(ex)
    return kept


def resolve_conflicts(examples: list[Example], ledger: Ledger, policy: str) -> list[Example]:
    """(sentence, subject, object) triples with conflicting labels, resolved by `policy`."""
    drop: set[int] = set()
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[_triple(ex)].append(i)
    for members in groups.values():
        labels = [examples[i].label for i in members]
        if policy == "keep_all" or len(set(labels)) < 2:
            continue
        if policy == "drop_all":
            keep_label = None
        elif policy == "majority":
            keep_label = Counter(labels).most_common(1)[0][0]  # ties: the first label seen
        else:
            keep_label = labels[0]
        kept_one = False
        for i in members:
            ex = examples[i]
            if ex.label == keep_label and not kept_one:
                kept_one = True
                continue
            drop.add(i)
            reason = (
                f"labels {sorted(set(labels), key=str)} conflict for one (sentence, subject, object); policy {policy}"
            )
            ledger.drop(ex.row, ex.id, "label_conflict", reason, ex.to_record())
    return [ex for i, ex in enumerate(examples) if i not in drop]
