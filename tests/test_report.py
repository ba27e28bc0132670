"""The HTML report, the runs index, the comparison page and the leaderboard log, on a small real run and on
fake run folders (optional sections, an ensemble, a full KLUE-RE-sized run)."""

from __future__ import annotations

import ast
import json
import re
import shutil
from html import escape

import numpy as np
import pytest
import test_runs
from test_runs import fake_copy
from typer.testing import CliRunner

from re_pipeline.cli import app
from re_pipeline.config import load_config
from re_pipeline.core.errors import PipelineError
from re_pipeline.core.io_utils import write_json
from re_pipeline.core.labels import LabelSet
from re_pipeline.data.sample import generate, write_sample
from re_pipeline.evaluation.metrics import softmax
from re_pipeline.pipeline import run_pipeline
from re_pipeline.records.browser import FLAGS, chromium
from re_pipeline.records.html_report import MAX_ERRORS, PAGE_ROWS, write_report
from re_pipeline.records.leaderboard import scores

pytestmark = pytest.mark.usefixtures("wide_console")

runner = CliRunner()
work = test_runs.work  # the small real run (a module-scoped fixture: one for this module)
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?!data:|#|\.\./index\.html|[\w.-]+/report\.html)""")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def test_a_finished_run_writes_one_self_contained_report_and_the_index(work):
    root, run = work
    html = (run / "report.html").read_text(encoding="utf-8")
    result = json.loads((run / "result.json").read_text())
    assert not EXTERNAL.search(html) and "<link" not in html and "url(" not in html and "@import" not in html
    labels = json.loads((run / "labels.json").read_text())["labels"]
    table = html[html.index('id="per-class"') : html.index("</table>", html.index('id="per-class"'))]
    assert table.count("<tr>") == len(labels) + 1  # the header and one row per class
    for text in (
        result["train_fingerprint"],
        result["test_fingerprint"],
        result["environment"]["versions"]["torch"],
        "learning_rate: 0.001",
        "validation micro_f1",
        f"{result['metrics']['micro_f1']:.2f}",
        "data:image/png;base64,",
        'id="errors-data"',
    ):
        assert text in html, text
    assert 'id="ensemble"' not in html and ("reweighted" in html) == bool(result.get("metrics_reweighted"))
    shift = json.loads((run / "shift.json").read_text())["tables"]  # the run's train-versus-test shift tables
    assert '<section id="shift">' in html and all(escape(title) in html for title in shift)
    index = (root / "runs" / "index.html").read_text(encoding="utf-8")
    assert f'href="{run.name}/report.html"' in index and not EXTERNAL.search(index)


def test_the_run_records_its_validation_sentences_for_the_misclassified_list(work):
    _, run = work
    records = [json.loads(line) for line in (run / "oof_examples.jsonl").read_text().splitlines()]
    validated = np.flatnonzero(~np.isnan(np.load(run / "oof_probs.npy")).any(axis=1))
    assert [r["row"] for r in records] == validated.tolist()
    ids = json.loads((run / "oof_ids.json").read_text())["ids"]
    for r in records:
        assert r["id"] == ids[r["row"]]
        for key in ("subject", "object"):
            entity = r[key]
            assert r["sentence"][entity["start_idx"] : entity["end_idx"] + 1] == entity["word"]


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    """A small real classical run (`model.kind: prior`): its fold has no Trainer, so no steps or loss history."""
    root = tmp_path_factory.mktemp("prior")
    train, test = write_sample(root / "sample", n_train=160, n_test=40)
    cfg = load_config(None, [f"data.train={train}", f"data.test={test}", "model.kind=prior", "name=prior"])
    run = run_pipeline(
        cfg, root / "runs" / "20260101-000000-prior", root / "subs", log=lambda m: None, cache=root / "cache"
    )
    return root, run


def test_a_classical_run_without_a_trainer_gets_the_same_report(prior_run):
    _, run = prior_run
    html = (run / "report.html").read_text(encoding="utf-8")
    labels = json.loads((run / "labels.json").read_text())["labels"]
    table = html[html.index('id="per-class"') : html.index("</table>", html.index('id="per-class"'))]
    assert table.count("<tr>") == len(labels) + 1
    assert 'id="errors-data"' in html and "no validation sentences" not in html and not EXTERNAL.search(html)
    assert '<section id="folds">' in html and "kind: prior" in html  # the resolved config


