"""Input formats: exact marked text, spans of the entity words, type names, query templates."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import SAMPLE, entity
from hypothesis import given, settings
from hypothesis import strategies as st

from re_pipeline.core.errors import PipelineError
from re_pipeline.data.markers import FORMATS, Marked, MarkerConfig, added_tokens, mark
from re_pipeline.data.schema import Entity, Example

TYPES = ("PER", "ORG", "LOC", "DAT", "POH", "NOH")
KO = {"PER": "사람", "ORG": "단체", "LOC": "장소", "DAT": "날짜", "POH": "기타", "NOH": "수량"}
QUERIES = (None, "{subject}{와} {object}{의} 관계", "{object}{은} {subject}{의} {object_type}")
# (opening, closing) for subject and object, from the spec; {t} is the type name
MARKERS = {
    "entity_mask": (("", ""), ("", "")),
    "entity_marker": (("[E1] ", " [/E1]"), ("[E2] ", " [/E2]")),
    "entity_marker_punct": (("@ ", " @"), ("# ", " #")),
    "entity_tag": (("<subj> ", " </subj>"), ("<obj> ", " </obj>")),
    "typed_entity_marker": (("<S:{t}> ", " </S:{t}>"), ("<O:{t}> ", " </O:{t}>")),
    "typed_entity_marker_punct": (("@ * {t} * ", " @"), ("# ^ {t} ^ ", " #")),
    "baseline": (("", ""), ("", "")),
}
# a Hangul sample the generated sentences draw from (test_features trains its tokenizer on it)
SYLLABLES = "".join(chr(0xAC00 + i) for i in range(0, 11172, 53))
PUNCT = "(《'\""


def make_example(
    sentence: str, subject: tuple, object_: tuple, label: str | None = "no_relation", id_: str = "0"
) -> Example:
    """`subject`/`object_`: (word, type) or (word, type, occurrence)."""

    def ent(word: str, type_: str, occurrence: int = 0) -> Entity:
        found = entity(word, sentence, type_, occurrence)
        return Entity(word, found["start_idx"], found["end_idx"], type_)

    return Example(id_, sentence, ent(*subject), ent(*object_), label)


def sample_examples() -> list[Example]:
    return [make_example(s, subj, obj, label, str(i)) for i, (s, subj, obj, label) in enumerate(SAMPLE)]


def check_marked(ex: Example, m: Marked, config: MarkerConfig) -> None:
    """The spec, independently of the implementation: exact spans, markers, the rest of the sentence kept."""
    text, rebuilt, pos = m.text, "", 0
    roles = sorted(("subject", "object"), key=lambda r: getattr(ex, r).start)
    for role in roles:
        ent = getattr(ex, role)
        name = config.type_names.get(
            ent.type, KO.get(ent.type, ent.type) if config.type_language == "ko" else ent.type
        )
        opening, closing = (x.format(t=name) for x in MARKERS[config.format][role == "object"])
        span = getattr(m, role)
        start, end, marker_start, marker_end = span.start, span.end, span.marker_start, span.marker_end
        shown = f"[{'SUBJ' if role == 'subject' else 'OBJ'}-{name}]" if config.format == "entity_mask" else ent.word
        assert text[start:end] == shown
        assert (text[marker_start:start], text[end:marker_end]) == (opening, closing)
        assert marker_start == 0 or not opening or text[marker_start - 1].isspace()
        before = text[pos:marker_start]
        assert before in (ex.sentence[len(rebuilt) : ent.start], ex.sentence[len(rebuilt) : ent.start] + " ")
        rebuilt += ex.sentence[len(rebuilt) : ent.start] + ent.word
        pos = marker_end
    assert rebuilt + text[pos:] == ex.sentence
    if config.format == "baseline":
        assert m.first == f"{ex.subject.word}</s>{ex.object.word}"
    elif config.query is None:
        assert m.first is None
    else:
        assert m.first and "{" not in m.first and ex.subject.word in m.first


GOLDEN = {  # SAMPLE[0]: subject 비틀즈 (ORG), object 조지 해리슨 (PER)
    "entity_mask": "〈Something〉는 [OBJ-PER]이 쓰고 [SUBJ-ORG]가 1969년",
    "entity_marker": "〈Something〉는 [E2] 조지 해리슨 [/E2]이 쓰고 [E1] 비틀즈 [/E1]가 1969년",
    "entity_marker_punct": "〈Something〉는 # 조지 해리슨 #이 쓰고 @ 비틀즈 @가 1969년",
    "entity_tag": "〈Something〉는 <obj> 조지 해리슨 </obj>이 쓰고 <subj> 비틀즈 </subj>가 1969년",
    "typed_entity_marker": "〈Something〉는 <O:PER> 조지 해리슨 </O:PER>이 쓰고 <S:ORG> 비틀즈 </S:ORG>가 1969년",
    "typed_entity_marker_punct": "〈Something〉는 # ^ PER ^ 조지 해리슨 #이 쓰고 @ * ORG * 비틀즈 @가 1969년",
    "baseline": "〈Something〉는 조지 해리슨이 쓰고 비틀즈가 1969년",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden_text(fmt):
    m = mark(sample_examples()[0], MarkerConfig(fmt))
    assert m.text.startswith(GOLDEN[fmt]) and m.text.endswith(" 앨범 《Abbey Road》에 담은 노래다.")


def test_korean_type_names_and_overrides():
    ex = sample_examples()[0]
    typed = MarkerConfig("typed_entity_marker_punct", type_language="ko")
    assert "# ^ 사람 ^ 조지 해리슨 #이 쓰고 @ * 단체 * 비틀즈 @가" in mark(ex, typed).text
    config = MarkerConfig("typed_entity_marker", "ko", {"PER": "인물"})
    assert "<O:인물> 조지 해리슨 </O:인물>이 쓰고 <S:단체> 비틀즈 </S:단체>가" in mark(ex, config).text
    assert (
        "[SUBJ-MISC]"
        in mark(ex.with_(subject=replace(ex.subject, type="MISC")), MarkerConfig("entity_mask", "ko")).text
    )
    assert mark(ex, MarkerConfig("baseline")).first == "비틀즈</s>조지 해리슨"
    assert mark(ex, MarkerConfig("baseline"), sep="[SEP]").first == "비틀즈[SEP]조지 해리슨"


@pytest.mark.parametrize(
    "template, subject, object_, expected",
    [
        ("{subject}{와} {object}{의} 관계", "비틀즈", "조지 해리슨", "비틀즈와 조지 해리슨의 관계"),
        ("{subject}{과} {object}{의} 관계", "비틀즈", "조지 해리슨", "비틀즈와 조지 해리슨의 관계"),
        ("{object}{이} {subject}{를} 만들었다", "비틀즈", "조지 해리슨", "조지 해리슨이 비틀즈를 만들었다"),
        ("{subject}{은} {object}{으로} 갔다", "김철수", "서울", "김철수는 서울로 갔다"),
        ("{subject}{는} {object}{로} 갔다", "삼성전자", "부산", "삼성전자는 부산으로 갔다"),
        ("{subject}{은} {subject_type}, {object}{은} {object_type}", "이순신", "서울", "이순신은 사람, 서울은 장소"),
        ("《{subject}》{을} 보라", "Abbey Road", "서울", "《Abbey Road》를 보라"),
    ],
)
def test_query_particles(template, subject, object_, expected):
    sentence = f"{subject} 그리고 {object_}"
    ex = make_example(sentence, (subject, "PER"), (object_, "LOC"))
    m = mark(ex, MarkerConfig(type_language="ko", query=template))
    assert m.first == expected
    check_marked(ex, m, MarkerConfig(type_language="ko", query=template))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "entity_markers"}, "typed_entity_marker_punct"),
        ({"type_language": "jp"}, "en, ko"),
        ({"query": "{subject}{와} {obj}"}, "unknown slot {obj}"),
        ({"query": "{와} {object}"}, "needs a word before it"),
        ({"query": "{subject}", "format": "baseline"}, "cannot be used with format 'baseline'"),
    ],
)
def test_invalid_config(kwargs, message):
    with pytest.raises(PipelineError, match=message.replace("{", r"\{").replace("}", r"\}")):
        MarkerConfig(**kwargs)


def test_added_tokens():
    types = ["PER", "ORG", "PER"]
    assert added_tokens(MarkerConfig("entity_mask"), types) == ["[SUBJ-ORG]", "[SUBJ-PER]", "[OBJ-ORG]", "[OBJ-PER]"]
    assert added_tokens(MarkerConfig("entity_marker"), types) == ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    assert added_tokens(MarkerConfig("entity_tag"), types) == ["<subj>", "</subj>", "<obj>", "</obj>"]
    assert added_tokens(MarkerConfig("typed_entity_marker", "ko"), types) == [
        "<S:단체>", "</S:단체>", "<S:사람>", "</S:사람>", "<O:단체>", "</O:단체>", "<O:사람>", "</O:사람>"
    ]  # fmt: skip
    for fmt in ("entity_marker_punct", "typed_entity_marker_punct", "baseline"):
        assert added_tokens(MarkerConfig(fmt), types) == []


def test_opening_marker_never_touches_the_previous_character():
    ex = make_example("(주)삼성전자는 1969년1월에 세워졌다.", ("삼성전자", "ORG"), ("1월", "DAT"))
    typed = MarkerConfig("typed_entity_marker_punct")
    assert mark(ex, typed).text == "(주) @ * ORG * 삼성전자 @는 1969년 # ^ DAT ^ 1월 #에 세워졌다."
    adjacent = make_example("비틀즈조지", ("비틀즈", "ORG"), ("조지", "PER"))
    assert mark(adjacent, MarkerConfig("entity_marker")).text == "[E1] 비틀즈 [/E1] [E2] 조지 [/E2]"


def test_overlapping_entities_are_rejected():
    ex = make_example("서울대학교에서", ("서울대학교", "ORG"), ("서울", "LOC"))
    with pytest.raises(PipelineError, match="overlap"):
        mark(ex, MarkerConfig())


CONFIGS = [
    MarkerConfig(fmt, lang, {"NOH": "수"} if lang == "ko" else {}, query)
    for fmt in FORMATS
    for lang in ("en", "ko")
    for query in QUERIES
    if not (fmt == "baseline" and query)
]


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"{c.format}-{c.type_language}-{'query' if c.query else 'plain'}"
)
def test_every_format_on_fixtures(config):
    for ex in sample_examples():
        check_marked(ex, mark(ex, config), config)


@st.composite
def korean_examples(draw) -> Example:
    """Random Hangul words; each entity is one or two words, maybe glued to punctuation or a particle."""
    words = draw(st.lists(st.text(st.sampled_from(SYLLABLES), min_size=1, max_size=4), min_size=2, max_size=12))
    i, j = sorted(draw(st.lists(st.integers(0, len(words) - 1), min_size=2, max_size=2, unique=True)))
    ends = {i: min(i + draw(st.integers(1, 2)), j), j: min(j + draw(st.integers(1, 2)), len(words))}
    pieces, found, k = [], [], 0
    while k < len(words):
        if k not in ends:
            pieces.append(words[k])
            k += 1
            continue
        prefix, suffix = (
            draw(st.sampled_from(("", "", *PUNCT))),
            draw(st.sampled_from(("", "", "가", "는", "의", "에서", "》"))),
        )
        word = " ".join(words[k : ends[k]])
        start = len(" ".join(pieces)) + bool(pieces) + len(prefix)
        found.append(Entity(word, start, start + len(word) - 1, draw(st.sampled_from(TYPES))))
        pieces.append(prefix + word + suffix)
        k = ends[k]
    subject, object_ = found if draw(st.booleans()) else found[::-1]
    return Example("gen", " ".join(pieces) + ".", subject, object_, None)


configs = (
    st.tuples(st.sampled_from(list(FORMATS)), st.sampled_from(("en", "ko")), st.just({}), st.sampled_from(QUERIES))
    .filter(lambda args: not (args[0] == "baseline" and args[3]))
    .map(lambda args: MarkerConfig(*args))
)


@settings(max_examples=300, deadline=None)
@given(ex=korean_examples(), config=configs)
def test_generated_sentences(ex, config):
    assert ex.spans_ok()
    check_marked(ex, mark(ex, config), config)
