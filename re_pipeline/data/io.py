"""Readers for KLUE-RE style data: competition CSV, KLUE JSON, and the `klue`/`re` hub dataset.

Every reader turns its rows into the same raw layout and hands them to `build_examples`,
which parses entities tolerantly, repairs what it can (with audit records in the
`Ledger`) and quarantines what it cannot. Nothing is dropped silently.
"""

from __future__ import annotations

import ast
import csv
import difflib
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from ..core.errors import PipelineError
from ..core.io_utils import atomic_write
from ..core.labels import LabelSet, resolve_label_set
from .audit import Ledger
from .schema import Entity, Example

# Column -> the header names read as it, matched ignoring case and outer spaces, inner spaces and hyphens as "_".
COLUMNS = {
    "id": ("id", "guid"),
    "sentence": ("sentence",),
    "subject_entity": ("subject_entity", "subject", "subj", "subj_entity"),
    "object_entity": ("object_entity", "object", "obj", "obj_entity"),
    "label": ("label", "relation"),
    "source": ("source",),
    "parent_id": ("parent_id",),
    "method": ("method",),
}
REQUIRED = ("sentence", "subject_entity", "object_entity")
END_OFFSETS = ("inclusive", "exclusive", "auto")
# `data.labels: auto` keeps the competition's labels when at least this share of the labelled rows carries them
# (the other rows, typos such as `Per:Title`, are quarantined); below it, a team's own label set is read from the data.
KLUE_SHARE = 0.95
WORD_KEYS = ("word", "text")
TYPE_KEYS = ("type", "entity_type", "label")
QUOTES = "'\"‘’“”"


@dataclass
class ReadOptions:
    """How to read a file. `end_offsets` is `inclusive`, `exclusive` or `auto` (detected per file)."""

    end_offsets: str = "auto"
    unlabelled_values: tuple[str, ...] = ("100", "")
    label_names: tuple[str, ...] | None = None  # for integer labels in JSON
    unique_ids: bool = False  # a test file: a repeated id is an error, not a renamed row


@dataclass
class RawRow:
    """A data row before parsing: entity fields may be dict strings or dicts."""

    row: int
    id: str | None
    sentence: object
    subject: object
    object: object
    label: object
    source: str = ""
    raw: dict = field(default_factory=dict)
    parent_id: str | None = None
    method: str | None = None


def read_examples(path: str | Path, options: ReadOptions | None = None) -> tuple[list[Example], Ledger]:
    """Read a CSV or KLUE JSON file (chosen by suffix), or `hub:klue/re:SPLIT`."""
    options = options or ReadOptions()
    spec = str(path)
    if spec.startswith("hub:"):
        rows, ledger = read_hub_rows(spec)
    else:
        path = Path(path)
        if not path.exists():
            raise PipelineError(f"data file not found: {path}")
        reader = read_json_rows if path.suffix.lower() in (".json", ".jsonl") else read_csv_rows
        rows, ledger = reader(path)
    if not rows:
        raise PipelineError(f"{spec}: no data rows")
    return build_examples(rows, ledger, options), ledger


def read_text(path: Path) -> str:
    """A UTF-8 file's text (BOM dropped); a non-UTF-8 file is an error naming the line and a likely encoding."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        try:
            data.decode("cp949")
            hint = "; it reads as cp949 (EUC-KR, Korean Windows)"
        except UnicodeDecodeError:
            hint = ""
        raise PipelineError(
            f"{path}: not UTF-8 text (bad byte on line {line}{hint}); re-save the file as UTF-8"
        ) from None


def read_csv_rows(path: Path) -> tuple[list[RawRow], Ledger]:
    """Competition-style CSV: dict-string entities, any extra or unnamed index columns."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    records, line = [], 1
    try:
        header = reader.fieldnames or []
        for rec in reader:
            if (None in rec or None in rec.values()) and any("\n" in str(v) for v in rec.values()):
                raise PipelineError(
                    f"{path}: broken quoting: a quoted field opened on line {line + 1} is not closed "
                    f"and swallows the lines up to line {reader.line_num}; fix its quotes"
                )
            records.append(rec)
            line = reader.line_num
    except csv.Error as exc:
        raise PipelineError(f"{path}: broken CSV on line {reader.line_num} ({exc})") from None
    if not header:
        raise PipelineError(f"{path}: empty file (no header row)")
    if len(header) == 1 and "\t" in header[0]:
        raise PipelineError(f"{path}: the file is tab-separated; the reader expects comma-separated CSV: re-save it")
    ledger = Ledger(str(path), rows_read=len(records))
    columns = map_columns(header, path, ledger)
    return [_raw_row(i, rec, columns) for i, rec in enumerate(records)], ledger


