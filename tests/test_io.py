"""Readers: competition CSV, KLUE JSON, hub (offline), and what real files contain."""

from __future__ import annotations

import ast
import json

import pytest
from conftest import SAMPLE, competition_rows, write_csv

from re_pipeline.core.errors import PipelineError
from re_pipeline.data.io import ReadOptions, read_examples, write_examples_csv
from re_pipeline.data.schema import to_dataset


def test_reads_competition_csv(competition_csv):
    examples, ledger = read_examples(competition_csv)
    assert [ex.label for ex in examples] == [s[3] for s in SAMPLE]
    assert all(ex.spans_ok() for ex in examples)
    assert examples[0].subject.word == "비틀즈" and examples[0].subject.start == 24 and examples[0].subject.end == 26
    assert ledger.counts() == {"read": 4, "as_is": 4, "repaired": 0, "dropped": 0, "quarantined": 0}


def test_typographic_quotes_are_repaired_with_audit(tmp_path):
    rows = competition_rows()
    rows[1]["object_entity"] = rows[1]["object_entity"].replace("'type': 'POH'", "'type': ‘POH’")
    examples, ledger = read_examples(write_csv(tmp_path / "q.csv", rows))
    assert examples[1].object.type == "POH" and examples[1].object.word == "무신"
    (repair,) = ledger.repairs
    assert (repair.rule, repair.id, repair.field) == ("entity_quotes", "1", "object_entity")
    assert "‘POH’" in repair.before and '"POH"' in repair.after
    assert ledger.counts()["repaired"] == 1


def test_not_a_literal_is_quarantined_never_evaluated(tmp_path):
    rows = competition_rows()
    rows[2]["subject_entity"] = "__import__('os').system('touch /tmp/re_pipeline_pwned')"
    examples, ledger = read_examples(write_csv(tmp_path / "evil.csv", rows))
    assert len(examples) == 3
    (removal,) = ledger.removals
    assert removal.kind == "quarantined" and removal.rule == "bad_entity" and "subject_entity" in removal.reason
    assert ledger.counts() == {"read": 4, "as_is": 3, "repaired": 0, "dropped": 0, "quarantined": 1}


def test_other_key_names_string_offsets_relation_column_and_extra_columns(tmp_path):
    rows = []
    for row in competition_rows():
        subj, obj = (literal(row[k]) for k in ("subject_entity", "object_entity"))
        subj = {
            "text": subj["word"],
            "start_idx": str(subj["start_idx"]),
            "end_idx": str(subj["end_idx"]),
            "entity_type": subj["type"],
        }
        rows.append(
            {
                "": "7",
                "id": f"doc_{row['id']}",
                "worker": "x",
                "sentence": row["sentence"],
                "subject_entity": str(subj),
                "object_entity": str(obj),
                "relation": row["label"],
            }
        )
    examples, ledger = read_examples(write_csv(tmp_path / "odd.csv", rows))
    assert [ex.id for ex in examples] == ["doc_0", "doc_1", "doc_2", "doc_3"]
    assert (
        examples[3].label == "per:place_of_birth"
        and examples[3].subject.start == 0
        and examples[3].subject.type == "PER"
    )
    assert ledger.counts()["as_is"] == 4
    notes = " | ".join(ledger.notes)
    assert (
        "(unnamed index), worker" in notes
        and "'relation'" in notes
        and "'text'/'entity_type'" in notes
        and "strings" in notes
    )


def literal(text: str) -> dict:
    return ast.literal_eval(text)


def test_exclusive_end_offsets_detected_and_converted(tmp_path):
    rows = competition_rows()
    for row in rows:
        for key in ("subject_entity", "object_entity"):
            ent = literal(row[key])
            ent["end_idx"] += 1
            row[key] = str(ent)
    examples, ledger = read_examples(write_csv(tmp_path / "excl.csv", rows))
    assert all(ex.spans_ok() for ex in examples)
    assert any("exclusive" in n for n in ledger.notes)
    assert ledger.rule_counts() == {"exclusive_end": 4}
    forced, _ = read_examples(tmp_path / "excl.csv", ReadOptions(end_offsets="inclusive"))
    assert not any(ex.spans_ok() for ex in forced)


def test_duplicate_ids_renamed_with_audit(tmp_path):
    rows = competition_rows()
    rows[1]["id"] = "0"
    examples, ledger = read_examples(write_csv(tmp_path / "dup.csv", rows))
    assert [ex.id for ex in examples][:2] == ["0", "0~2"]
    assert ledger.repairs[0].rule == "duplicate_id"


def test_test_file_labels_are_unknown(tmp_path):
    rows = competition_rows()
    for row in rows:
        row["label"] = "100"
    examples, _ = read_examples(write_csv(tmp_path / "test.csv", rows))
    assert all(ex.label is None for ex in examples)


def test_missing_columns_and_bad_bytes_give_clear_errors(tmp_path):
    write_csv(tmp_path / "cols.csv", [{"id": "1", "text": "x"}])
    with pytest.raises(PipelineError, match="missing column.*sentence"):
        read_examples(tmp_path / "cols.csv")
    (tmp_path / "latin.csv").write_bytes("id,sentence,subject_entity,object_entity\n1,caf\xe9,a,b\n".encode("latin-1"))
    with pytest.raises(PipelineError, match="not UTF-8"):
        read_examples(tmp_path / "latin.csv")
    with pytest.raises(PipelineError, match="not found"):
        read_examples(tmp_path / "nope.csv")


