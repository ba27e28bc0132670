"""Label sets: the competition's fixed 30-label order, or a set read from the data.

The competition order is the single source of truth for the `probs` column of a
submission; it ships as `resources/klue_re_labels.json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

from .errors import PipelineError

NO_RELATION_NAMES = ("no_relation", "관계없음", "관계_없음", "관계 없음")


@dataclass(frozen=True)
class LabelSet:
    """An ordered list of relation names; index 0 is always the no-relation class."""

    names: tuple[str, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise PipelineError(f"label set {self.name!r} repeats a label")
        if len(self.names) < 2:
            raise PipelineError(f"label set {self.name!r} needs at least two labels")

    @property
    def no_relation(self) -> str:
        return self.names[0]

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    @cached_property
    def _index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def id(self, label: str) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise PipelineError(f"unknown label {label!r} for label set {self.name!r}") from None

    def ids(self, labels: Iterable[str]) -> list[int]:
        index = self._index
        return [index[label] for label in labels]

    def to_dict(self) -> dict:
        return {"name": self.name, "no_relation": self.no_relation, "labels": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict) -> LabelSet:
        names = tuple(data["labels"])
        if names[0] != data.get("no_relation", names[0]):
            raise PipelineError("the no-relation label must come first in a label file")
        return cls(names, data.get("name", "custom"))

    @classmethod
    def klue(cls) -> LabelSet:
        """The competition's 30 labels in its `dict_label_to_num` order."""
        text = resources.files("re_pipeline.resources").joinpath("klue_re_labels.json").read_text("utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_labels(cls, labels: Iterable[str], no_relation: str | None = None) -> LabelSet:
        """Read a label set from data: the no-relation class first, the rest sorted.

        `no_relation=None` picks the first of NO_RELATION_NAMES present in the data.
        """
        present = sorted(set(labels))
        if no_relation is None:
            found = [n for n in NO_RELATION_NAMES if n in present]
            if not found:
                raise PipelineError(
                    f"no no-relation class found among the labels (looked for {', '.join(NO_RELATION_NAMES)}); "
                    "set data.no_relation in the config"
                )
            no_relation = found[0]
        rest = [n for n in present if n != no_relation]
        return cls((no_relation, *rest), "from-data")


def resolve_label_set(spec: str, labels: Iterable[str], no_relation: str | None = None) -> LabelSet:
    """`klue` for the competition order, `data` to read the labels, or a path to a label JSON."""
    if spec == "klue":
        return LabelSet.klue()
    if spec == "data":
        return LabelSet.from_labels(labels, no_relation)
    try:
        with open(spec, encoding="utf-8") as fh:
            return LabelSet.from_dict(json.load(fh))
    except FileNotFoundError:
        raise PipelineError(f"label set {spec!r}: use 'klue', 'data' or a path to a label JSON file") from None
