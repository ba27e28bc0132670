"""The real files in ../shared/data: exact counts and specific repairs (skipped when absent)."""

from __future__ import annotations

import pytest
from conftest import KLUE_TEST, KLUE_TRAIN, NOISY, needs_shared

from re_pipeline.data.load import load_data

pytestmark = needs_shared

# file -> (read, as_is, repaired, dropped, quarantined), as observed on the shared data (type_from_label off:
# its 7 changes on the entertainment and politics files were checked by hand and 6 were wrong)
EXPECTED = {
    "entertainment_nlp1-06/happy_entertainment_data_train.csv": (1331, 1330, 0, 1, 0),
    "entertainment_nlp1-06/happy_entertainment_data_val.csv": (166, 166, 0, 0, 0),
    "entertainment_nlp1-06/happy_entertainment_data_test.csv": (167, 167, 0, 0, 0),
    "insect_nlp1-01/train.csv": (1021, 1004, 17, 0, 0),
    "insect_nlp1-01/validation.csv": (128, 128, 0, 0, 0),
    "insect_nlp1-01/evaluation.csv": (128, 125, 3, 0, 0),
    "olympics_nlp1-04/train_fix_form.csv": (882, 0, 880, 0, 2),
    "olympics_nlp1-04/dev_fix_form.csv": (99, 0, 99, 0, 0),
    "olympics_nlp1-04/test_fix_form.csv": (110, 0, 110, 0, 0),
    "politics_nlp2-13/train.csv": (972, 965, 7, 0, 0),
    "politics_nlp2-13/test.csv": (122, 122, 0, 0, 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_noisy_files_load_with_exact_counts(name):
    loaded = load_data(NOISY / name)
    counts = loaded.ledger.counts()
    assert tuple(counts[k] for k in ("read", "as_is", "repaired", "dropped", "quarantined")) == EXPECTED[name]
    assert len(loaded.examples) == counts["as_is"] + counts["repaired"]
    assert all(ex.spans_ok() for ex in loaded.examples)


def test_klue_train_counts_and_duplicates():
    loaded = load_data(KLUE_TRAIN)
    assert loaded.ledger.counts() == {"read": 32470, "as_is": 32419, "repaired": 4, "dropped": 47, "quarantined": 0}
    assert loaded.ledger.rule_counts() == {"exact_duplicate": 42, "label_conflict": 5, "unicode": 4}
    assert loaded.label_set.name == "klue-re" and len(loaded.examples) == 32470 - 47


def test_klue_test_file_is_unlabelled_and_complete():
    loaded = load_data(KLUE_TEST, labels="klue")
    assert len(loaded.examples) == 7765 and all(ex.label is None for ex in loaded.examples)


def test_specific_repairs():
    insect = load_data(NOISY / "insect_nlp1-01/train.csv")
    quotes = [r for r in insect.ledger.repairs if r.rule == "entity_quotes"]
    assert len(quotes) == 17 and all("‘" in r.before for r in quotes)
    assert insect.label_set.names[0] == "관계없음"

    olympics = load_data(NOISY / "olympics_nlp1-04/train_fix_form.csv")
    assert any("exclusive" in n for n in olympics.ledger.notes) and olympics.label_set.names[0] == "관계_없음"
    quarantined = {r.id: r.reason for r in olympics.ledger.removals}
    assert quarantined == {
        "260": "object word '2009년 10월 02일' does not occur in the sentence",
        "286": "object word '1973년 10월 02일' does not occur in the sentence",
    }

    politics = load_data(NOISY / "politics_nlp2-13/train.csv")
    wide = next(r for r in politics.ledger.repairs if r.id == "박근혜1_21" and r.rule == "offsets")
    assert (wide.before, wide.after) == ("'대통령'@18-23", "'대통령'@21-23")
    soft = [r for r in politics.ledger.repairs if r.rule == "unicode" and r.field == "sentence"]
    assert len(soft) == 2 and all("<U+00AD>" in r.before and "\u00ad" not in r.after for r in soft)
    assert any("'entity_type'" in n for n in politics.ledger.notes)

    entertainment = load_data(NOISY / "entertainment_nlp1-06/happy_entertainment_data_train.csv")
    (dup,) = entertainment.ledger.removals
    assert dup.kind == "dropped" and dup.rule == "exact_duplicate"
