"""Tokenized features: entity token positions checked by decoding, windowed truncation, labels."""

from __future__ import annotations

import pytest
from conftest import KLUE_TRAIN, needs_shared
from hypothesis import given, settings
from test_markers import CONFIGS, KO, PUNCT, SYLLABLES, TYPES, configs, korean_examples, make_example, sample_examples

from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.features import COLUMNS, add_pair_column, build_features, prepare_tokenizer, shared_head_rows
from re_pipeline.data.markers import FORMATS, MarkerConfig, mark
from re_pipeline.models.tokenizer import train_tokenizer

# every character the fixtures, generated sentences and markers use, so nothing decodes to <unk>
ALPHABET = (
    SYLLABLES
    + PUNCT
    + "".join(KO.values())
    + "".join(TYPES)
    + "@#*^[]<>/:-_.,0123456789 가는의에서》관계와과은을를으로수"
)


def trained_tokenizer(sentences: list[str], vocab_size: int):
    """A fast XLM-R-style tokenizer that knows every marker of every format."""
    tok = train_tokenizer(
        [*sentences, ALPHABET, *(mark(ex, c).text for ex in sample_examples() for c in CONFIGS)], vocab_size
    )
    for config in [*CONFIGS, *(MarkerConfig(fmt, "ko") for fmt in FORMATS)]:
        prepare_tokenizer(tok, config, TYPES)
    return tok


@pytest.fixture(scope="session")
def tok():
    return trained_tokenizer([s for ex in sample_examples() for s in (ex.sentence, ex.sentence)], 2000)


def failures(tok, examples, ds, config: MarkerConfig) -> list[str]:
    """Ids of examples whose token positions do not decode to exactly their marked text."""
    cols = ds.data.to_pydict()
    assert list(cols) == list(COLUMNS)
    checks, slices = [], []  # (id, expected, how) and the token ids to decode, in step
    for i, ex in enumerate(examples):
        m, ids, mask = mark(ex, config, tok.sep_token), cols["input_ids"][i], cols["entity_mask"][i]
        assert (cols["id"][i], cols["subject_type"][i], cols["object_type"][i]) == (
            ex.id,
            ex.subject.type,
            ex.object.type,
        )
        for role, code, start, end in (
            ("subject", 1, "subj_start", "subj_end"),
            ("object", 2, "obj_start", "obj_end"),
        ):
            span = getattr(m, role)
            a, b, marker_start = span.start, span.end, span.marker_start
            start, end = cols[start][i], cols[end][i]
            if config.format == "baseline":  # a plain sentence: a token may hold more than the word, even both words
                first, marked = start, [k for k, v in enumerate(mask) if v == code]
                assert (
                    marked == [k for k in range(first, end + 1) if mask[k] == code] and 0 not in mask[first : end + 1]
                )
                assert code == 2 or len(marked) == end - first + 1, ex.id  # the subject wins a shared token
                checks += [(ex.id, m.text[a:b], how) for how in ("covers", "not in", "not in", "nonempty")]
                slices += [ids[first : end + 1], ids[first + 1 : end + 1], ids[first:end], ids[first : first + 1]]
                continue
            first = mask.index(code)  # the entity word's first token
            assert mask.count(code) == end - first + 1 and set(mask[first : end + 1]) == {code}, ex.id
            checks += [
                (ex.id, m.text[a:b].strip(), "=="),
                (ex.id, m.text[marker_start:b].strip(), "=="),
                (ex.id, m.text[marker_start:], "head"),
            ]
            slices += [ids[first : end + 1], ids[start : end + 1], ids[start : start + 1]]
    decoded = tok.backend_tokenizer.decode_batch(slices, skip_special_tokens=False)  # no clean-up of spaces
    bad = []
    for (id_, expected, how), text in zip(checks, decoded):
        text = text.strip(" ▁")
        ok = {
            "==": text == expected,
            "head": bool(text) and expected.startswith(text),
            "covers": expected in text,
            "not in": expected not in text,
            "nonempty": bool(text),
        }[how]
        if not ok:
            bad.append(f"{id_}: {how} {expected!r} got {text!r}")
    return bad


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"{c.format}-{c.type_language}-{'query' if c.query else 'plain'}"
)
def test_every_format_on_fixtures(tok, config):
    examples = sample_examples()
    ds, stats = build_features(examples, tok, config, LabelSet.klue(), 256)
    assert failures(tok, examples, ds, config) == []
    assert stats == {
        "examples": 4,
        "truncated_window": 0,
        "two_windows": 0,
        "max_tokens": max(len(x) for x in ds["input_ids"]),
    }
    assert list(ds["labels"]) == LabelSet.klue().ids(ex.label for ex in examples)
    first = ds[0]["input_ids"]
    assert first[0] == tok.bos_token_id and first[-1] == tok.eos_token_id
    if config.format == "baseline" or config.query:
        assert first.count(tok.sep_token_id) == 3 + (config.format == "baseline")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bare_metaspace_token_is_never_an_entity_start(tok, fmt):
    sentence = f"{SYLLABLES[:3]} 그리고 {SYLLABLES[3:6]}."
    assert tok.tokenize(sentence)[:2] == ["▁", SYLLABLES[0]]  # the pre-tokenizer's "▁" on its own
    ex = make_example(sentence, (SYLLABLES[:3], "PER"), (SYLLABLES[3:6], "LOC"))
    ds, _ = build_features([ex], tok, MarkerConfig(fmt), None, 64)
    assert failures(tok, [ex], ds, MarkerConfig(fmt)) == []
    assert tok.convert_ids_to_tokens(ds[0]["input_ids"][ds[0]["subj_start"]]) != "▁"


