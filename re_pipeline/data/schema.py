"""The typed in-memory representation every stage reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import datasets


@dataclass(frozen=True)
class Entity:
    """An entity mention; `end` is inclusive, as in KLUE-RE (`sentence[start:end + 1] == word`)."""

    word: str
    start: int
    end: int
    type: str

    def span_ok(self, sentence: str) -> bool:
        return 0 <= self.start <= self.end < len(sentence) and sentence[self.start : self.end + 1] == self.word

    def to_dict(self) -> dict:
        """The competition's dict-string layout."""
        return {"word": self.word, "start_idx": self.start, "end_idx": self.end, "type": self.type}


@dataclass(frozen=True)
class Example:
    """One relation instance. `row` is its position in the file it came from (0-based, data rows).

    `label` is None for unlabelled (test) rows. Augmented rows carry `parent_id` and `method`.
    """

    id: str
    sentence: str
    subject: Entity
    object: Entity
    label: str | None
    source: str = ""
    row: int = -1
    parent_id: str | None = None
    method: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def spans_ok(self) -> bool:
        return self.subject.span_ok(self.sentence) and self.object.span_ok(self.sentence)

    def with_(self, **changes) -> Example:
        return replace(self, **changes)

    def to_record(self) -> dict:
        """A flat, JSON-friendly record (the `datasets.Dataset` view uses the same columns)."""
        return {
            "id": self.id,
            "sentence": self.sentence,
            "subject_word": self.subject.word,
            "subject_start": self.subject.start,
            "subject_end": self.subject.end,
            "subject_type": self.subject.type,
            "object_word": self.object.word,
            "object_start": self.object.start,
            "object_end": self.object.end,
            "object_type": self.object.type,
            "label": self.label,
            "source": self.source,
            "row": self.row,
            "parent_id": self.parent_id,
            "method": self.method,
        }


Edit = tuple[int, int, str]  # replace sentence[a:b] with the text (a == b: insert before a)


def edit(ex: Example, edits: list[Edit], words: dict[str, str] | None = None) -> Example:
    """`ex` with non-overlapping `edits` applied; `words` renames a role whose entity an edit replaces from its start."""
    words = words or {}
    parts, pos = [], 0
    for a, b, text in sorted(edits):
        parts += [ex.sentence[pos:a], text]
        pos = b

    def moved(ent: Entity, role: str) -> Entity:
        start = ent.start + sum(len(text) - (b - a) for a, b, text in edits if b <= ent.start)
        word = words.get(role, ent.word)
        return Entity(word, start, start + len(word) - 1, ent.type)

    sentence = "".join(parts) + ex.sentence[pos:]
    return ex.with_(sentence=sentence, subject=moved(ex.subject, "subject"), object=moved(ex.object, "object"))


def to_dataset(examples: list[Example]):
    """A `datasets.Dataset` view with one column per field of `Example.to_record`."""
    records = [ex.to_record() for ex in examples]
    return datasets.Dataset.from_dict({k: [r[k] for r in records] for k in RECORD_COLUMNS})


RECORD_COLUMNS = tuple(Example("", "", Entity("", 0, 0, ""), Entity("", 0, 0, ""), None).to_record())
