"""Augmentation: exact spans for every child, untouched entities, ids, seeds, filters, particles, role swaps."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import KLUE_TRAIN, needs_shared

from re_pipeline.core.errors import PipelineError
from re_pipeline.core.typed_config import from_dict
from re_pipeline.data import augment as augment_module
from re_pipeline.data.augment import METHODS, PUNCTUATION, AugmentConfig, AugmentMethod, augment, summary_table
from re_pipeline.data.load import load_data
from re_pipeline.data.schema import Entity, Example

RANDOM_METHODS = ("aeda", "random_mask", "random_delete", "entity_swap")


def ex(id: str, sentence: str, subj: tuple[str, str], obj: tuple[str, str], label: str = "no_relation") -> Example:
    def ent(word: str, type_: str) -> Entity:
        start = sentence.index(word)
        return Entity(word, start, start + len(word) - 1, type_)

    return Example(id, sentence, ent(*subj), ent(*obj), label, source="wikipedia", row=int(id))


CORPUS = [
    ex(
        "0",
        "〈Something〉는 조지 해리슨이 쓰고 비틀즈가 1969년 앨범 《Abbey Road》에 담은 노래다.",
        ("비틀즈", "ORG"),
        ("조지 해리슨", "PER"),
    ),
    ex(
        "1",
        "김철수는 서울로 이사한 뒤 오랫동안 그곳에서 가족과 함께 살았다.",
        ("김철수", "PER"),
        ("서울", "LOC"),
        "per:places_of_residence",
    ),
    ex(
        "2",
        "이영희는 부산으로 이사한 뒤 오랫동안 그곳에서 친구들과 함께 살았다.",
        ("이영희", "PER"),
        ("부산", "LOC"),
        "per:places_of_residence",
    ),
    ex(
        "3",
        "존 레논과 폴 매카트니는 1960년대 비틀즈에서 함께 활동한 오랜 동료였다.",
        ("존 레논", "PER"),
        ("폴 매카트니", "PER"),
        "per:colleagues",
    ),
    ex(
        "4",
        "삼성전자는 1969년 1월 13일에 경기도 수원에서 처음 설립되었다고 알려져 있다.",
        ("삼성전자", "ORG"),
        ("1969년 1월 13일", "DAT"),
        "org:founded",
    ),
    ex(
        "5",
        "비틀즈의 멤버였던 조지 해리슨은 영국 리버풀 출신의 뛰어난 기타리스트이다.",
        ("조지 해리슨", "PER"),
        ("비틀즈", "ORG"),
        "per:employee_of",
    ),
    ex(
        "6",
        "오노 요코는 1969년 존 레논과 결혼하여 그의 두 번째 아내가 되었다.",
        ("오노 요코", "PER"),
        ("존 레논", "PER"),
        "per:spouse",
    ),
    ex(
        "7",
        "국민은행은 서울 여의도에 본점을 둔 대형 시중 은행이다.",
        ("국민은행", "ORG"),
        ("서울", "LOC"),
        "org:place_of_headquarters",
    ),
]


def run(name: str, seed: int = 42, examples: list[Example] = CORPUS, **kw) -> tuple[list[Example], dict]:
    out, summary = augment(examples, AugmentConfig([AugmentMethod(name, **kw)], seed=seed))
    return out[len(examples) :], summary[name]


def check_children(parents: list[Example], children: list[Example], name: str) -> None:
    """Spans exact, bookkeeping set, label kept, entities unchanged except the one entity_swap replaces."""
    by_id = {p.id: p for p in parents}
    assert len({c.id for c in children}) == len(children)
    for child in children:
        parent = by_id[child.parent_id]
        assert child.spans_ok(), child
        assert child.method == name and child.id.startswith(f"{parent.id}-aug-{name}-")
        assert (child.label, child.row, child.source) == (parent.label, parent.row, parent.source)
        if name == "symmetric_swap":
            assert (child.subject, child.object, child.sentence) == (parent.object, parent.subject, parent.sentence)
            continue
        kept = [
            (c, p) for c, p in ((child.subject, parent.subject), (child.object, parent.object)) if c.word == p.word
        ]
        assert len(kept) == (1 if name == "entity_swap" else 2), child
        assert all(c.type == p.type for c, p in ((child.subject, parent.subject), (child.object, parent.object)))


@pytest.mark.parametrize("name", METHODS)
def test_children_are_exact_and_labelled(name: str) -> None:
    out, summary = augment(CORPUS, AugmentConfig([AugmentMethod(name, prob=0.3, copies=2)]))
    assert out[: len(CORPUS)] == CORPUS
    children = out[len(CORPUS) :]
    assert children and summary[name]["children"] == len(children) and summary[name]["discarded"] == 0
    assert summary[name]["children"] + summary[name]["skipped"] == 2 * summary[name]["parents"]
    check_children(CORPUS, children, name)


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_output(name: str) -> None:
    assert run(name, copies=3, rate=0.7) == run(name, copies=3, rate=0.7)


@pytest.mark.parametrize("name", RANDOM_METHODS)
def test_other_seed_other_output(name: str) -> None:
    assert [c.sentence for c in run(name, seed=1, copies=3)[0]] != [c.sentence for c in run(name, seed=2, copies=3)[0]]


def test_aeda_inserts_punctuation_between_words_only() -> None:
    for child in run("aeda", prob=0.5, copies=3)[0]:
        parent = CORPUS[int(child.parent_id)]
        words = child.sentence.split()
        inserted = [w for w in words if w in PUNCTUATION]
        assert 1 <= len(inserted) <= max(1, int(0.5 * len(parent.sentence.split())))
        assert [w for w in words if w not in PUNCTUATION] == parent.sentence.split()


def test_mask_replaces_only_free_words() -> None:
    children, _ = run("random_mask", prob=0.5, copies=3)
    for child in children:
        parent = CORPUS[int(child.parent_id)]
        pairs = list(zip(child.sentence.split(), parent.sentence.split(), strict=True))
        changed = [p for c, p in pairs if c != p]
        assert changed and all(c == "<mask>" for c, p in pairs if c != p)
        assert not any(e.word in p or p in e.word for p in changed for e in (parent.subject, parent.object))
    out, _ = augment(CORPUS, AugmentConfig([AugmentMethod("random_mask", prob=1.0)], mask_token="[UNK]"))
    assert "[UNK]" in out[len(CORPUS)].sentence and "<mask>" not in out[len(CORPUS)].sentence


@pytest.mark.parametrize("name", ["aeda", "random_mask", "random_delete"])
def test_prob_zero_still_edits_one_word(name: str) -> None:
    children, summary = run(name, prob=0.0)
    assert summary["children"] == len(CORPUS)
    for child in children:
        before, after = CORPUS[int(child.parent_id)].sentence.split(), child.sentence.split()
        changed = len(after) - len(before) if name != "random_mask" else after.count("<mask>")
        assert changed == {"aeda": 1, "random_mask": 1, "random_delete": -1}[name]


def test_delete_keeps_entity_words_in_order() -> None:
    children, _ = run("random_delete", prob=1.0)
    assert children
    for child in children:
        parent = CORPUS[int(child.parent_id)]
        rest = iter(parent.sentence.split())
        assert all(word in rest for word in child.sentence.split())  # a subsequence of the parent's words
        entity_words = [
            m.group()
            for m in re.finditer(r"\S+", parent.sentence)
            if any(m.start() <= e.end and m.end() > e.start for e in (parent.subject, parent.object))
        ]
        assert child.sentence.split() == entity_words  # prob 1.0: every other word deleted, no stray spaces


def swap_pair(a: Example, b: Example) -> tuple[Example, Example]:
    """entity_swap over a two-example corpus whose other entity is shared, so only one role can change."""
    children, summary = run("entity_swap", examples=[a, b])
    assert summary["children"] == 2
    return children[0], children[1]


def test_entity_swap_reattaches_subject_particle() -> None:
    # One type for both, so each is the other's only candidate.
    a = ex("0", "비틀즈가 새 앨범을 냈다.", ("비틀즈", "PER"), ("앨범", "POH"))
    b = ex("1", "조지 해리슨이 새 앨범을 냈다.", ("조지 해리슨", "PER"), ("앨범", "POH"))
    to_b, to_a = swap_pair(a, b)
    assert (to_b.sentence, to_b.subject) == ("조지 해리슨이 새 앨범을 냈다.", Entity("조지 해리슨", 0, 5, "PER"))
    assert (to_a.sentence, to_a.subject) == ("비틀즈가 새 앨범을 냈다.", Entity("비틀즈", 0, 2, "PER"))
    assert to_b.object == Entity("앨범", 10, 11, "POH") and to_b.spans_ok()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("김철수는 서울로 이사했다.", "김철수는 부산으로 이사했다."),  # (으)로, after ㄹ
        ("김철수는 서울로부터 왔다.", "김철수는 부산으로부터 왔다."),  # stacked particle
        ("김철수는 서울과의 인연이 깊다.", "김철수는 부산과의 인연이 깊다."),
        ("김철수의 고향은 서울이다.", "김철수의 고향은 파리이다."),  # copula 이: kept, not a particle
        ("김철수는 서울 출신이다.", "김철수는 부산 출신이다."),  # no particle
    ],
)
def test_entity_swap_reattaches_object_particle(first: str, second: str) -> None:
    w1 = next(w for w in ("서울", "부산", "파리") if w in first)
    w2 = next(w for w in ("서울", "부산", "파리") if w in second)
    a, b = ex("0", first, ("김철수", "PER"), (w1, "LOC")), ex("1", second, ("김철수", "PER"), (w2, "LOC"))
    to_b, to_a = swap_pair(a, b)
    assert (to_b.sentence, to_b.object.word, to_a.sentence, to_a.object.word) == (second, w2, first, w1)


def test_entity_swap_leaves_compound_suffix() -> None:
    a = ex("0", "국민은행은 큰 은행이다.", ("국민", "ORG"), ("은행", "POH"))
    b = ex("1", "하나는 큰 은행이다.", ("하나", "ORG"), ("은행", "POH"))
    to_b, to_a = swap_pair(a, b)
    assert to_b.sentence == "하나은행은 큰 은행이다."  # 은 of 은행 is not a particle
    assert to_a.sentence == "국민은 큰 은행이다."


def test_entity_swap_never_uses_own_or_other_word() -> None:
    a = ex("0", "비틀즈가 조지 해리슨을 영입했다.", ("비틀즈", "PER"), ("조지 해리슨", "PER"))
    children, summary = run("entity_swap", examples=[a], copies=3)
    assert children == [] and summary["skipped"] == 3
    c = ex("1", "링고 스타는 드러머다.", ("링고 스타", "PER"), ("드러머", "POH"))
    children, _ = run("entity_swap", examples=[a, c], copies=5)
    mine = [k for k in children if k.parent_id == "0"]
    assert mine and all("링고 스타" in (k.subject.word, k.object.word) for k in mine)


def test_symmetric_swap_only_symmetric_labels() -> None:
    children, summary = run("symmetric_swap", copies=3)
    assert sorted(c.parent_id for c in children) == ["3", "6"]  # per:colleagues, per:spouse
    assert summary == {"parents": 2, "children": 2, "discarded": 0, "skipped": 4}  # extra copies would repeat
    out, _ = augment(CORPUS, AugmentConfig([AugmentMethod("symmetric_swap")], symmetric_labels=["per:spouse"]))
    assert [c.parent_id for c in out[len(CORPUS) :]] == ["6"]
    mixed = ex("9", "김철수는 교사 이영희와 결혼했다.", ("김철수", "PER"), ("교사", "POH"), "per:spouse")
    assert run("symmetric_swap", examples=[mixed])[0] == []  # PER/POH: a POH subject would not fit per:


@pytest.mark.parametrize("name", METHODS)
def test_label_filter_and_rate(name: str) -> None:
    labels = ["per:colleagues", "per:places_of_residence"]
    children, _ = run(name, labels=labels)
    assert children and {c.label for c in children} <= set(labels)
    assert run(name, rate=0.0) == ([], {"parents": 0, "children": 0, "discarded": 0, "skipped": 0})
    assert run("aeda", rate=0.5)[1]["parents"] == 4


def test_copies() -> None:
    children, summary = run("aeda", prob=0.5, copies=4)
    per_parent = Counter(c.parent_id for c in children)
    assert max(per_parent.values()) == 4 and summary["children"] + summary["skipped"] == 4 * len(CORPUS)
    assert {c.id for c in children if c.parent_id == "1"} <= {f"1-aug-aeda-{k}" for k in range(4)}


def test_children_are_not_parents() -> None:
    out, _ = augment(CORPUS, AugmentConfig([AugmentMethod("aeda")]))
    again, summary = augment(out, AugmentConfig([AugmentMethod("random_mask")]))
    assert summary["random_mask"]["parents"] == len(CORPUS) and again[: len(out)] == out


def test_bad_child_is_discarded_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(augment_module, "_aeda", lambda ex, rng, prob: ex.with_(sentence="x" + ex.sentence))
    children, summary = run("aeda")
    assert children == [] and summary["discarded"] == len(CORPUS)


def test_config_validation() -> None:
    with pytest.raises(PipelineError, match="valid: aeda, random_mask, random_delete, entity_swap, symmetric_swap"):
        AugmentMethod("eda")
    with pytest.raises(PipelineError, match="prob"):
        AugmentMethod("aeda", prob=1.5)
    with pytest.raises(PipelineError, match="rate"):
        AugmentMethod("aeda", rate=-0.1)
    with pytest.raises(PipelineError, match="copies"):
        AugmentMethod("aeda", copies=0)
    with pytest.raises(PipelineError, match="more than once: aeda"):
        AugmentConfig([AugmentMethod("aeda"), AugmentMethod("aeda", prob=0.2)])
    with pytest.raises(PipelineError, match="not in the data: per:sibling"):
        augment(CORPUS, AugmentConfig([AugmentMethod("aeda", labels=["per:sibling"])]))
    config = from_dict(
        AugmentConfig, {"methods": [{"name": "aeda", "prob": 0.2, "labels": ["org:founded"]}], "seed": 7}
    )
    assert config.methods == [AugmentMethod("aeda", prob=0.2, labels=["org:founded"])] and config.seed == 7
    with pytest.raises(PipelineError, match="valid:"):
        from_dict(AugmentConfig, {"methods": [{"name": "backtranslate"}]})


def test_summary_table() -> None:
    _, summary = augment(CORPUS, AugmentConfig([AugmentMethod("aeda"), AugmentMethod("symmetric_swap")]))
    rows = summary_table(summary)
    assert [r["method"] for r in rows] == ["aeda", "symmetric_swap", "total"]
    assert rows[-1]["children"] == rows[0]["children"] + rows[1]["children"] == len(CORPUS) + 2


@needs_shared
def test_shared_train_all_methods_exact() -> None:
    examples = load_data(KLUE_TRAIN).examples
    out, summary = augment(examples, AugmentConfig([AugmentMethod(name, prob=0.3, rate=1.0) for name in METHODS]))
    children = out[len(examples) :]
    assert all(c.spans_ok() for c in children)
    for name in METHODS:
        assert summary[name]["discarded"] == 0
        check_children(examples, [c for c in children if c.method == name], name)
    for name in RANDOM_METHODS:
        assert summary[name]["children"] >= 0.99 * len(examples)
    sym = AugmentConfig().symmetric_labels
    same_type = sum(e.label in sym and e.subject.type == e.object.type for e in examples)
    assert summary["symmetric_swap"]["children"] == same_type > 3000
