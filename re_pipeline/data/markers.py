"""Input formats: how the two entities are shown to the encoder.

Examples for subject 비틀즈 (ORG) and object 조지 해리슨 (PER) in "조지 해리슨이 쓰고 비틀즈가 부른":

| format | marked sentence | added special tokens |
|---|---|---|
| `entity_mask` | `[OBJ-PER]이 쓰고 [SUBJ-ORG]가 부른` | `[SUBJ-<type>]`, `[OBJ-<type>]` |
| `entity_marker` | `[E2] 조지 해리슨 [/E2]이 쓰고 [E1] 비틀즈 [/E1]가 부른` | `[E1] [/E1] [E2] [/E2]` |
| `entity_marker_punct` (default) | `# 조지 해리슨 #이 쓰고 @ 비틀즈 @가 부른` | none |
| `entity_tag` (the 1st-place team's) | `<obj> 조지 해리슨 </obj>이 쓰고 <subj> 비틀즈 </subj>가 부른` | `<subj> </subj> <obj> </obj>` |
| `typed_entity_marker` | `<O:PER> 조지 해리슨 </O:PER>이 쓰고 <S:ORG> 비틀즈 </S:ORG>가 부른` | `<S:t> </S:t> <O:t> </O:t>` per type |
| `typed_entity_marker_punct` (Zhou & Chen 2021) | `# ^ PER ^ 조지 해리슨 #이 쓰고 @ * ORG * 비틀즈 @가 부른` | none |
| `baseline` (the competition's) | the plain sentence, after a first segment `비틀즈</s>조지 해리슨` | none |

Markers are separated from the entity word by one space on each side, and an opening marker
that would touch the preceding text gets a space before it, so the word is always a whole
pre-tokenizer word; nothing is inserted after a closing marker (`@가`). Type names are the
raw types (`type_language="en"`) or Korean (`"ko"`: PER 사람, ORG 단체, LOC 장소, DAT 날짜,
POH 기타, NOH 수량); `type_names` overrides either, and an unknown type shows as itself.

`query` (optional, not with `baseline`) is a template rendered as the first segment, e.g.
`"{subject}{와} {object}{의} 관계"` → `비틀즈와 조지 해리슨의 관계`. Slots: `{subject}`,
`{object}`, `{subject_type}`, `{object_type}` (type names), and particles `{이} {가} {은}
{는} {을} {를} {와} {과} {으로} {로}`, each picking the form that fits the text before it
(`particles.attach`), and `{의}`, which is invariant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from string import Formatter

from ..core.errors import PipelineError
from ..core.typed_config import choice, option
from .particles import attach
from .schema import Example


@dataclass(frozen=True)
class MarkerFormat:
    """One input format. `wrap(is_subject, type_name, word)` gives (opening marker, shown entity, closing
    marker); `tokens(type_names)` the special tokens the format adds; `first_segment`: the entity words
    fill a first segment (the competition's baseline)."""

    wrap: Callable[[bool, str, str], tuple[str, str, str]]
    tokens: Callable[[list[str]], list[str]] = lambda names: []
    first_segment: bool = False


def _mask_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    return "", f"[{'SUBJ' if subj else 'OBJ'}-{type_name}]", ""


def _marker_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    n = 1 if subj else 2
    return f"[E{n}] ", word, f" [/E{n}]"


def _punct_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    c = "@" if subj else "#"
    return f"{c} ", word, f" {c}"


def _tag_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    tag = "subj" if subj else "obj"
    return f"<{tag}> ", word, f" </{tag}>"


def _typed_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    tag = f"{'S' if subj else 'O'}:{type_name}"
    return f"<{tag}> ", word, f" </{tag}>"


def _typed_punct_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    c, t = ("@", "*") if subj else ("#", "^")
    return f"{c} {t} {type_name} {t} ", word, f" {c}"


def _plain_wrap(subj: bool, type_name: str, word: str) -> tuple[str, str, str]:
    return "", word, ""


FORMATS: dict[str, MarkerFormat] = {
    "entity_mask": MarkerFormat(_mask_wrap, lambda names: [f"[{r}-{n}]" for r in ("SUBJ", "OBJ") for n in names]),
    "entity_marker": MarkerFormat(_marker_wrap, lambda names: ["[E1]", "[/E1]", "[E2]", "[/E2]"]),
    "entity_marker_punct": MarkerFormat(_punct_wrap),
    "entity_tag": MarkerFormat(_tag_wrap, lambda names: ["<subj>", "</subj>", "<obj>", "</obj>"]),
    "typed_entity_marker": MarkerFormat(
        _typed_wrap, lambda names: [tag for r in ("S", "O") for n in names for tag in (f"<{r}:{n}>", f"</{r}:{n}>")]
    ),
    "typed_entity_marker_punct": MarkerFormat(_typed_punct_wrap),
    "baseline": MarkerFormat(_plain_wrap, first_segment=True),
}
TYPE_LANGUAGES = ("en", "ko")
KO_TYPE_NAMES = {"PER": "사람", "ORG": "단체", "LOC": "장소", "DAT": "날짜", "POH": "기타", "NOH": "수량"}
QUERY_FIELDS = ("subject", "object", "subject_type", "object_type")
PARTICLES = ("이", "가", "은", "는", "을", "를", "와", "과", "으로", "로", "의")
_ROLES = ("subject", "object")


@dataclass
class MarkerConfig:
    """How entities are marked; see the module docstring for the formats."""

    format: str = option("entity_marker_punct", "input format: " + " | ".join(FORMATS))
    type_language: str = option("en", "type names: en (PER, ORG, ...) | ko (사람, 단체, 장소, 날짜, 수량, 기타)")
    type_names: dict[str, str] = option(help="type name overrides, e.g. {PER: 인물}", factory=dict)
    query: str | None = option(None, 'a question prefix as first segment, e.g. "{subject}{와} {object}{의} 관계"')
    morphemes: bool = option(
        False, "a space at each Korean morpheme boundary (Kiwi) outside the entities: 이순신은 -> 이순신 은"
    )

    def __post_init__(self) -> None:
        choice("markers.format", self.format, FORMATS)
        choice("markers.type_language", self.type_language, TYPE_LANGUAGES)
        if self.query is not None:
            if FORMATS[self.format].first_segment:
                raise PipelineError(
                    f"markers.query cannot be used with format {self.format!r} (both fill the first segment)"
                )
            render_query(self.query, dict.fromkeys(QUERY_FIELDS, "값"))

    def type_name(self, type_: str) -> str:
        default = KO_TYPE_NAMES.get(type_, type_) if self.type_language == "ko" else type_
        return self.type_names.get(type_, default)


@dataclass(frozen=True)
class MarkedSpan:
    """Where one entity sits in a marked text (character offsets, end exclusive): the opening marker starts
    at `marker_start`, the shown entity (the word, or the type token of `entity_mask`) is `start:end`, the
    closing marker ends at `marker_end` (equal to the entity's ends when there is no marker)."""

    marker_start: int
    start: int
    end: int
    marker_end: int


@dataclass(frozen=True)
class Marked:
    """A marked sentence, its optional first segment (query or baseline), and the two entities' spans."""

    text: str
    first: str | None
    subject: MarkedSpan
    object: MarkedSpan


def render_query(template: str, values: dict[str, str]) -> str:
    """Fill a query template; particle slots attach to the text rendered so far."""
    out = ""
    for literal, name, _, _ in Formatter().parse(template):
        out += literal
        if name is None:
            continue
        if name in values:
            out += values[name]
        elif name in PARTICLES:
            if not out.strip():
                raise PipelineError(f"markers.query {template!r}: particle {{{name}}} needs a word before it")
            out = out + "의" if name == "의" else attach(out, name)
        else:
            raise PipelineError(
                f"markers.query {template!r}: unknown slot {{{name}}}; use {', '.join(QUERY_FIELDS + PARTICLES)}"
            )
    return out


def mark(example: Example, config: MarkerConfig, sep: str = "</s>") -> Marked:
    """Mark `example` per `config`; `sep` joins the baseline's first segment (the tokenizer's sep token)."""
    entities = {"subject": example.subject, "object": example.object}
    s, o = example.subject, example.object
    if not (s.end < o.start or o.end < s.start):
        raise PipelineError(f"example {example.id}: subject and object overlap; no format can mark them")
    fmt = FORMATS[config.format]
    sentence, text, pos = example.sentence, "", 0
    spans: dict[str, MarkedSpan] = {}
    for role in sorted(_ROLES, key=lambda r: entities[r].start):
        ent = entities[role]
        opening, shown, closing = fmt.wrap(role == "subject", config.type_name(ent.type), ent.word)
        text += sentence[pos : ent.start]
        if opening and text and not text[-1].isspace():
            text += " "
        marker_start = len(text)
        text += opening
        word_start = len(text)
        text += shown
        word_end = len(text)
        text += closing
        spans[role] = MarkedSpan(marker_start, word_start, word_end, len(text))
        pos = ent.end + 1
    text += sentence[pos:]
    if fmt.first_segment:
        first = f"{s.word}{sep}{o.word}"
    elif config.query is not None:
        names = {"subject_type": config.type_name(s.type), "object_type": config.type_name(o.type)}
        first = render_query(config.query, {"subject": s.word, "object": o.word, **names})
    else:
        first = None
    return Marked(text, first, spans["subject"], spans["object"])


def added_tokens(config: MarkerConfig, entity_types: Iterable[str]) -> list[str]:
    """The special tokens `config.format` needs for these entity types, in a fixed order."""
    return FORMATS[config.format].tokens(sorted({config.type_name(t) for t in entity_types}))
