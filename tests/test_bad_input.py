"""Bad input, through the API and the command line: a clear PipelineError naming the file, line or key,
or a quarantined row with its reason; never a library traceback, never a lost good row."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from conftest import competition_rows, entity, write_csv
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.load import load_configured, load_data
from re_pipeline.data.sample import write_sample
from re_pipeline.data.split import holdout_split
from re_pipeline.pipeline import load_inputs
from re_pipeline.submit.submission import write_submission

runner = CliRunner()
KLUE = LabelSet.klue()
GOOD = ["0", "1", "2", "3"]
CODE = "__import__('os').system('touch PWNED')"
SENTENCE = "박지성은 수원에서 태어났다."
SUBJECT, OBJECT = str(entity("박지성", SENTENCE, "PER")), str(entity("수원", SENTENCE, "LOC"))


def with_bad_row(tmp_path, **fields):
    """The four good rows with one more row (id `bad`, `fields` changed) in the middle."""
    rows = competition_rows()
    base = {
        "id": "bad",
        "sentence": SENTENCE,
        "subject_entity": SUBJECT,
        "object_entity": OBJECT,
        "label": "per:place_of_birth",
        "source": "x",
    }
    rows.insert(2, {**base, **fields})
    return write_csv(tmp_path / "mixed.csv", rows)


def good_text(newline: str = "\n") -> str:
    rows = competition_rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def one_line_error(result, *words: str) -> str:
    """The CLI failed with exit 2 and a single `error:` line holding `words`, no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output and all(w in lines[0] for w in words), (words, lines[0])
    return lines[0]


QUARANTINED = {  # bad fields -> (rule, text of the reason)
    "code as a value": (
        {"subject_entity": "{'word': " + CODE + ", 'start_idx': 0, 'end_idx': 2, 'type': 'PER'}"},
        "bad_entity",
        "subject_entity: not a dict literal",
    ),
    "code in an extra key": (
        {"object_entity": OBJECT[:-1] + ", 'x': " + CODE + "}"},
        "bad_entity",
        "object_entity: not a dict literal",
    ),
    "a lambda": ({"subject_entity": "(lambda: " + CODE + ")()"}, "bad_entity", "not a dict literal"),
    "plain text": ({"subject_entity": "박지성 PER 0 2"}, "bad_entity", "not a dict literal"),
    "empty entity": ({"object_entity": ""}, "bad_entity", "object_entity"),
    "offsets not numbers": (
        {"subject_entity": SUBJECT.replace("'start_idx': 0", "'start_idx': 'zero'")},
        "bad_entity",
        "not integers: 'zero'",
    ),
    "keys missing": ({"subject_entity": "{'word': '박지성', 'type': 'PER'}"}, "bad_entity", "needs word, start_idx"),
    "offsets out of range, word absent": (
        {"object_entity": "{'word': '대전', 'start_idx': 500, 'end_idx': 501, 'type': 'LOC'}"},
        "span_not_found",
        "'대전'",
    ),
    "empty sentence": ({"sentence": ""}, "empty_sentence", "empty"),
    "blank sentence": ({"sentence": "  \t "}, "empty_sentence", "empty"),
}


@pytest.mark.parametrize("fields, rule, reason", QUARANTINED.values(), ids=QUARANTINED)
def test_bad_rows_are_quarantined_with_a_reason_and_good_rows_survive(tmp_path, monkeypatch, fields, rule, reason):
    monkeypatch.chdir(tmp_path)  # where `touch PWNED` would write
    loaded = load_data(with_bad_row(tmp_path, **fields))
    assert [ex.id for ex in loaded.examples] == GOOD
    (removal,) = loaded.ledger.removals
    assert (removal.id, removal.kind, removal.rule) == ("bad", "quarantined", rule) and reason in removal.reason
    assert loaded.ledger.counts() == {"read": 5, "as_is": 4, "repaired": 0, "dropped": 0, "quarantined": 1}
    assert not (tmp_path / "PWNED").exists()