def header_key(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def map_columns(header: list[str], where, ledger: Ledger) -> dict[str, str]:
    """Column -> the file's header for it. Notes each header read under another name and each ignored one;
    refuses a file without the REQUIRED columns, listing the names it accepts, and two headers for one column."""
    aliases = {alias: column for column, names in COLUMNS.items() for alias in names}
    found: dict[str, str] = {}
    for name in header:
        column = aliases.get(header_key(name or ""))
        if column in found:
            raise PipelineError(f"{where}: columns {found[column]!r} and {name!r} both name {column}; keep one")
        if column is not None:
            found[column] = name
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        named = {c: f"{c} (or {', '.join(COLUMNS[c][1:])})" if COLUMNS[c][1:] else c for c in COLUMNS}
        raise PipelineError(
            f"{where}: missing column(s) {', '.join(missing)}; expected {', '.join(named[c] for c in REQUIRED)} "
            f"and optionally {named['id']}, {named['label']}; found {', '.join(header) or 'none'}"
        )
    for column, name in found.items():
        if name != column:
            ledger.note(f"column {name!r} read as {column!r}")
    ignored = [name if name else "(unnamed index)" for name in header if name not in found.values()]
    if ignored:
        ledger.note(f"ignored column(s): {', '.join(ignored)}")
    if "id" not in found:
        ledger.note("no id column: ids are the row numbers")
    return found


def _raw_row(i: int, rec: dict, columns: dict[str, str]) -> RawRow:
    """A CSV or JSON record as a RawRow, its fields read through `columns` (see `map_columns`)."""
    get = {column: rec.get(name) for column, name in columns.items()}.get
    return RawRow(
        row=i,
        id=get("id") if "id" in columns else str(i),
        sentence=get("sentence"),
        subject=get("subject_entity"),
        object=get("object_entity"),
        label=get("label"),
        source=str(get("source") or ""),
        raw=rec,
        parent_id=get("parent_id") or None,
        method=get("method") or None,
    )


def read_json_rows(path: Path) -> tuple[list[RawRow], Ledger]:
    """KLUE JSON: a list of objects (or JSON lines) with guid, sentence, entity objects, label."""
    text = read_text(path)
    try:
        if path.suffix.lower() == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}: invalid JSON ({exc})") from None
    if isinstance(records, dict):
        records = records.get("data", records.get("examples"))
    if not isinstance(records, list):
        raise PipelineError(f"{path}: expected a JSON list of examples")
    bad = next((i for i, rec in enumerate(records) if not isinstance(rec, dict)), None)
    if bad is not None:
        raise PipelineError(f"{path}: example {bad} is a {type(records[bad]).__name__}, not an object")
    ledger = Ledger(str(path), rows_read=len(records))
    columns = map_columns(list(dict.fromkeys(key for rec in records for key in rec)), path, ledger)
    return [_raw_row(i, rec, columns) for i, rec in enumerate(records)], ledger