def test_optional_sections_render_when_their_files_are_present(work, tmp_path):
    _, run = work
    copy = fake_copy(run, tmp_path / "runs" / "with-shift")
    result = json.loads((copy / "result.json").read_text())
    result["metrics_reweighted"] = {"micro_f1": 41.25, "auprc": 38.5, "accuracy": 50.0}
    (copy / "result.json").write_text(json.dumps(result))
    write_json(
        copy / "shift.json",
        {
            "tables": {
                "type pairs": [
                    {"pair": "PER-ORG", "train %": 40.0, "test %": 12.5},
                    {"pair": "ORG-POH", "train %": 8.0, "test %": 41.0},
                ],
                "seen entities": [],
            }
        },
    )
    html = write_report(copy).read_text(encoding="utf-8")
    assert "validation reweighted to the test micro_f1" in html and "41.25" in html
    shift = html[html.index('<section id="shift">') :]
    assert "type pairs" in shift and "ORG-POH" in shift and "41.00" in shift and "seen entities" in shift


def test_an_ensemble_report_shows_its_members_beside_the_ensemble(work, tmp_path, monkeypatch):
    _, run = work
    monkeypatch.chdir(tmp_path)
    a, b = fake_copy(run, tmp_path / "a"), fake_copy(run, tmp_path / "b")
    result = invoke("ensemble", a, b, "--runs-dir", tmp_path / "runs", "--submissions-dir", tmp_path / "subs")
    assert result.exit_code == 0, result.output
    (ensemble,) = (tmp_path / "runs").glob("*-ensemble")
    assert f"report: {ensemble / 'report.html'}" in result.output
    html = (ensemble / "report.html").read_text(encoding="utf-8")
    members = html[
        html.index('<section id="ensemble">') : html.index("</section>", html.index('<section id="ensemble">'))
    ]
    assert str(a) in members and str(b) in members and "0.50" in members and ">ensemble<" in members
    assert (ensemble / "oof_examples.jsonl").read_bytes() == (run / "oof_examples.jsonl").read_bytes()
    submission = json.loads((ensemble / "result.json").read_text())["submission"]
    added = invoke("lb", "add", submission, "--public", "70.5", "--runs-dir", tmp_path / "runs")
    assert added.exit_code == 0, added.output
    assert scores(ensemble)[0]["public_micro_f1"] == 70.5 and "70.50" in (ensemble / "report.html").read_text()