def test_offsets_out_of_range_or_negative_are_moved_to_the_word_with_audit(tmp_path):
    subject = SUBJECT.replace("'start_idx': 0, 'end_idx': 2", "'start_idx': 90, 'end_idx': 92")
    obj = OBJECT.replace("'start_idx': 5, 'end_idx': 6", "'start_idx': -3, 'end_idx': -2")
    loaded = load_data(with_bad_row(tmp_path, subject_entity=subject, object_entity=obj))
    assert [ex.id for ex in loaded.examples] == ["0", "1", "bad", "2", "3"] and loaded.examples[2].spans_ok()
    assert {(r.id, r.rule, r.field) for r in loaded.ledger.repairs} == {
        ("bad", "offsets", "subject_entity"),
        ("bad", "offsets", "object_entity"),
    }


def test_labels_outside_the_label_set_are_quarantined_naming_the_label(tmp_path):
    loaded = load_data(with_bad_row(tmp_path, label="per:favourite_food"), labels="klue")
    assert [ex.id for ex in loaded.examples] == GOOD
    (removal,) = loaded.ledger.removals
    assert removal.rule == "unknown_label" and "'per:favourite_food'" in removal.reason and "klue" in removal.reason


def test_a_test_file_with_labels_keeps_every_row_and_ignores_the_labels(tmp_path):
    rows = competition_rows() + [dict(competition_rows()[0], id="4")]  # an exact duplicate, kept in a test file
    rows[1]["label"] = "not:a_label"
    test = load_configured(
        write_csv(tmp_path / "test.csv", rows), load_config(None).data, load_config(None).clean, LabelSet.klue()
    )
    assert [ex.id for ex in test.examples] == [*GOOD, "4"] and all(ex.label is None for ex in test.examples)
    assert (
        not test.ledger.removals
        and not test.ledger.repairs
        and "test file carries 5 labels; prediction ignores them, scoring reads them" in test.ledger.notes
    )
    assert test.test_gold == {r["id"]: r["label"] for r in rows}  # for scoring the submission, when all are known


def test_a_test_file_is_scored_only_when_every_row_carries_a_known_label():
    from re_pipeline.evaluation.metrics import labelled_test_metrics

    klue, probs = LabelSet.klue(), np.eye(30)[[0, 1]]
    scored = labelled_test_metrics({"a": klue.names[0], "b": klue.names[2]}, ["a", "b"], probs, klue)
    assert scored["rows"] == 2 and scored["accuracy"] == 50.0
    assert labelled_test_metrics({"a": klue.names[0]}, ["a", "b"], probs, klue) is None  # a row without a label
    assert labelled_test_metrics({"a": "x", "b": "y"}, ["a", "b"], probs, klue) is None  # labels it does not know


def test_an_ensemble_reads_the_labels_of_the_test_file_its_runs_share(tmp_path):
    from re_pipeline.submit.ensemble import Member, labelled_test

    rows = [dict(r, label=label) for r, label in zip(competition_rows(), ["no_relation", "per:title", "org:members"])]
    path = write_csv(tmp_path / "test.csv", rows)

    def member(test):
        return Member("run", [], LabelSet.klue(), np.zeros((0, 30)), {"data_files": {"test": {"path": str(test)}}})

    assert labelled_test([member(path), member(path)]) == {r["id"]: r["label"] for r in rows}
    assert labelled_test([member(path), member(tmp_path / "other.csv")]) == {}  # not one shared test file
    unlabelled = write_csv(tmp_path / "comp.csv", [dict(r, label="100") for r in rows])
    assert labelled_test([member(unlabelled)]) == {}


@pytest.mark.parametrize(
    "newline, bom", [("\r\n", False), ("\n", True), ("\r\n", True)], ids=["crlf", "bom", "bom+crlf"]
)
def test_crlf_line_ends_and_a_utf8_bom_read_like_a_plain_file(tmp_path, newline, bom):
    path = tmp_path / "t.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + good_text(newline).encode("utf-8"))
    loaded = load_data(path)
    plain = load_data(write_csv(tmp_path / "plain.csv", competition_rows()))
    assert loaded.examples == plain.examples and loaded.ledger.summary()["counts"] == plain.ledger.summary()["counts"]
    assert loaded.ledger.notes == plain.ledger.notes
    assert not any("\r" in ex.sentence or "\ufeff" in ex.id for ex in loaded.examples)


