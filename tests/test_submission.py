import csv

import numpy as np
import pytest

from re_pipeline.core.errors import PipelineError
from re_pipeline.core.labels import LabelSet
from re_pipeline.evaluation.metrics import softmax
from re_pipeline.submit.submission import read_submission, validate_submission, write_submission

THREE = LabelSet(("no_relation", "org:founded", "per:title"))
IDS = ["0", "1", "2"]
GOOD_ROWS = [
    ["0", "no_relation", "[0.7, 0.2, 0.1]"],
    ["1", "org:founded", "[0.1, 0.6, 0.3]"],
    ["2", "per:title", "[0.2, 0.3, 0.5]"],
]


def write_csv(path, rows, header=("id", "pred_label", "probs"), bom=False):
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def problems_for(tmp_path, rows, test_ids=IDS, **kwargs):
    return validate_submission(write_csv(tmp_path / "sub.csv", rows, **kwargs), test_ids, THREE)


def test_round_trip_keeps_order_and_full_precision(tmp_path):
    labels = LabelSet.klue()
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(50, len(labels))) * 4).astype(np.float32)
    ids = [str(i) for i in rng.permutation(1000)[:50]]
    path = write_submission(tmp_path / "out" / "submission.csv", ids, probs, labels)
    assert path.read_text("utf-8").splitlines()[0] == "id,pred_label,probs"
    got_ids, got_labels, got_probs = read_submission(path)
    assert got_ids == ids
    assert got_labels == [labels.names[i] for i in probs.argmax(1)]
    np.testing.assert_array_equal(got_probs, probs.astype(np.float64))  # repr round-trips exactly
    assert validate_submission(path, ids, labels) == []
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left


def test_written_probs_column_is_a_list_literal(tmp_path):
    path = write_submission(tmp_path / "s.csv", ["7"], np.array([[0.25, 0.5, 0.25]]), THREE)
    assert path.read_text("utf-8").splitlines()[1] == '7,org:founded,"[0.25, 0.5, 0.25]"'


@pytest.mark.parametrize(
    "ids, probs, message",
    [
        (IDS, np.array([[0.5, 0.5, np.nan]] * 3), "NaN"),
        (IDS, np.full((3, 2), 0.5), r"shape \(3, 2\), expected \(3, 3\)"),
        (IDS[:2], np.full((3, 3), 1 / 3), r"expected \(2, 3\)"),
        (IDS, np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.1], [1.0, 0.0, 0.0]]), "row 2 sum to 1.1"),
        (["0", "1", "0"], np.full((3, 3), 1 / 3), "duplicate ids: '0'"),
        (IDS, np.array([[1.2, -0.2, 0.0]] * 3), "negative"),
    ],
)
def test_write_refuses_invalid_input(tmp_path, ids, probs, message):
    with pytest.raises(PipelineError, match=message):
        write_submission(tmp_path / "s.csv", ids, probs, THREE)
    assert not (tmp_path / "s.csv").exists()


def test_read_accepts_python_literals_but_never_evaluates(tmp_path):
    path = write_csv(tmp_path / "s.csv", [["0", "no_relation", "(0.5, 0.5, 0)"]], bom=True)
    ids, _, probs = read_submission(path)
    assert ids == ["0"]
    np.testing.assert_array_equal(probs, [[0.5, 0.5, 0.0]])
    write_csv(path, [["0", "no_relation", "[__import__('os').getcwd()]"]])
    with pytest.raises(PipelineError, match="row 1 .*cannot parse probs"):
        read_submission(path)


def test_valid_file_has_no_problems(tmp_path):
    assert problems_for(tmp_path, GOOD_ROWS, bom=True) == []


def test_tied_argmax_accepts_any_tied_label(tmp_path):
    rows = [GOOD_ROWS[0], ["1", "per:title", "[0.2, 0.4, 0.4]"], GOOD_ROWS[2]]
    assert problems_for(tmp_path, rows) == []


def test_wrong_header(tmp_path):
    assert problems_for(tmp_path, GOOD_ROWS, header=("id", "label", "probs")) == [
        "header is ['id', 'label', 'probs'], expected ['id', 'pred_label', 'probs']"
    ]


