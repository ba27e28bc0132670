"""Noise rules: unicode, offsets, types from labels, hand corrections, duplicates."""

from __future__ import annotations

import pytest
from conftest import competition_rows, write_csv

from re_pipeline.core.errors import PipelineError
from re_pipeline.data.audit import Ledger
from re_pipeline.data.clean import CleanConfig, clean_examples, drop_exact_duplicates, resolve_conflicts
from re_pipeline.data.io import read_examples
from re_pipeline.data.load import load_data
from re_pipeline.data.schema import Entity, Example


def ex(id, sentence, subj, obj, label="no_relation", row=None):
    def ent(word, type_, start=None):
        start = sentence.index(word) if start is None else start
        return Entity(word, start, start + len(word) - 1, type_)

    return Example(str(id), sentence, ent(*subj), ent(*obj), label, row=int(id) if row is None else row)


def run(examples, **cfg):
    ledger = Ledger("mem", rows_read=len(examples))
    return clean_examples(examples, ledger, CleanConfig(**cfg)), ledger


def test_soft_hyphen_removed_and_offsets_follow():
    sentence = "켈로그\u00ad브리앙 조약은 전쟁을 금지한 조약이다."
    e = Example(
        "0",
        sentence,
        Entity("켈로그\u00ad브리앙 조약", 0, 9, "POH"),
        Entity("전쟁", 12, 13, "POH"),
        "no_relation",
        row=0,
    )
    (out,), ledger = run([e])
    assert out.sentence == "켈로그브리앙 조약은 전쟁을 금지한 조약이다."
    assert out.subject == Entity("켈로그브리앙 조약", 0, 8, "POH") and out.object == Entity("전쟁", 11, 12, "POH")
    assert out.spans_ok()
    assert {r.field for r in ledger.repairs} == {"sentence", "subject_entity", "object_entity"}
    assert "<U+00AD>" in next(r.before for r in ledger.repairs if r.field == "sentence")


def test_nfc_normalisation_of_decomposed_hangul():
    import unicodedata

    sentence = unicodedata.normalize("NFD", "한국은 서울이 수도다.")
    e = Example(
        "0",
        sentence,
        Entity(unicodedata.normalize("NFD", "한국"), 0, 5, "LOC"),
        Entity(unicodedata.normalize("NFD", "서울"), 10, 15, "LOC"),
        "no_relation",
        row=0,
    )
    (out,), _ = run([e])
    assert (
        out.sentence == "한국은 서울이 수도다."
        and out.subject == Entity("한국", 0, 1, "LOC")
        and out.object == Entity("서울", 4, 5, "LOC")
    )


def test_offsets_repaired_to_nearest_occurrence_or_quarantined():
    sentence = "서울에서 온 김철수는 서울 시청에서 일한다."
    good = ex(0, sentence, ("김철수", "PER"), ("서울", "LOC", 12))
    shifted = good.with_(id="1", row=1, object=Entity("서울", 14, 15, "LOC"))  # nearest occurrence is at 12
    missing = good.with_(id="2", row=2, object=Entity("부산", 12, 13, "LOC"))
    out, ledger = run([good, shifted, missing], drop_exact_duplicates=False)
    assert [o.id for o in out] == ["0", "1"]
    assert out[1].object == Entity("서울", 12, 13, "LOC")
    assert ledger.counts() == {"read": 3, "as_is": 1, "repaired": 1, "dropped": 0, "quarantined": 1}
    assert ledger.removals[0].rule == "span_not_found" and "'부산'" in ledger.removals[0].reason


def test_offsets_rule_off_quarantines_mismatches():
    sentence = "서울에서 온 김철수는 서울 시청에서 일한다."
    bad = ex(0, sentence, ("김철수", "PER"), ("서울", "LOC")).with_(object=Entity("서울", 13, 14, "LOC"))
    out, ledger = run([bad], repair_offsets=False)
    assert out == [] and ledger.removals[0].rule == "span_mismatch"


def test_subject_type_from_label_is_off_by_default_and_counts_its_changes():
    e = ex(0, "삼성은 이재용이 이끈다.", ("삼성", "PER"), ("이재용", "PER"), "org:top_members/employees")
    (kept,), ledger = run([e])
    assert kept.subject.type == "PER" and not ledger.repairs and not ledger.notes
    (out,), ledger = run([e], type_from_label=True)
    assert out.subject.type == "ORG"
    assert (ledger.repairs[0].rule, ledger.repairs[0].before, ledger.repairs[0].after) == (
        "type_from_label",
        "PER",
        "ORG",
    )
    assert ledger.notes == ["type_from_label changed the subject type of 1 row(s) (see the audit)"]


def test_type_from_label_never_touches_test_rows(tmp_path):
    rows = competition_rows()
    rows[1]["subject_entity"] = rows[1]["subject_entity"].replace("'PER'", "'ORG'")  # labelled per:title
    path = write_csv(tmp_path / "test.csv", rows)
    test = load_data(path, clean=CleanConfig(type_from_label=True), labels="klue", test=True)
    assert test.examples[1].subject.type == "ORG" and not test.ledger.repairs
    train = load_data(path, clean=CleanConfig(type_from_label=True))
    assert train.examples[1].subject.type == "PER" and train.ledger.rule_counts() == {"type_from_label": 1}


