"""Seeded augmentation of training examples: AEDA, word masking and deletion, entity swap, role swap.

Each method builds its child through edits that replace `sentence[a:b]` with new text and never
touch an entity (except the one `entity_swap` replaces); offsets are recomputed from the edits.
A child whose spans do not check is discarded and counted, never emitted. A child identical to
its parent or to an earlier sibling, or one a method cannot make (no free word, no candidate),
is skipped and counted. Children follow the originals, method by method.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import PipelineError
from ..core.typed_config import option
from .particles import attach, particle_after
from .schema import Entity, Example, edit

PUNCTUATION = (".", ",", "!", "?", ";", ":")
SYMMETRIC_LABELS = (
    "per:colleagues",
    "per:siblings",
    "per:spouse",
    "per:other_family",
    "org:alternate_names",
    "per:alternate_names",
)
# Particles that may follow a 와/과 or (으)로 inside the same word: 와의, 과는, 으로부터, 로서, 로써, 로도.
_STACKED = ("의", "는", "도", "부터", "서", "써")


@dataclass
class AugmentMethod:
    """One method. `prob`: per-word rate (AEDA: insertions up to `prob` × words); `copies`: children
    per parent; `labels`: only parents with these labels (None: all); `rate`: fraction of eligible
    parents augmented."""

    name: str = option(help="aeda | random_mask | random_delete | entity_swap | symmetric_swap")
    prob: float = option(0.1, "per-word rate (AEDA: insertions up to prob x words)")
    copies: int = option(1, "children per parent")
    labels: list[str] | None = option(None, "only parents with these labels (null: all)")
    rate: float = option(1.0, "share of eligible parents augmented")

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise PipelineError(f"augment method {self.name!r} is unknown; valid: {', '.join(METHODS)}")
        for key in ("prob", "rate"):
            if not 0 <= getattr(self, key) <= 1:
                raise PipelineError(f"augment {self.name}.{key} must be in [0, 1], not {getattr(self, key)!r}")
        if self.copies < 1:
            raise PipelineError(f"augment {self.name}.copies must be at least 1, not {self.copies!r}")


@dataclass
class AugmentConfig:
    """Methods to run (each at most once), the seed, the mask string, and the labels `symmetric_swap` may swap."""

    methods: list[AugmentMethod] = option(
        help="methods to run (each at most once), on training rows only, after the split; see configs/augment.yaml",
        factory=list,
    )
    seed: int = option(42, "seed of the augmentation")
    mask_token: str = option("<mask>", "the text random_mask puts in place of a word")
    symmetric_labels: list[str] = option(
        help="labels symmetric_swap may swap (subject and object exchanged)", factory=lambda: list(SYMMETRIC_LABELS)
    )

    def __post_init__(self) -> None:
        names = [m.name for m in self.methods]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PipelineError(f"augment methods listed more than once: {', '.join(repeated)}")
        if not self.mask_token.strip():
            raise PipelineError("augment.mask_token must not be blank")


def augment(examples: list[Example], config: AugmentConfig) -> tuple[list[Example], dict[str, dict[str, int]]]:
    """Originals followed by the children of each method, and per method {parents, children, discarded, skipped}.

    Only original rows (no `parent_id`) are parents. Deterministic for a given seed and input.
    """
    known = {ex.label for ex in examples}
    for method in config.methods:
        unknown = sorted(set(method.labels or ()) - known)
        if unknown:
            raise PipelineError(
                f"augment {method.name}.labels not in the data: {', '.join(unknown)}; known: {', '.join(sorted(map(str, known)))}"
            )
    context = Context(config, _mention_pool(examples))
    children: list[Example] = []
    summary: dict[str, dict[str, int]] = {}
    for method in config.methods:
        rng = random.Random(_seed(config.seed, method.name))
        eligible = [
            ex
            for ex in examples
            if ex.parent_id is None
            and (method.labels is None or ex.label in method.labels)
            and METHODS[method.name].eligible(ex, config)
        ]
        chosen = sorted(rng.sample(range(len(eligible)), round(method.rate * len(eligible))))
        counts = summary[method.name] = {"parents": len(chosen), "children": 0, "discarded": 0, "skipped": 0}
        for parent in (eligible[i] for i in chosen):
            seen = {_key(parent)}
            for k in range(method.copies):
                child = METHODS[method.name].make(parent, rng, method, context)
                if child is None or _key(child) in seen:
                    counts["skipped"] += 1
                elif not child.spans_ok():
                    counts["discarded"] += 1
                else:
                    seen.add(_key(child))
                    counts["children"] += 1
                    children.append(
                        child.with_(
                            id=f"{parent.id}-aug-{method.name}-{k}",
                            parent_id=parent.id,
                            method=method.name,
                            extra=dict(parent.extra),
                        )
                    )
    return list(examples) + children, summary


def summary_table(summary: dict[str, dict[str, int]]) -> list[dict]:
    """One row per method plus a total row, for printing."""
    rows = [{"method": name, **counts} for name, counts in summary.items()]
    total = {key: sum(row[key] for row in rows) for key in ("parents", "children", "discarded", "skipped")}
    return rows + [{"method": "total", **total}]


def _seed(seed: int, name: str) -> int:
    """A stable per-method seed (Python's `hash` of a str changes between runs)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")


def _key(ex: Example) -> tuple[str, Entity, Entity]:
    return ex.sentence, ex.subject, ex.object


def _hits(ex: Example, a: int, b: int) -> bool:
    """Whether replacing `sentence[a:b]` (or inserting at a, when a == b) would touch an entity."""
    return any(a <= ent.end and b > ent.start for ent in (ex.subject, ex.object))


def _words(ex: Example) -> list[tuple[int, int]]:
    """(start, stop) of each whitespace-separated word."""
    return [m.span() for m in re.finditer(r"\S+", ex.sentence)]


def _pick(rng: random.Random, items: list[int], prob: float) -> list[int]:
    """Each item with probability `prob`, and at least one unless `items` is empty."""
    chosen = [i for i in items if rng.random() < prob]
    return chosen or ([rng.choice(items)] if items else [])


def _aeda(ex: Example, rng: random.Random, prob: float) -> Example | None:
    """AEDA: 1..max(1, prob × words) punctuation marks, each inserted before a different word, outside the entities."""
    words = _words(ex)
    slots = [start for start, _ in words if not _hits(ex, start, start)]
    if not slots:
        return None
    count = min(rng.randint(1, max(1, int(prob * len(words)))), len(slots))
    return edit(ex, [(start, start, rng.choice(PUNCTUATION) + " ") for start in rng.sample(slots, count)])


def _mask(ex: Example, rng: random.Random, prob: float, mask_token: str) -> Example | None:
    """Each word that touches no entity becomes `mask_token` with probability `prob`."""
    words = _words(ex)
    free = [i for i, (a, b) in enumerate(words) if not _hits(ex, a, b)]
    return edit(ex, [(*words[i], mask_token) for i in _pick(rng, free, prob)]) if free else None


def _delete(ex: Example, rng: random.Random, prob: float) -> Example | None:
    """Each word that touches no entity is deleted, with the space after it (the last: before it), with probability `prob`."""
    words = _words(ex)
    free = [i for i, (a, b) in enumerate(words) if not _hits(ex, a, b)]
    if not free:
        return None
    spans = [
        (words[i][0], words[i + 1][0]) if i + 1 < len(words) else (words[i - 1][1], words[i][1])
        for i in _pick(rng, free, prob)
    ]
    merged: list[list[int]] = []
    for a, b in sorted(spans):  # the last word's span can overlap the one before it
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return edit(ex, [(a, b, "") for a, b in merged])


def _mention_pool(examples: list[Example]) -> dict[str, list[str]]:
    """Distinct entity words per entity type, sorted."""
    pool: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        for ent in (ex.subject, ex.object):
            pool[ent.type].add(ent.word)
    return {type_: sorted(words) for type_, words in pool.items()}


def _particle(sentence: str, end: int) -> str | None:
    """The particle right after an entity ending at `end`, if it ends the word or another particle
    stacks on it (와의, 으로부터); otherwise it is part of something else (서울이다, 국민은행)."""
    form = particle_after(sentence, end)
    rest = sentence[end + 1 + len(form or "") :]
    if form is None or not rest or not "가" <= rest[0] <= "힣":
        return form
    return form if form in ("와", "과", "로", "으로") and rest.startswith(_STACKED) else None


def _swap_entity(ex: Example, rng: random.Random, pool: dict[str, list[str]]) -> Example | None:
    """Replace the subject or the object (random order; the other if the first cannot be) with another
    mention of its type, re-attaching the particle after it (비틀즈가 → 조지 해리슨이)."""
    roles = ["subject", "object"]
    rng.shuffle(roles)
    for role in roles:
        ent, other = (ex.subject, ex.object) if role == "subject" else (ex.object, ex.subject)
        candidates, excluded = pool.get(ent.type, []), {ent.word, other.word}
        particle = _particle(ex.sentence, ent.end)
        stop = ent.end + 1 + len(particle or "")
        # The pool is distinct, so among any three candidates one is not excluded.
        if not any(w not in excluded for w in candidates[:3]) or (other.start < stop and other.end >= ent.start):
            continue
        word = rng.choice(candidates)
        while word in excluded:
            word = rng.choice(candidates)
        return edit(ex, [(ent.start, stop, attach(word, particle) if particle else word)], {role: word})
    return None


def _swap_roles(ex: Example) -> Example | None:
    """Subject and object exchange roles (the sentence is unchanged); only between entities of one type."""
    return ex.with_(subject=ex.object, object=ex.subject) if ex.subject.type == ex.object.type else None


@dataclass(frozen=True)
class Context:
    """What a method reads besides its parent: the config and the entity words seen per type."""

    config: AugmentConfig
    pool: dict[str, list[str]]


@dataclass(frozen=True)
class Method:
    """One augmentation: `make(parent, rng, method settings, context)` returns a child or None (cannot make
    one); `eligible(parent, config)` picks the parents it may augment."""

    make: Callable[[Example, random.Random, AugmentMethod, Context], Example | None]
    eligible: Callable[[Example, AugmentConfig], bool] = lambda ex, config: True


METHODS: dict[str, Method] = {
    "aeda": Method(lambda ex, rng, m, ctx: _aeda(ex, rng, m.prob)),
    "random_mask": Method(lambda ex, rng, m, ctx: _mask(ex, rng, m.prob, ctx.config.mask_token)),
    "random_delete": Method(lambda ex, rng, m, ctx: _delete(ex, rng, m.prob)),
    "entity_swap": Method(lambda ex, rng, m, ctx: _swap_entity(ex, rng, ctx.pool)),
    "symmetric_swap": Method(
        lambda ex, rng, m, ctx: _swap_roles(ex), lambda ex, config: ex.label in config.symmetric_labels
    ),
}