def read_hub_rows(spec: str) -> tuple[list[RawRow], Ledger]:
    """`hub:klue/re:train` through `datasets.load_dataset` (needs the hub or a local cache)."""
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 and parts[1] else "klue/re"
    split = parts[2] if len(parts) > 2 else "train"
    try:
        ds = (
            datasets.load_dataset(*name.split("/", 1), split=split)
            if "/" in name
            else datasets.load_dataset(name, split=split)
        )
    except Exception as exc:  # offline, unknown name, missing cache: all end the same way for the user
        raise PipelineError(
            f"cannot load {name!r} ({split}) from the Hugging Face hub ({type(exc).__name__}); "
            "when offline, download the KLUE-RE files once and set data.train / data.test to the CSV or JSON path"
        ) from None
    names = ds.features["label"].names if hasattr(ds.features.get("label"), "names") else None
    ledger = Ledger(spec, rows_read=len(ds))
    columns = map_columns(ds.column_names, spec, ledger)
    rows = []
    for i, rec in enumerate(ds):
        row = _raw_row(i, rec, columns)
        if names is not None and isinstance(row.label, int):
            row.label = names[row.label]
        rows.append(row)
    return rows, ledger


def build_examples(rows: list[RawRow], ledger: Ledger, options: ReadOptions) -> list[Example]:
    """Parse raw rows into Examples; repairs and quarantines go to the ledger."""
    conventions: Counter = Counter()
    parsed = [_parse_row(r, ledger, options, conventions) for r in rows]
    parsed = [p for p in parsed if p is not None]
    if options.unique_ids:
        _refuse_repeated_ids(rows, ledger.source)
    for convention, n in conventions.items():
        ledger.note(f"{convention} ({n} entities)")
    exclusive = _detect_exclusive(parsed, options.end_offsets)
    if exclusive and options.end_offsets == "auto":
        ledger.note("end offsets look exclusive in this file (sentence[start:end] == word): converted to inclusive")
    examples = []
    seen_ids: dict[str, int] = {}
    for raw, sentence, subj, obj, label in parsed:
        if exclusive:
            subj = _to_inclusive(raw, "subject", subj, ledger)
            obj = _to_inclusive(raw, "object", obj, ledger)
        ex_id = raw.id
        if ex_id in seen_ids:
            seen_ids[ex_id] += 1
            new_id = f"{ex_id}~{seen_ids[ex_id]}"
            ledger.repair(raw.row, ex_id, "duplicate_id", "id", ex_id, new_id)
            ex_id = new_id
        else:
            seen_ids[ex_id] = 1
        examples.append(Example(ex_id, sentence, subj, obj, label, raw.source, raw.row, raw.parent_id, raw.method))
    return examples


def _refuse_repeated_ids(rows: list[RawRow], source: str) -> None:
    """A test file's ids name its submission rows: a repeated id is an error naming it and its rows (from 1)."""
    where = defaultdict(list)
    for raw in rows:
        where[raw.id].append(raw.row + 1)
    repeated = [f"{id_!r} (rows {_and(found)})" for id_, found in where.items() if len(found) > 1]
    if repeated:
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise PipelineError(f"{source}: test ids must be unique; repeated: {', '.join(repeated[:5])}{more}")


def _and(items: list) -> str:
    return ", ".join(map(str, items[:-1])) + f" and {items[-1]}"


def _parse_row(raw: RawRow, ledger: Ledger, options: ReadOptions, conventions: Counter):
    """One row to (raw, sentence, subject, object, label), or None after quarantining it."""
    if raw.id is None or str(raw.id).strip() == "":
        raw.id = str(raw.row)
        ledger.repair(raw.row, raw.id, "missing_id", "id", "", raw.id)
    raw.id = str(raw.id).strip()
    sentence = raw.sentence
    if not isinstance(sentence, str) or not sentence.strip():
        ledger.quarantine(raw.row, raw.id, "empty_sentence", "sentence is empty or missing", raw.raw)
        return None
    entities = []
    for role, value in (("subject", raw.subject), ("object", raw.object)):
        try:
            entities.append(_parse_entity(value, raw, role, ledger, conventions))
        except ValueError as exc:
            ledger.quarantine(raw.row, raw.id, "bad_entity", f"{role}_entity: {exc}", raw.raw)
            return None
    label = _parse_label(raw.label, options)
    if label is _BAD_LABEL:
        ledger.quarantine(raw.row, raw.id, "bad_label", f"label {raw.label!r} is not in the label names", raw.raw)
        return None
    return raw, sentence, entities[0], entities[1], label