def test_missing_ids_names_at_most_five(tmp_path):
    test_ids = [str(i) for i in range(10)]
    assert problems_for(tmp_path, GOOD_ROWS, test_ids=test_ids) == [
        "7 test ids missing: '3', '4', '5', '6', '7' and 2 more"
    ]


def test_extra_ids(tmp_path):
    rows = GOOD_ROWS + [["99", "no_relation", "[1.0, 0.0, 0.0]"]]
    assert problems_for(tmp_path, rows) == ["1 ids not in the test file: '99'"]


def test_duplicate_ids(tmp_path):
    rows = GOOD_ROWS + [GOOD_ROWS[1]]
    assert problems_for(tmp_path, rows) == ["1 duplicate ids: '1'"]


def test_row_order_names_first_mismatch(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1]]
    assert problems_for(tmp_path, rows) == ["row order differs from the test file: row 2 has id '2', expected '1'"]


def test_unknown_label(tmp_path):
    rows = [GOOD_ROWS[0], ["1", "org:founder", "[0.1, 0.6, 0.3]"], GOOD_ROWS[2]]
    assert problems_for(tmp_path, rows) == [
        "unknown pred_label: 1 row(s), first at row 2 (id '1', pred_label 'org:founder')"
    ]


def test_wrong_number_of_probs(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], ["2", "per:title", "[0.5, 0.5]"]]
    assert problems_for(tmp_path, rows) == [
        "wrong number of probs (expected 3): 1 row(s), first at row 3 (id '2', 2 probs)"
    ]


def test_nan_and_inf_probs(tmp_path):
    rows = [["0", "no_relation", "[NaN, 0.5, 0.5]"], ["1", "org:founded", "[0.0, Infinity, 0.0]"], GOOD_ROWS[2]]
    assert problems_for(tmp_path, rows) == ["NaN or infinite probs: 2 row(s), first at row 1 (id '0')"]


def test_negative_probs(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], ["2", "per:title", "[-0.1, 0.1, 1.0]"]]
    assert problems_for(tmp_path, rows) == ["negative probs: 1 row(s), first at row 3 (id '2', min -0.1)"]


def test_probs_not_summing_to_one(tmp_path):
    rows = [GOOD_ROWS[0], ["1", "org:founded", "[0.1, 0.6, 0.31]"], ["2", "per:title", "[0.2, 0.3, 0.50005]"]]
    assert problems_for(tmp_path, rows) == [
        "probs not summing to 1 (tolerance 0.0001): 1 row(s), first at row 2 (id '1', sum 1.01)"
    ]


def test_pred_label_not_argmax(tmp_path):
    rows = [GOOD_ROWS[0], ["1", "no_relation", "[0.1, 0.6, 0.3]"], GOOD_ROWS[2]]
    assert problems_for(tmp_path, rows) == [
        "pred_label is not the argmax of probs: 1 row(s), first at row 2 (id '1', argmax 'org:founded')"
    ]


def test_unparseable_probs(tmp_path):
    rows = [GOOD_ROWS[0], ["1", "org:founded", "0.1 0.6 0.3"], ["2", "per:title", "['a', 'b', 'c']"]]
    assert problems_for(tmp_path, rows) == [
        "unparseable probs: 2 row(s), first at row 2 (id '1', probs '0.1 0.6 0.3')"
    ]


def test_wrong_number_of_fields(tmp_path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], ["2", "per:title"]]
    assert problems_for(tmp_path, rows) == [
        "wrong number of fields (expected 3): 1 row(s), first at row 3 (id '2', 2 fields)"
    ]


def test_several_problems_are_all_reported(tmp_path):
    rows = [["0", "nope", "[0.7, 0.2, 0.1]"], ["1", "org:founded", "[0.1, 0.6]"]]
    problems = problems_for(tmp_path, rows)
    assert problems == [
        "1 test ids missing: '2'",
        "unknown pred_label: 1 row(s), first at row 1 (id '0', pred_label 'nope')",
        "wrong number of probs (expected 3): 1 row(s), first at row 2 (id '1', 2 probs)",
    ]


def test_missing_file_raises(tmp_path):
    with pytest.raises(PipelineError, match="cannot read submission"):
        validate_submission(tmp_path / "absent.csv", IDS, THREE)
