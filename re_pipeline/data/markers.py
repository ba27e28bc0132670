"""Input formats: how the two entities are shown to the encoder.

Examples for subject 비틀즈 (ORG) and object 조지 해리슨 (PER) in "조지 해리슨이 쓰고 비틀즈가 부른":

| format | marked sentence | added special tokens |
|---|---|---|
| `entity_mask` | `[OBJ-PER]이 쓰고 [SUBJ-ORG]가 부른` | `[SUBJ-<type>]`, `[OBJ-<type>]` |
| `entity_marker` | `[E2] 조지 해리슨 [/E2]이 쓰고 [E1] 비틀즈 [/E1]가 부른` | `[E1] [/E1] [E2] [/E2]` |
| `entity_marker_punct` | `# 조지 해리슨 #이 쓰고 @ 비틀즈 @가 부른` | none |
| `typed_entity_marker` | `<O:PER> 조지 해리슨 </O:PER>이 쓰고 <S:ORG> 비틀즈 </S:ORG>가 부른` | `<S:t> </S:t> <O:t> </O:t>` per type |
| `typed_entity_marker_punct` (default; Zhou & Chen 2021) | `# ^ PER ^ 조지 해리슨 #이 쓰고 @ * ORG * 비틀즈 @가 부른` | none |
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

from collections.abc import Iterable
from dataclasses import dataclass, field
from string import Formatter

from ..errors import PipelineError
from .particles import attach
from .schema import Example

FORMATS = (
    "entity_mask",
    "entity_marker",
    "entity_marker_punct",
    "typed_entity_marker",
    "typed_entity_marker_punct",
    "baseline",
)
TYPE_LANGUAGES = ("en", "ko")
KO_TYPE_NAMES = {"PER": "사람", "ORG": "단체", "LOC": "장소", "DAT": "날짜", "POH": "기타", "NOH": "수량"}
QUERY_FIELDS = ("subject", "object", "subject_type", "object_type")
PARTICLES = ("이", "가", "은", "는", "을", "를", "와", "과", "으로", "로", "의")
_ROLES = ("subject", "object")


@dataclass
class MarkerConfig:
    """How entities are marked; see the module docstring for the formats."""

    format: str = "typed_entity_marker_punct"
    type_language: str = "en"  # "en" | "ko"
    type_names: dict[str, str] = field(default_factory=dict)  # overrides, e.g. {"PER": "인물"}
    query: str | None = None  # e.g. "{subject}{와} {object}{의} 관계", or None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise PipelineError(f"markers.format {self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.type_language not in TYPE_LANGUAGES:
            raise PipelineError(
                f"markers.type_language {self.type_language!r}: choose one of {', '.join(TYPE_LANGUAGES)}"
            )
        if self.query is not None:
            if self.format == "baseline":
                raise PipelineError(
                    "markers.query cannot be used with format 'baseline' (both fill the first segment)"
                )
            render_query(self.query, dict.fromkeys(QUERY_FIELDS, "값"))

    def type_name(self, type_: str) -> str:
        default = KO_TYPE_NAMES.get(type_, type_) if self.type_language == "ko" else type_
        return self.type_names.get(type_, default)


@dataclass(frozen=True)
class Marked:
    """A marked sentence. Spans are character offsets in `text`, start inclusive, end exclusive.

    `subject`/`object`: the entity word itself (for `entity_mask`, its type token);
    `*_marker_start`/`*_marker_end`: where the opening marker begins and the closing marker
    ends (equal to the word's span ends when there is no marker).
    """

    text: str
    first: str | None
    subject: tuple[int, int]
    object: tuple[int, int]
    subject_marker_start: int
    object_marker_start: int
    subject_marker_end: int
    object_marker_end: int


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


def _wrap(fmt: str, role: str, type_name: str, word: str) -> tuple[str, str, str]:
    """(opening marker, shown entity, closing marker) for one entity."""
    subj = role == "subject"
    if fmt == "entity_mask":
        return "", f"[{'SUBJ' if subj else 'OBJ'}-{type_name}]", ""
    if fmt == "entity_marker":
        n = 1 if subj else 2
        return f"[E{n}] ", word, f" [/E{n}]"
    if fmt == "entity_marker_punct":
        c = "@" if subj else "#"
        return f"{c} ", word, f" {c}"
    if fmt == "typed_entity_marker":
        tag = f"{'S' if subj else 'O'}:{type_name}"
        return f"<{tag}> ", word, f" </{tag}>"
    if fmt == "typed_entity_marker_punct":
        c, t = ("@", "*") if subj else ("#", "^")
        return f"{c} {t} {type_name} {t} ", word, f" {c}"
    return "", word, ""  # baseline


def mark(example: Example, config: MarkerConfig, sep: str = "</s>") -> Marked:
    """Mark `example` per `config`; `sep` joins the baseline's first segment (the tokenizer's sep token)."""
    entities = {"subject": example.subject, "object": example.object}
    s, o = example.subject, example.object
    if not (s.end < o.start or o.end < s.start):
        raise PipelineError(f"example {example.id}: subject and object overlap; no format can mark them")
    sentence, text, pos = example.sentence, "", 0
    spans: dict[str, tuple[int, int, int, int]] = {}  # role -> (marker start, word start, word end, marker end)
    for role in sorted(_ROLES, key=lambda r: entities[r].start):
        ent = entities[role]
        opening, shown, closing = _wrap(config.format, role, config.type_name(ent.type), ent.word)
        text += sentence[pos : ent.start]
        if opening and text and not text[-1].isspace():
            text += " "
        marker_start = len(text)
        text += opening
        word_start = len(text)
        text += shown
        word_end = len(text)
        text += closing
        spans[role] = (marker_start, word_start, word_end, len(text))
        pos = ent.end + 1
    text += sentence[pos:]
    if config.format == "baseline":
        first = f"{s.word}{sep}{o.word}"
    elif config.query is not None:
        names = {"subject_type": config.type_name(s.type), "object_type": config.type_name(o.type)}
        first = render_query(config.query, {"subject": s.word, "object": o.word, **names})
    else:
        first = None
    (sm, sa, sb, se), (om, oa, ob, oe) = spans["subject"], spans["object"]
    return Marked(text, first, (sa, sb), (oa, ob), sm, om, se, oe)


def added_tokens(config: MarkerConfig, entity_types: Iterable[str]) -> list[str]:
    """The special tokens `config.format` needs for these entity types, in a fixed order."""
    names = sorted({config.type_name(t) for t in entity_types})
    if config.format == "entity_mask":
        return [f"[{role}-{n}]" for role in ("SUBJ", "OBJ") for n in names]
    if config.format == "entity_marker":
        return ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    if config.format == "typed_entity_marker":
        return [tag for r in ("S", "O") for n in names for tag in (f"<{r}:{n}>", f"</{r}:{n}>")]
    return []