def test_klue_json_with_name_and_integer_labels(tmp_path):
    rows = competition_rows()
    records = [
        {
            "guid": f"klue-re-v1_train_{i}",
            "sentence": r["sentence"],
            "subject_entity": literal(r["subject_entity"]),
            "object_entity": literal(r["object_entity"]),
            "label": r["label"],
            "source": "wikipedia",
        }
        for i, r in enumerate(rows)
    ]
    records[1]["label"] = 1
    path = tmp_path / "klue.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    examples, _ = read_examples(path, ReadOptions(label_names=("no_relation", "per:title")))
    assert [ex.label for ex in examples] == ["no_relation", "per:title", "org:founded", "per:place_of_birth"]
    assert examples[0].id == "klue-re-v1_train_0"


def test_hub_offline_gives_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(PipelineError, match="cannot load 'klue/re'.*data.train"):
        read_examples("hub:klue/re:train")


def test_write_then_read_round_trip_and_dataset_view(competition_csv, tmp_path):
    examples, _ = read_examples(competition_csv)
    again, ledger = read_examples(write_examples_csv(tmp_path / "out.csv", examples))
    assert [(e.id, e.sentence, e.subject, e.object, e.label) for e in again] == [
        (e.id, e.sentence, e.subject, e.object, e.label) for e in examples
    ]
    ds = to_dataset(again)
    assert ds.num_rows == 4 and ds[2]["object_word"] == "1969년 1월 13일" and ds[2]["object_end"] == 17


def test_augmented_files_keep_parent_and_method(competition_csv, tmp_path):
    examples, _ = read_examples(competition_csv)
    child = examples[1].with_(id="1-aug-aeda-0", parent_id="1", method="aeda")
    again, ledger = read_examples(write_examples_csv(tmp_path / "aug.csv", [*examples, child]))
    assert (again[-1].parent_id, again[-1].method) == ("1", "aeda") and again[0].parent_id is None
    assert not ledger.notes


def renamed(rename: dict[str, str]) -> list[dict]:
    """The competition rows with ids doc_0.. (never row numbers) and some columns renamed."""
    return [{rename.get(k, k): (f"doc_{v}" if k == "id" else v) for k, v in row.items()} for row in competition_rows()]


RENAMES = {
    "Label": {"label": "Label"},
    "label+space": {"label": "label "},
    "RELATION": {"label": " RELATION"},
    "ID": {"id": "ID"},
    "subject/object": {"subject_entity": "subject", "object_entity": "object"},
    "Subj/OBJ": {"subject_entity": "Subj", "object_entity": "OBJ"},
    "spaced": {"subject_entity": "Subject Entity", "object_entity": "object-entity"},
}


@pytest.mark.parametrize("rename", RENAMES.values(), ids=RENAMES)
def test_headers_match_case_and_space_insensitively_and_by_alias(tmp_path, rename):
    examples, ledger = read_examples(write_csv(tmp_path / "h.csv", renamed(rename)))
    assert [ex.id for ex in examples] == [f"doc_{i}" for i in range(4)]
    assert [ex.label for ex in examples] == [s[3] for s in SAMPLE] and all(ex.spans_ok() for ex in examples)
    for canonical, header in rename.items():
        assert f"column {header!r} read as {canonical!r}" in ledger.notes, ledger.notes
    assert not any("ignored column" in n for n in ledger.notes)


def test_headers_that_cannot_be_mapped_are_refused_listing_the_expected_names(tmp_path):
    rows = renamed({"subject_entity": "head", "object_entity": "tail"})
    with pytest.raises(PipelineError, match=r"missing column\(s\) subject_entity, object_entity") as err:
        read_examples(write_csv(tmp_path / "ht.csv", rows))
    expected = "expected sentence, subject_entity (or subject, subj, subj_entity), object_entity (or object, obj,"
    assert expected in str(err.value) and "found id, sentence, head, tail" in str(err.value)
    both = [dict(row, Label=row["label"]) for row in competition_rows()]
    with pytest.raises(PipelineError, match="columns 'label' and 'Label' both name label"):
        read_examples(write_csv(tmp_path / "two.csv", both))


def test_entity_type_case_is_normalised_with_audit(tmp_path):
    rows = competition_rows()
    rows[1]["object_entity"] = rows[1]["object_entity"].replace("'POH'", "'poh'")
    rows[2]["subject_entity"] = rows[2]["subject_entity"].replace("'ORG'", "' Org'")
    examples, ledger = read_examples(write_csv(tmp_path / "case.csv", rows))
    assert (examples[1].object.type, examples[2].subject.type) == ("POH", "ORG")
    assert [(r.id, r.rule, r.field, r.before, r.after) for r in ledger.repairs] == [
        ("1", "type_case", "object_entity.type", "poh", "POH"),
        ("2", "type_case", "subject_entity.type", " Org", "ORG"),
    ]