def broken_quote(text: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[2] = lines[2].replace(",wikipedia", ',"wikipedia')  # never closed: swallows line 4 up to its first quote
    return "".join(lines)


FILE_ERRORS = {  # file bytes -> words the message must hold (besides the file name)
    "empty": (b"", ["empty file"]),
    "header only": (good_text().splitlines(keepends=True)[0].encode(), ["no data rows"]),
    "missing column": (
        good_text().replace("object_entity", "objekt").encode(),
        ["missing column(s) object_entity", "found id, sentence"],
    ),
    "wrong columns": (
        b"text,head,tail,relation\na,b,c,d\n",
        ["missing column(s) sentence, subject_entity, object_entity"],
    ),
    "tab separated": (good_text().replace(",", "\t").encode(), ["tab-separated", "comma-separated"]),
    "broken quoting": (broken_quote(good_text()).encode(), ["broken quoting", "line 3", "line 4"]),
    "cp949": (good_text().encode("cp949"), ["not UTF-8", "line 2", "cp949"]),
    "latin-1": (good_text().encode("utf-8") + "5,café\n".encode("latin-1"), ["not UTF-8", "line 6"]),
}


@pytest.mark.parametrize("data, words", FILE_ERRORS.values(), ids=FILE_ERRORS)
def test_unreadable_files_are_one_clear_error_in_the_api_and_the_cli(tmp_path, data, words):
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(PipelineError) as err:
        load_data(path)
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
    one_line_error(runner.invoke(app, ["clean", str(path), "-o", str(tmp_path / "out")]), "bad.csv", *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "text, words",
    [
        ("[1, 2]", ["expected a mapping, got list"]),
        ("{'x': 1, 'y': 2}", ["unknown key(s) x, y; known:"]),
        ("{'train': {'batch_size': 'big'}}", ["train.batch_size: expected int, got 'big'"]),
        ("{'train': 3}", ["config train: expected a mapping, got int"]),
        ("{'markers': {'format': 'xml'}}", ["format"]),
        ("train: [unclosed", ["invalid YAML"]),
    ],
)
def test_bad_config_files_name_the_file_and_the_key(tmp_path, competition_csv, text, words):
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError) as err:
        load_config(path)
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words), str(err.value)
    one_line_error(
        runner.invoke(app, ["clean", str(competition_csv), "-o", str(tmp_path / "o"), "-c", str(path)]),
        "cfg.yaml",
        *words,
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.learning_rate.x=1", "train.learning_rate.x is not inside a section"),
        ("train.folds=[unclosed", "'[unclosed' is not a valid YAML value"),
        ("train.early_stopping_patience=true", "train.early_stopping_patience: expected int, got True"),
        ("train", "must look like section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, competition_csv, override, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        load_config(None, ["train.learning_rate=0.1", override])
    one_line_error(
        runner.invoke(
            app, ["clean", str(competition_csv), "-o", str(tmp_path), "-s", "train.learning_rate=0.1", "-s", override]
        ),
        message,
    )


def test_a_config_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "ko.yaml"
    path.write_bytes("name: 실험\n".encode("cp949"))
    with pytest.raises(PipelineError, match="ko.yaml: not UTF-8 text"):
        load_config(path)


def test_the_cli_quarantines_bad_rows_and_writes_every_good_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = with_bad_row(tmp_path, subject_entity="{'word': " + CODE + ", 'start_idx': 0, 'end_idx': 2, 'type': 'PER'}")
    result = runner.invoke(app, ["clean", str(path), "-o", "out"])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in csv.DictReader(open("out/mixed.clean.csv", encoding="utf-8"))] == GOOD
    (quarantined,) = csv.DictReader(open("out/mixed.quarantine.csv", encoding="utf-8"))
    assert quarantined["id"] == "bad" and quarantined["rule"] == "bad_entity" and "PWNED" in quarantined["raw"]
    assert not (tmp_path / "PWNED").exists()


def test_train_with_a_bad_config_or_data_file_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(runner.invoke(app, ["train", "-c", "none.yaml"]), "config file not found: none.yaml")
    (tmp_path / "train.csv").write_bytes(good_text().encode("cp949"))
    (tmp_path / "c.yaml").write_text("tapt: {enabled: false}\n", encoding="utf-8")
    one_line_error(
        runner.invoke(app, ["train", "-c", "c.yaml", "--data", "train.csv"]), "train.csv", "not UTF-8", "cp949"
    )


def sample_rows(tmp_path, n: int = 160) -> list[dict]:
    """Rows of a generated competition-style training file (KLUE-RE labels only)."""
    train, _ = write_sample(tmp_path / "sample", n_train=n, n_test=10)
    return list(csv.DictReader(open(train, encoding="utf-8")))


@pytest.mark.parametrize("typo, hint", [("per:favourite_food", None), ("Per:Title", "per:title")])
def test_one_unknown_label_keeps_the_competition_label_set_and_quarantines_the_row(tmp_path, typo, hint):
    rows = sample_rows(tmp_path)
    rows[7]["label"] = typo
    loaded = load_data(write_csv(tmp_path / "train.csv", rows))
    assert loaded.label_set == LabelSet.klue() and rows[7]["id"] not in {ex.id for ex in loaded.examples}
    (removal,) = [r for r in loaded.ledger.removals if r.kind == "quarantined"]
    assert (removal.id, removal.rule) == (rows[7]["id"], "unknown_label") and repr(typo) in removal.reason
    assert hint is None or f"did you mean {hint!r}" in removal.reason
    note = next(n for n in loaded.ledger.notes if n.startswith("label set"))
    assert "'klue-re'" in note and "1 row with another label is quarantined" in note


def test_a_label_set_read_from_the_data_says_so_and_why(tmp_path):
    rows = competition_rows()
    rows[1]["label"], rows[2]["label"] = "org:program", "per:event"
    loaded = load_data(write_csv(tmp_path / "team.csv", rows))
    assert loaded.label_set.name == "from-data" and len(loaded.label_set) == 4
    note = next(n for n in loaded.ledger.notes if n.startswith("label set"))
    assert "'from-data' (4 labels)" in note and "50.0%" in note and "data.labels" in note


def train_and_test(tmp_path, train_labels, test_labels, *overrides):
    rows = competition_rows()
    for row, label in zip(rows, train_labels):
        row["label"] = label
    train = write_csv(tmp_path / "train.csv", rows)
    test = write_csv(tmp_path / "test.csv", [dict(r, label=label) for r, label in zip(rows, test_labels)])
    return load_config(None, [f"data.train={train}", f"data.test={test}", *overrides])


def test_train_refuses_a_submission_narrower_than_the_competition_test_needs(tmp_path):
    team = ["no_relation", "org:program", "per:event", "per:place_of_birth"]
    with pytest.raises(PipelineError, match="competition's test file.*needs the 30 KLUE-RE labels.*4 labels"):
        load_inputs(train_and_test(tmp_path, team, ["100"] * 4))
    with pytest.raises(PipelineError, match="test file carries labels the train label set lacks: 'per:title'"):
        load_inputs(train_and_test(tmp_path, team, ["no_relation", "per:title", "per:event", "100"]))
    train, _ = load_inputs(train_and_test(tmp_path, team, ["100"] * 4, "data.labels=data"))  # the user's choice
    assert len(train.label_set) == 4


@pytest.mark.parametrize("cell", ["", "  ", "100"], ids=["blank", "spaces", "100"])
def test_a_blank_label_cell_in_a_training_file_is_quarantined(tmp_path, cell):
    loaded = load_data(with_bad_row(tmp_path, label=cell))
    assert [ex.id for ex in loaded.examples] == GOOD
    (removal,) = loaded.ledger.removals
    assert (removal.id, removal.rule) == ("bad", "missing_label") and "no label" in removal.reason
    assert loaded.ledger.counts() == {"read": 5, "as_is": 4, "repaired": 0, "dropped": 0, "quarantined": 1}
    labels = [ex.label for ex in loaded.examples]
    assert len(holdout_split(labels, GOOD, 0.5, 0)[1]) == 2


def test_duplicate_ids_in_a_test_file_are_refused_naming_them(tmp_path):
    rows = [dict(r, label="100") for r in competition_rows()]
    rows[3]["id"] = "1"
    path = write_csv(tmp_path / "test.csv", rows)
    config = load_config(None)
    with pytest.raises(PipelineError, match=r"test.csv: test ids must be unique; repeated: '1' \(rows 2 and 4\)"):
        load_configured(path, config.data, config.clean, LabelSet.klue())
    submission = write_submission(tmp_path / "sub.csv", ["0", "1", "2", "1~2"], np.full((4, 30), 1 / 30), KLUE)
    one_line_error(runner.invoke(app, ["validate-submission", str(submission), "--test", str(path)]), "'1'")