def test_labels_missing_are_ignored(tok):
    examples = [ex.with_(label=None) if i == 1 else ex for i, ex in enumerate(sample_examples())]
    labels = LabelSet.klue()
    expected = [labels.id(ex.label) if ex.label else -100 for ex in examples]
    assert list(build_features(examples, tok, MarkerConfig(), labels, 64)[0]["labels"]) == expected
    assert list(build_features(examples, tok, MarkerConfig(), None, 64)[0]["labels"]) == [-100] * 4


def test_num_proc_gives_the_same_features(tok):
    examples = sample_examples() * 3
    one, _ = build_features(examples, tok, MarkerConfig(), None, 64)
    two, _ = build_features(examples, tok, MarkerConfig(), None, 64, num_proc=2)
    assert one.to_list() == two.to_list()


def test_prepare_tokenizer():
    tok = train_tokenizer([s for ex in sample_examples() for s in (ex.sentence, ex.sentence)], 300)
    size = len(tok)
    with pytest.raises(PipelineError, match="prepare_tokenizer"):
        build_features(sample_examples(), tok, MarkerConfig("entity_marker"), None, 64)
    assert prepare_tokenizer(tok, MarkerConfig("entity_marker"), TYPES) == 4
    assert prepare_tokenizer(tok, MarkerConfig("entity_marker"), TYPES) == 0
    assert prepare_tokenizer(tok, MarkerConfig("typed_entity_marker_punct"), TYPES) == 0
    assert prepare_tokenizer(tok, MarkerConfig("entity_mask", "ko"), ["PER", "ORG"]) == 4
    assert len(tok) == size + 8
    added = {t.content: t for t in tok.added_tokens_decoder.values()}
    assert all(
        added[t].special and not added[t].lstrip and not added[t].rstrip for t in ("[E1]", "[/E2]", "[SUBJ-사람]")
    )
    # an added token splits the text, and the Metaspace pre-tokenizer then prepends "▁" to what follows
    assert tok.tokenize("[/E1]가") == tok.tokenize("[/E1] 가")


def filler(n: int) -> str:
    return " ".join(SYLLABLES[k % 200 : k % 200 + 2] for k in range(n))


@pytest.mark.parametrize("query", [None, "{subject}{와} {object}{의} 관계"])
def test_window_keeps_both_entities_centered(tok, query):
    config = MarkerConfig("typed_entity_marker", query=query)
    sentence = f"{filler(60)} 비틀즈가 {filler(10)} 조지 해리슨을 {filler(100)}."
    long = make_example(sentence, ("비틀즈", "ORG"), ("조지 해리슨", "PER"), id_="long")
    examples = [*sample_examples(), long]
    full, _ = build_features(examples, tok, config, None, 1000)
    ds, stats = build_features(examples, tok, config, None, 96)
    assert stats == {"examples": 5, "truncated_window": 1, "two_windows": 0, "max_tokens": len(full[4]["input_ids"])}
    assert failures(tok, examples, ds, config) == []
    row, before = ds[4], full[4]["input_ids"]
    assert len(row["input_ids"]) == 96 and row["input_ids"][-1] == tok.eos_token_id
    text_start = before.index(tok.sep_token_id) + 2 if query else 1
    assert row["input_ids"][:text_start] == before[:text_start]  # the query is kept whole
    left = row["subj_start"] - text_start
    right = 96 - 1 - (row["input_ids"].index(tok.convert_tokens_to_ids("</O:PER>")) + 1)
    assert left > 0 and abs(left - right) <= 1
    assert ds.to_list()[:4] == full.to_list()[:4]