def test_corrections_file(tmp_path):
    e = ex(0, "삼성은 이재용이 이끈다.", ("삼성", "ORG"), ("이재용", "PER"), "no_relation")
    path = write_csv(
        tmp_path / "fix.csv",
        [
            {"id": "0", "field": "label", "old": "no_relation", "new": "org:top_members/employees"},
            {"id": "0", "field": "object_type", "old": "ORG", "new": "LOC"},  # stale: skipped and noted
            {"id": "9", "field": "label", "old": "a", "new": "b"},
        ],
    )
    (out,), ledger = run([e], corrections=str(path))
    assert out.label == "org:top_members/employees" and out.object.type == "PER"
    assert [r.rule for r in ledger.repairs] == ["correction"]
    assert any("unknown id '9'" in n for n in ledger.notes) and any(
        "object_type of id '0' skipped" in n for n in ledger.notes
    )
    write_csv(tmp_path / "bad.csv", [{"id": "0", "field": "sentence", "old": "a", "new": "b"}])
    with pytest.raises(PipelineError, match="cannot be corrected"):
        run([e], corrections=str(tmp_path / "bad.csv"))


def _dupes():
    s = "이순신은 조선 중기의 무신이다."
    base = ex(0, s, ("이순신", "PER"), ("무신", "POH"), "per:title")
    return [
        base,
        base.with_(id="1", row=1),  # exact duplicate
        base.with_(id="2", row=2, label="no_relation"),  # conflict
        base.with_(id="3", row=3, label="no_relation"),  # conflict, same as 2
        ex(4, s, ("이순신", "PER"), ("조선", "ORG"), "per:employee_of"),
    ]


@pytest.mark.parametrize(
    "policy, kept",
    [("keep_first", ["0", "4"]), ("majority", ["0", "4"]), ("drop_all", ["4"]), ("keep_all", ["0", "2", "4"])],
)
def test_duplicate_policies(policy, kept):
    ledger = Ledger("mem", rows_read=5)
    out = resolve_conflicts(drop_exact_duplicates(_dupes(), ledger), ledger, policy)
    assert [o.id for o in out] == kept
    assert ledger.counts()["dropped"] == 5 - len(kept)
    assert {r.id: r.rule for r in ledger.removals}["1"] == "exact_duplicate"


def test_majority_picks_most_common_label_without_exact_dedup():
    ledger = Ledger("mem", rows_read=5)
    out = resolve_conflicts(_dupes(), ledger, "majority")
    assert [(o.id, o.label) for o in out] == [
        ("0", "per:title"),
        ("4", "per:employee_of"),
    ]  # tie 2-2: first label wins


def test_unknown_labels_quarantined_and_counts_add_up(tmp_path):
    rows = competition_rows()
    rows[0]["label"] = "per:favourite_food"
    loaded = load_data(write_csv(tmp_path / "t.csv", rows), labels="klue")
    assert len(loaded.examples) == 3 and loaded.ledger.removals[0].rule == "unknown_label"
    counts = loaded.ledger.counts()
    assert counts["as_is"] + counts["repaired"] + counts["dropped"] + counts["quarantined"] == counts["read"] == 4


def test_label_set_auto_and_korean_no_relation(tmp_path):
    rows = competition_rows()
    assert load_data(write_csv(tmp_path / "k.csv", rows)).label_set.name == "klue-re"
    for row, label in zip(rows, ["관계없음", "인물:직업", "단체:설립일", "인물:출생지"]):
        row["label"] = label
    loaded = load_data(write_csv(tmp_path / "ko.csv", rows))
    assert loaded.label_set.names[0] == "관계없음" and len(loaded.label_set) == 4


def test_fingerprint_tracks_rows_and_settings(competition_csv, tmp_path):
    a = load_data(competition_csv).fingerprint
    assert a == load_data(competition_csv).fingerprint
    assert a != load_data(competition_csv, clean=CleanConfig(conflict_policy="drop_all")).fingerprint
    rows = competition_rows()
    rows[1]["label"] = "no_relation"
    assert a != load_data(write_csv(tmp_path / "changed.csv", rows)).fingerprint


def test_test_files_are_never_deduplicated(tmp_path):
    rows = competition_rows() * 2
    for i, row in enumerate(rows):
        row.update(id=str(i), label="100")
    examples, ledger = read_examples(write_csv(tmp_path / "test.csv", [dict(r) for r in rows]))
    out = clean_examples(examples, ledger, CleanConfig(), labelled=False)
    assert len(out) == 8 and ledger.counts()["dropped"] == 0


def test_overlapping_entities_are_quarantined():
    sentence = "서울특별시청은 서울에 있다."
    e = Example("0", sentence, Entity("서울특별시청", 0, 5, "ORG"), Entity("서울", 0, 1, "LOC"), "no_relation", row=0)
    out, ledger = run([e])
    assert out == [] and ledger.removals[0].rule == "entities_overlap"