def test_compare_writes_config_differences_and_per_class_deltas(work, tmp_path):
    _, run = work
    other = fake_copy(run, tmp_path / "runs" / "other", micro_f1=12.0, lr=0.5)
    result = invoke("report", "--compare", run, other, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    page = tmp_path / "runs" / f"compare-{run.name}-vs-other.html"
    html = page.read_text(encoding="utf-8")
    assert "train.learning_rate" in html and "0.5" in html and "f1 B - A" in html
    labels = json.loads((run / "labels.json").read_text())["labels"]
    table = html[html.index('id="per-class"') : html.index("</table>", html.index('id="per-class"'))]
    assert table.count("<tr>") == len(labels) + 1 and not EXTERNAL.search(html)


def test_lb_add_records_scores_against_the_run_that_wrote_the_submission(work, tmp_path):
    root, run = work
    runs = tmp_path / "runs"
    copy = fake_copy(run, runs / run.name)
    submission = json.loads((run / "result.json").read_text())["submission"]
    added = invoke(
        "lb", "add", submission, "--public", "71.2", "--auprc", "80.1", "--note", "first try", "--runs-dir", runs
    )
    assert added.exit_code == 0, added.output
    (entry,) = scores(copy)
    assert (entry["public_micro_f1"], entry["public_auprc"], entry["note"]) == (71.2, 80.1, "first try")
    listed = invoke("runs", "--runs-dir", runs)
    assert "lb_micro_f1" in listed.output and "71.20" in listed.output and "80.10" in listed.output
    html = (copy / "report.html").read_text(encoding="utf-8")
    assert "leaderboard public micro_f1" in html and "80.10" in html and "first try" in html
    predicted = shutil.copy(submission, tmp_path / f"{run.name}-test_data.csv")  # as `re-pipeline predict` names it
    assert invoke("lb", "add", predicted, "--public", "69", "--runs-dir", runs).exit_code == 0
    assert [e["public_micro_f1"] for e in scores(copy)] == [71.2, 69.0]
    stray = shutil.copy(submission, tmp_path / "mine.csv")
    refused = invoke("lb", "add", stray, "--public", "70", "--runs-dir", runs)
    assert refused.exit_code == 2 and "name the run with --run" in refused.output
    assert invoke("lb", "add", stray, "--public", "70", "--run", run.name, "--runs-dir", runs).exit_code == 0
    bad = invoke("lb", "add", submission, "--public", "0.712", "--auprc", "801", "--runs-dir", runs)
    assert bad.exit_code == 2 and "--auprc is a score in points" in bad.output


def test_the_index_plots_validation_against_the_leaderboard_with_the_rank_correlation(work, tmp_path):
    _, run = work
    runs = tmp_path / "runs"
    for i, (val, public) in enumerate([(60.0, 50.0), (70.0, 55.0), (65.0, 60.0)]):
        copy = fake_copy(run, runs / f"r{i}", micro_f1=val)
        invoke(
            "lb",
            "add",
            json.loads((copy / "result.json").read_text())["submission"],
            "--public",
            public,
            "--run",
            copy.name,
            "--runs-dir",
            runs,
        )
        html = (runs / "index.html").read_text(encoding="utf-8")
        rho = re.search(r'id="rank-correlation">([^<]*)<', html).group(1)
        assert rho == ("0.50" if i == 2 else "- (needs three runs with both scores)")
    assert all(f'href="r{i}/report.html"' in html for i in range(3)) and "across 3 runs" in html


KLUE_ROWS = 32_470


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A fake finished run of KLUE-RE's size: 32,470 validated rows, 30 labels, sentences of KLUE's mean length,
    more rows predicted wrong than a page embeds."""
    run = tmp_path_factory.mktemp("full") / "runs" / "20260101-000000-full"
    run.mkdir(parents=True)
    labels = LabelSet.klue()
    rng = np.random.default_rng(0)
    gold = rng.integers(len(labels), size=KLUE_ROWS)
    logits = rng.normal(size=(KLUE_ROWS, len(labels)))
    logits[np.arange(KLUE_ROWS), gold] += 2.0
    probs = softmax(logits)
    rows = generate(KLUE_ROWS, 0)
    filler = " 그리고 이 문장은 한국어 위키백과에서 온 문장처럼 길게 이어지며 여러 정보를 담고 있다."
    records = []
    for i, row in enumerate(rows):
        subject, obj = (ast.literal_eval(row[key]) for key in ("subject_entity", "object_entity"))
        sentence = (row["sentence"] + filler * 2)[:97]
        records.append({"row": i, "id": row["id"], "sentence": sentence, "subject": subject, "object": obj})
    (run / "oof_examples.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    np.save(run / "oof_probs.npy", probs)
    write_json(run / "oof_ids.json", {"ids": [r["id"] for r in rows], "labels": [labels.names[g] for g in gold]})
    write_json(run / "labels.json", labels.to_dict())
    write_json(
        run / "result.json", {"run_id": run.name, "name": "full", "metrics": {"micro_f1": 75.0}, "seconds": 3600}
    )
    return run, (probs.argmax(axis=1) != gold).sum()


def test_a_full_klue_sized_report_stays_under_10_mb(full_run):
    run, wrong = full_run
    html = write_report(run).read_text(encoding="utf-8")
    assert f"{wrong:,} of {KLUE_ROWS:,} validated rows; the {MAX_ERRORS:,} most confident shown" in html
    assert (run / "report.html").stat().st_size < 10 * 2**20


# In a headless browser, as a person sees the pages: Debian's chromium driven by Playwright (no browser download).


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    try:
        executable = chromium()
    except PipelineError as exc:
        pytest.skip(f"no browser for the report's browser test: {exc}")
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=list(FLAGS))
        except sync_api.Error as exc:
            pytest.skip(f"{executable} does not start here: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors, uncaught exceptions and every request that leaves the file."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.problems = []
    opened.on("console", lambda msg: msg.type == "error" and opened.problems.append(f"console: {msg.text}"))
    opened.on("pageerror", lambda exc: opened.problems.append(f"exception: {exc}"))
    opened.on("request", lambda req: req.url.startswith(("file:", "data:")) or opened.problems.append(req.url))
    yield opened
    context.close()


def column(page, table: str, index: int) -> list[str]:
    return page.locator(f"{table} tbody tr td:nth-child({index})").all_inner_texts()


@pytest.mark.parametrize("which", ["work", "prior_run"])
def test_the_report_in_a_browser(which, request, page):
    _, run = request.getfixturevalue(which)  # a transformer run, and a classical one
    page.goto((run / "report.html").as_uri())
    labels = json.loads((run / "labels.json").read_text())["labels"]
    assert column(page, "#per-class", 1) == labels  # one row per class, in label order
    page.click("#per-class th[data-key=support]")
    supports = [int(v) for v in column(page, "#per-class", 2)]
    assert supports == sorted(supports, reverse=True) and column(page, "#per-class", 1) != labels
    page.click("#per-class th[data-key=support]")
    assert [int(v) for v in column(page, "#per-class", 2)] == sorted(supports)

    records = {
        json.loads(line)["id"]: json.loads(line) for line in (run / "oof_examples.jsonl").read_text().splitlines()
    }
    rows = page.locator("#errors-table tbody tr")
    assert rows.count() > 0
    for i in range(rows.count()):
        row, record = rows.nth(i), records[rows.nth(i).get_attribute("data-id")]
        for key, mark in (("subject", "mark.subj"), ("object", "mark.obj")):
            assert "".join(row.locator(mark).all_inner_texts()) == record[key]["word"]
        assert row.locator("td.sentence").inner_text() == record["sentence"]

    total = int(page.inner_text("#errors-count").split()[0])
    golds = [t.rsplit(" (", 1)[0] for t in column(page, "#errors-table", 3)]
    label = min(set(golds), key=golds.count)
    page.select_option("#gold-filter", label)
    shown = column(page, "#errors-table", 3)
    assert 0 < len(shown) < total and all(t.startswith(f"{label} (") for t in shown)
    assert page.inner_text("#errors-count").startswith(f"{len(shown)} of {total}")
    assert page.problems == []


def test_the_full_klue_sized_report_pages_its_misclassified_rows(full_run, page):
    run, _ = full_run
    write_report(run)
    page.goto((run / "report.html").as_uri())
    assert page.locator("#errors-table tbody tr").count() == PAGE_ROWS
    pages = -(-MAX_ERRORS // PAGE_ROWS)
    assert page.inner_text("#page-info").strip() == f"page 1 of {pages}"
    first = page.locator("#errors-table tbody tr").first.get_attribute("data-id")
    page.click("#next")
    assert page.inner_text("#page-info").strip() == f"page 2 of {pages}"
    assert page.locator("#errors-table tbody tr").first.get_attribute("data-id") != first
    assert page.problems == []


def test_the_index_and_comparison_pages_in_a_browser(work, page, tmp_path):
    _, run = work
    other = fake_copy(run, tmp_path / "runs" / "other", micro_f1=12.0, lr=0.5)
    assert invoke("report", "--compare", run, other, "--runs-dir", tmp_path / "runs").exit_code == 0
    page.goto((tmp_path / "runs" / f"compare-{run.name}-vs-other.html").as_uri())
    page.click("#per-class th[data-key='f1 B - A']")
    assert page.locator("#per-class th[aria-sort]").inner_text().startswith("f1 B - A")
    write_report(other)
    page.goto((tmp_path / "runs" / "index.html").as_uri())
    page.click("#runs a")
    assert page.url.endswith("other/report.html") and page.problems == []


def test_report_screenshot_is_taken_by_headless_chromium(work, tmp_path, browser):
    _, run = work
    png = tmp_path / "docs" / "report.png"
    result = invoke("report", run, "--screenshot", png, "--size", "900x700")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in result.output