def test_window_at_the_start_of_the_sentence(tok):
    ex = make_example(f"비틀즈와 조지 해리슨 {filler(200)}.", ("비틀즈", "ORG"), ("조지 해리슨", "PER"), id_="edge")
    full, _ = build_features([ex], tok, MarkerConfig(), None, 1000)
    ds, stats = build_features([ex], tok, MarkerConfig(), None, 32)
    assert stats["truncated_window"] == 1 and ds[0]["input_ids"][:31] == full[0]["input_ids"][:31]
    assert failures(tok, [ex], ds, MarkerConfig()) == []


@pytest.mark.parametrize(
    "config", [MarkerConfig(), MarkerConfig("typed_entity_marker", query="{subject}{와} {object}{의} 관계")]
)
@pytest.mark.parametrize("subject_first", [True, False])
def test_entities_far_apart_get_a_window_each_joined_by_a_separator(tok, config, subject_first):
    words = [("비틀즈", "ORG"), ("조지 해리슨", "PER")]
    subject, obj = words if subject_first else words[::-1]
    sentence = f"{filler(30)} {words[0][0]} {filler(100)} {words[1][0]} {filler(30)}."
    far = make_example(sentence, subject, obj, id_="far-7")
    examples = [*sample_examples(), far]
    full, _ = build_features(examples, tok, config, None, 1000)
    ds, stats = build_features(examples, tok, config, None, 96)
    assert stats["two_windows"] == 1 and stats["truncated_window"] == 1
    assert failures(tok, examples, ds, config) == []  # both entities decode to their marked text
    row, before = ds[4]["input_ids"], full[4]["input_ids"]
    assert len(row) == 96 and row.count(tok.sep_token_id) == before.count(tok.sep_token_id) + 1
    assert ds.to_list()[:4] == full.to_list()[:4]


def test_entities_longer_than_the_window_still_give_an_input(tok):
    first, second = filler(40), " ".join(SYLLABLES[k : k + 2] for k in range(50, 90))
    long = make_example(f"{first} 그리고 {second}.", (first, "ORG"), (second, "PER"), id_="huge")
    ds, stats = build_features([long], tok, MarkerConfig(), None, 24)
    row = ds[0]
    assert stats["two_windows"] == 1 and len(row["input_ids"]) == 24
    assert 0 < row["subj_start"] <= row["subj_end"] < row["obj_start"] <= row["obj_end"] < 23
    assert set(row["entity_mask"][row["subj_end"] + 1 : row["obj_start"]]) <= {0}


def test_rows_whose_type_pair_was_never_trained_are_counted(tok):
    examples = sample_examples()
    ds, _ = build_features(examples, tok, MarkerConfig(), None, 64)
    pairs = sorted(f"{ex.subject.type}|{ex.object.type}" for ex in examples)
    assert shared_head_rows(add_pair_column(ds, pairs)) == {}
    assert shared_head_rows(add_pair_column(ds, pairs[1:])) == {pairs[0]: 1}


@settings(max_examples=150, deadline=None)
@given(ex=korean_examples(), config=configs)
def test_generated_sentences(tok, ex, config):
    ds, _ = build_features([ex], tok, config, None, 256)
    assert failures(tok, [ex], ds, config) == []


@pytest.fixture(scope="module")
def klue():
    from re_pipeline.data.load import load_data

    examples = load_data(KLUE_TRAIN).examples
    sentences = sorted({ex.sentence for ex in examples})
    alphabet = "".join(sorted(set("".join(sentences))))  # every character, so that decoding is exact
    return examples, trained_tokenizer([*sentences[:: len(sentences) // 2000], alphabet], 8000)


@needs_shared
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_on_the_train_set(klue, fmt):
    examples, tok = klue
    config = MarkerConfig(fmt)
    ds, stats = build_features(examples, tok, config, LabelSet.klue(), 256, num_proc=2)
    assert failures(tok, examples, ds, config) == []
    assert stats["examples"] == len(examples) and stats["truncated_window"] < 20 and stats["max_tokens"] > 200