_BAD_LABEL = object()


def _parse_label(value, options: ReadOptions):
    if value is None:
        return None
    if isinstance(value, bool):
        return _BAD_LABEL
    if isinstance(value, int):
        if options.label_names is None:
            return str(value) if str(value) not in options.unlabelled_values else None
        return options.label_names[value] if 0 <= value < len(options.label_names) else _BAD_LABEL
    text = str(value).strip()
    return None if text in options.unlabelled_values else text


def _parse_entity(value, raw: RawRow, role: str, ledger: Ledger, conventions: Counter) -> Entity:
    """A dict or dict string to an Entity (offsets as given; convention fixed later).

    Typographic quotes are a repair of the row; other key names and offsets stored as
    strings are reading conventions, counted per file in `conventions`.
    """
    if isinstance(value, str):
        data = _literal_dict(value)
        if data is None:
            data = _tolerant_dict(value)
            if data is None:
                raise ValueError(f"not a dict literal: {value[:120]!r}")
            ledger.repair(
                raw.row, raw.id, "entity_quotes", f"{role}_entity", value, json.dumps(data, ensure_ascii=False)
            )
    elif isinstance(value, dict):
        data = value
    else:
        raise ValueError("missing")
    word_key = next((k for k in WORD_KEYS if k in data), None)
    type_key = next((k for k in TYPE_KEYS if k in data), None)
    if word_key is None or type_key is None or "start_idx" not in data or "end_idx" not in data:
        raise ValueError(f"needs word, start_idx, end_idx and type keys; has {', '.join(map(str, data))}")
    if (word_key, type_key) != ("word", "type"):
        conventions[f"entity keys {word_key!r}/{type_key!r} read as 'word'/'type'"] += 1
    start, end = data["start_idx"], data["end_idx"]
    if not all(type(v) is int for v in (start, end)):
        try:
            start, end = int(str(start).strip()), int(str(end).strip())
        except ValueError:
            raise ValueError(f"offsets are not integers: {data['start_idx']!r}, {data['end_idx']!r}") from None
        conventions["offsets stored as strings read as integers"] += 1
    word, etype = data[word_key], data[type_key]
    if not isinstance(word, str) or not word or not isinstance(etype, str) or not etype.strip():
        raise ValueError("word and type must be non-empty strings")
    if etype.strip().upper() != etype:  # `org` and `ORG` are one type (and one type-pair head)
        ledger.repair(raw.row, raw.id, "type_case", f"{role}_entity.type", etype, etype.strip().upper())
    return Entity(word, start, end, etype.strip().upper())


def _literal_dict(text: str) -> dict | None:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


_Q = f"[{QUOTES}]"
_PAIR = re.compile(
    rf"{_Q}(?P<key>\w+){_Q}\s*:\s*(?:(?P<num>-?\d+)|{_Q}(?P<str>.*?){_Q})\s*(?=,\s*{_Q}\w+{_Q}\s*:|\}}\s*$)",
    re.S,
)


def _tolerant_dict(text: str) -> dict | None:
    """Parse `{'k': 'v', 'n': 1}` written with typographic quotes. Values stay plain strings/ints.

    Anything besides such pairs (an expression, a call) rejects the whole text.
    """
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")) or not re.fullmatch(r"[{}\s,]*", _PAIR.sub("", text)):
        return None
    pairs = {m["key"]: (int(m["num"]) if m["num"] is not None else m["str"]) for m in _PAIR.finditer(text)}
    return pairs or None


def _detect_exclusive(parsed, mode: str) -> bool:
    if mode in ("inclusive", "exclusive"):
        return mode == "exclusive"
    if mode != "auto":
        raise PipelineError(f"end_offsets must be one of {', '.join(END_OFFSETS)}, not {mode!r}")
    inclusive = exclusive = 0
    for _, sentence, *entities, _ in parsed:
        for e in entities:
            inclusive += sentence[e.start : e.end + 1] == e.word
            exclusive += sentence[e.start : e.end] == e.word
    return exclusive > inclusive


def _to_inclusive(raw: RawRow, role: str, entity: Entity, ledger: Ledger) -> Entity:
    fixed = Entity(entity.word, entity.start, entity.end - 1, entity.type)
    ledger.repair(raw.row, raw.id, "exclusive_end", f"{role}_entity.end_idx", entity.end, fixed.end)
    return fixed


def infer_label_set(
    examples: list[Example], spec: str = "auto", no_relation: str | None = None, ledger: Ledger | None = None
) -> LabelSet:
    """`auto`: the competition's labels when at least KLUE_SHARE of the labelled rows carry them, else the labels
    read from the data; the choice and its reason are a note in `ledger`."""
    labels = Counter(ex.label for ex in examples if ex.label is not None)
    if spec != "auto":
        return resolve_label_set(spec, labels, no_relation)
    klue = LabelSet.klue()
    others = sum(n for label, n in labels.items() if label not in klue)
    share = 1 - others / max(1, labels.total())
    label_set = klue if share >= KLUE_SHARE else resolve_label_set("data", labels, no_relation)
    if ledger is not None and labels:
        why = f"data.labels: auto: {share:.1%} of the labelled rows carry KLUE-RE labels"
        if label_set is klue:
            rest = (
                f"; {others} row{' with another label is' if others == 1 else 's with other labels are'} quarantined"
            )
            ledger.note(f"label set {klue.name!r} ({len(klue)} labels), chosen by {why}{rest if others else ''}")
        else:
            ledger.note(
                f"label set {label_set.name!r} ({len(label_set)} labels) read from the data, chosen by {why} "
                f"(below {KLUE_SHARE:.0%}); set data.labels: klue for the competition's {len(klue)} labels"
            )
    return label_set


def check_labels(examples: list[Example], label_set: LabelSet, ledger: Ledger) -> list[Example]:
    """Quarantine rows whose label is not in the label set, naming the closest label when one is close."""
    kept = []
    for ex in examples:
        if ex.label is not None and ex.label not in label_set:
            close = difflib.get_close_matches(ex.label.lower(), label_set.names, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            reason = f"label {ex.label!r} is not in label set {label_set.name!r}{hint}"
            ledger.quarantine(ex.row, ex.id, "unknown_label", reason, ex.to_record())
        else:
            kept.append(ex)
    return kept


def require_labels(examples: list[Example], ledger: Ledger) -> list[Example]:
    """In a labelled file, quarantine the rows without a label (a blank cell, or an unlabelled value such as 100)."""
    for ex in examples:
        if ex.label is None:
            reason = "no label (a blank cell or an unlabelled value such as 100) in a file whose rows are labelled"
            ledger.quarantine(ex.row, ex.id, "missing_label", reason, ex.to_record())
    return [ex for ex in examples if ex.label is not None]


def row_ids(examples: list[Example], ledger: Ledger) -> list[str]:
    """Every row's id in file order, kept or removed: the rows a submission answers."""
    ids = {ex.row: ex.id for ex in examples} | {r.row: r.id for r in ledger.removals}
    return [ids[row] for row in sorted(ids)]


def write_examples_csv(path: str | Path, examples: list[Example]) -> Path:
    """Write examples in the competition CSV layout (plus parent_id/method when any row is augmented)."""
    columns = ["id", "sentence", "subject_entity", "object_entity", "label", "source"]
    augmented = any(ex.parent_id for ex in examples)
    if augmented:
        columns += ["parent_id", "method"]
    with atomic_write(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for ex in examples:
            row = [
                ex.id,
                ex.sentence,
                str(ex.subject.to_dict()),
                str(ex.object.to_dict()),
                ex.label if ex.label is not None else "100",
                ex.source,
            ]
            writer.writerow(row + ([ex.parent_id or "", ex.method or ""] if augmented else []))
    return Path(path)
