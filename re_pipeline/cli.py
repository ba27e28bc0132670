"""Command line: `re-pipeline SUBCOMMAND`. Thin: parse, load config, call a stage, print a summary."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config import Config, load_config, parse_override, render, with_values
from .core.errors import PipelineError
from .core.io_utils import CACHE, atomic_write, read_json
from .core.labels import resolve_label_set
from .core.progress import console_stages
from .data.augment import augment, summary_table
from .data.io import ReadOptions, read_examples, row_ids, write_examples_csv
from .data.load import load_configured
from .experiments.hpsearch import run_hpsearch
from .experiments.jobs import run_jobs
from .experiments.reproduce import default_tolerance
from .experiments.reproduce import reproduce as rerun
from .experiments.screen import EPOCHS, FRACTION, run_screen
from .models.packaged import PACKAGED, backbone_folder, is_packaged
from .pipeline import distributed, run_members, run_pipeline, run_tapt_stage
from .predict import predict_file
from .records.browser import screenshot as take_screenshot
from .records.html_report import write_comparison, write_index, write_report
from .records.leaderboard import add_score, run_of_submission
from .records.reports import write_reports
from .records.runs import compare_runs, environment_changes, finished, list_runs, metric_rows, resolve_run, run_summary
from .submit.ensemble import run_ensemble
from .submit.submission import validate_submission

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Korean relation extraction pipeline (KLUE-RE style)."
)
console = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file")
SetOpt = typer.Option(None, "--set", "-s", help="override a config key: section.key=value (repeatable)")
RunConfigOpt = typer.Option(Path("configs/default.yaml"), "--config", "-c", help="YAML config file")
DataOpt = typer.Option(None, "--data", "-d", help="folder with train.csv and test_data.csv, or a train file")
VerboseOpt = typer.Option(
    False, "--verbose", "-v", help="the Trainer's own progress bars and log lines instead of one bar per stage"
)


def user_errors(fn):
    """Print PipelineError as one red line and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            console.print(f"[bold red]error:[/] {escape(' '.join(str(exc).split()))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _config(path: Path | None, overrides: list[str] | None) -> Config:
    return load_config(path, overrides or [])


def print_table(title: str, rows: list[dict]) -> None:
    """Rows of equal keys as a table; integers with thousands separators. The first column (a name or
    run id) never wraps; the others fold when the terminal is narrow."""
    table = Table(title=title)
    for i, col in enumerate(rows[0]):
        table.add_column(
            col, justify="right" if isinstance(rows[0][col], int) else "left", overflow="fold", no_wrap=i == 0
        )
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


def _log(msg: str) -> None:
    console.print(msg, markup=False, highlight=False)


def print_ledger(summary: dict) -> None:
    print_table(summary["source"], [summary["counts"]])
    for rule, n in summary["rules"].items():
        console.print(f"  rule {rule}: {n:,} rows", markup=False)
    for note in summary["notes"]:
        console.print(f"  note: {note}", markup=False, highlight=False)


@app.command()
@user_errors
def clean(
    file: Path = typer.Argument(..., help="CSV or KLUE JSON file, or hub:klue/re:SPLIT"),
    out_dir: Path = typer.Option(
        Path("data/clean"), "--out-dir", "-o", help="where the cleaned file, audit and quarantine go"
    ),
    config: Path | None = ConfigOpt,
    set_: list[str] | None = SetOpt,
):
    """Load, validate and clean a data file; write the cleaned CSV, the audit CSV and the quarantine CSV."""

    cfg = _config(config, set_)
    with console.status(f"loading and cleaning {file}"):
        loaded = load_configured(file, cfg.data, cfg.clean)
    stem = Path(str(file).replace(":", "_")).stem
    out_dir.mkdir(parents=True, exist_ok=True)
    write_examples_csv(out_dir / f"{stem}.clean.csv", loaded.examples)
    loaded.ledger.write(out_dir / f"{stem}.audit.csv", out_dir / f"{stem}.quarantine.csv")
    summary = {
        **loaded.ledger.summary(),
        "label_set": loaded.label_set.name,
        "labels": len(loaded.label_set),
        "fingerprint": loaded.fingerprint,
    }
    with atomic_write(out_dir / f"{stem}.summary.json") as fh:
        json.dump(summary, fh, ensure_ascii=False, indent=1)
    print_ledger(summary)
    console.print(
        f"labels: {summary['label_set']} ({summary['labels']}); fingerprint {loaded.fingerprint}; outputs in {out_dir}/{stem}.*"
    )


@app.command("augment")
@user_errors
def augment_cmd(
    file: Path = typer.Argument(..., help="training file (CSV or KLUE JSON)"),
    out: Path = typer.Option(Path("data/augmented/train.augmented.csv"), "--out", "-o", help="augmented CSV to write"),
    config: Path | None = ConfigOpt,
    set_: list[str] | None = SetOpt,
):
    """Load and clean a training file, apply the config's `augment.methods`, write originals + children."""

    cfg = _config(config, set_)
    if not cfg.augment.methods:
        raise PipelineError("no augmentation methods in the config: set augment.methods (see configs/augment.yaml)")
    with console.status(f"loading, cleaning and augmenting {file}"):
        loaded = load_configured(file, cfg.data, cfg.clean)
        examples, summary = augment(loaded.examples, cfg.augment)
    write_examples_csv(out, examples)
    print_table("augmentation", summary_table(summary))
    console.print(
        f"{len(loaded.examples):,} originals + {len(examples) - len(loaded.examples):,} children written to {out}"
    )


@app.command("validate-submission")
@user_errors
def validate_submission_cmd(
    file: Path = typer.Argument(..., help="submission CSV (id,pred_label,probs)"),
    test: Path = typer.Option(..., "--test", "-t", help="the test file the submission answers"),
    labels: str = typer.Option("klue", help="label set: klue or a label JSON path"),
):
    """Check a leaderboard CSV against the test file: ids, order, labels, probabilities."""

    ids = row_ids(*read_examples(test, ReadOptions(unique_ids=True)))  # every row, quarantined ones too
    problems = validate_submission(file, ids, resolve_label_set(labels, []))
    if problems:
        for problem in problems:
            console.print(f"[red]✗[/] {problem}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {file} is a valid submission for {test} ({len(ids):,} rows)")


DEFAULT_TRAIN = "data/raw/train.csv"
SAMPLE = Path("data/sample")  # the embedded sample (tools/klue_sample.py cut it; data/sample/README.md)


def _run_config(path: Path | None, overrides: list[str] | None, data: Path | None) -> Config:
    """The config of a command that trains: its file, `--set`, the data (`resolve_data`), and on the embedded
    sample the config's `data.sample_overrides` (printed; a `--set` of the same key wins)."""
    cfg = _config(path, overrides)
    if not resolve_data(cfg, data):
        return cfg
    given = {parse_override(item)[0] for item in overrides or []}
    extra = dict(parse_override(item) for item in cfg.data.sample_overrides)
    extra = {key: value for key, value in extra.items() if key not in given}
    if extra:
        console.print(
            f"[yellow]on the sample, {cfg.name}'s data.sample_overrides: "
            + ", ".join(f"{key}={value}" for key, value in extra.items())
            + " (recorded in the run's config.yaml)[/]"
        )
    return with_values(cfg, extra)


def resolve_data(cfg: Config, data: Path | None) -> bool:
    """`--data DIR` (train.csv + test_data.csv) or a file; with no data at all, the embedded KLUE-RE sample
    (then True)."""
    if data is not None:
        if data.is_dir():
            cfg.data.train = str(data / "train.csv")
            cfg.data.test = str(data / "test_data.csv") if (data / "test_data.csv").exists() else None
        else:
            cfg.data.train = str(data)
        return False
    if cfg.data.train == DEFAULT_TRAIN and not Path(DEFAULT_TRAIN).exists():
        if not (SAMPLE / "train.csv").exists():
            raise PipelineError(
                f"no {DEFAULT_TRAIN} and no embedded sample ({SAMPLE}/, in the repository): pass --data DIR"
            )
        cfg.data.train, cfg.data.test = str(SAMPLE / "train.csv"), str(SAMPLE / "test_data.csv")
        console.print(
            f"[yellow]no {DEFAULT_TRAIN}: training on the embedded sample ({SAMPLE}/: 2,000 rows of KLUE-RE's "
            "training set, and 500 labelled rows as its test, whose entities the 2,000 never show; CC BY-SA 4.0). "
            "Put the competition's train.csv and test_data.csv in data/raw/ to train on them.[/]"
        )
        return True
    if cfg.data.test and not Path(cfg.data.test).exists():
        console.print(f"[yellow]no test file at {cfg.data.test}: training without a submission[/]")
        cfg.data.test = None
    return False


@app.command()
@user_errors
def train(
    config: Path | None = RunConfigOpt,
    data: Path | None = DataOpt,
    set_: list[str] | None = SetOpt,
    resume: Path | None = typer.Option(
        None, "--resume", help="continue an interrupted run folder from its last checkpoint"
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="the new run folder (default runs/<time>-<name>)"),
    fold: list[int] | None = typer.Option(
        None, "--fold", help="train only this fold, from 0 (repeatable); --resume later assembles the run"
    ),
    verbose: bool = VerboseOpt,
):
    """Train a model (load, clean, TAPT, folds), score it, and write a validated submission.

    Data parallel: `torchrun --nproc_per_node=N -m re_pipeline train ...` (`make train NPROC=N`).
    """

    if resume is not None:
        if run_dir is not None:
            raise PipelineError("--resume continues its own run folder: leave out --run-dir")
        if not (resume / "config.yaml").exists():
            raise PipelineError(f"{resume}: not a run folder (no config.yaml)")
        cfg = load_config(resume / "config.yaml")
    else:
        if run_dir is not None and (run_dir / "config.yaml").exists() and distributed().is_main_process:
            raise PipelineError(f"--run-dir {run_dir} already holds a run: continue it with --resume {run_dir}")
        cfg = _run_config(config, set_, data)
    with console_stages(console, verbose) as bars:
        run_dir = run_pipeline(cfg, run_dir=resume or run_dir, log=_log, only_folds=fold or None, bars=bars)
    if not distributed().is_main_process:
        return
    if fold:
        console.print(
            f"fold(s) {', '.join(map(str, fold))} trained in {run_dir}; `re-pipeline train --resume {run_dir}` assembles the run",
            highlight=False,
        )
        return
    print_table("run", cells(run_rows(run_dir)))
    combined = run_members(cfg, run_dir, log=_log)
    if combined is not None:
        result = read_json(combined / "result.json")
        decided = (result["ensemble"].get("test_prior") or {}).get("validation_decided") or result["metrics"] or {}
        rows = [{"": f"validation {metric}", "value": value} for metric, value in decided.items()]
        rows += [{"": f"test (its own labels) {k}", "value": v} for k, v in (result.get("test_metrics") or {}).items()]
        rows += [{"": "run folder", "value": str(combined)}, {"": "submission", "value": result["submission"]}]
        print_table(f"ensemble of {', '.join(result['ensemble']['members'])}", cells(rows))


def run_rows(run_dir: Path) -> list[dict]:
    """The end-of-run summary: validation metrics (reweighted, decided), the labelled test's scores when it has
    labels, run folder, submission, report."""
    result = read_json(run_dir / "result.json")
    rows = [
        {"": f"{title} {metric}", "value": value}
        for title, key in (
            ("validation", "metrics"),
            ("reweighted", "metrics_reweighted"),
            ("decided", "metrics_decided"),
            ("test (its own labels)", "test_metrics"),
        )
        for metric, value in (result.get(key) or {}).items()
    ]
    rows += [{"": "run folder", "value": str(run_dir)}, {"": "submission", "value": result.get("submission")}]
    report = run_dir / "report.html"
    return rows + [{"": "report", "value": str(report) if report.exists() else None}]


@app.command()
@user_errors
def hpsearch(
    config: Path | None = RunConfigOpt,
    data: Path | None = DataOpt,
    set_: list[str] | None = SetOpt,
    trials: int = typer.Option(20, "--trials", "-n", help="trials to run in this invocation"),
    storage: str | None = typer.Option(
        None, "--storage", help="Optuna storage URL shared by workers (default sqlite:///runs/hpsearch/<study>.db)"
    ),
    study: str | None = typer.Option(None, "--study", help="study name (default: the config's name)"),
):
    """Search hyperparameters with Optuna over the config's `search.space`; each trial is a run folder.

    Run it in several shells with one --storage and --study to search in parallel.
    """

    cfg = _run_config(config, set_, data)
    console.print(f"best config: {run_hpsearch(cfg, trials, storage, study, log=_log)}", highlight=False)


@app.command()
@user_errors
def screen(
    configs: list[Path] = typer.Argument(..., help="config files: one screen each, in turn"),
    data: Path | None = DataOpt,
    set_: list[str] | None = SetOpt,
    fraction: float = typer.Option(FRACTION, "--fraction", help="share of the training rows (label-stratified)"),
    epochs: float = typer.Option(EPOCHS, "--epochs", help="epochs over that share"),
    out: Path | None = typer.Option(None, "--out", help="the table's JSON file (default runs/screens/<id>.json)"),
    verbose: bool = VerboseOpt,
):
    """Screen configs cheaply: each config's run on a share of the training rows for fewer epochs, validated
    and predicted in full; a table to rank systems before full runs (agreement: BENCHMARKS.md)."""

    cfgs = [_run_config(path, set_, data) for path in configs]
    with console_stages(console, verbose) as bars:
        rows = run_screen(
            cfgs,
            lambda cfg, run_dir: run_pipeline(cfg, run_dir=run_dir, log=_log, bars=bars),
            out,
            log=_log,
            fraction=fraction,
            epochs=epochs,
        )
    print_table("screen", [{k: v for k, v in row.items() if k != "run"} for row in rows])


@app.command()
@user_errors
def jobs(
    configs: list[Path] = typer.Argument(..., help="config files: one job each, or one per fold with --folds"),
    data: Path | None = DataOpt,
    set_: list[str] | None = SetOpt,
    folds: bool = typer.Option(False, "--folds", help="every fold of a config as a job of its own"),
    workers: int = typer.Option(1, "--workers", "-w", help="jobs running at a time"),
    ensemble: str = typer.Option(
        "mean", "--ensemble", "-e", help="mean | fit-f1 | fit-auprc | none: how the finished runs are combined"
    ),
):
    """Train several configs (or the folds of one) as separate processes, N at a time, then ensemble the runs."""

    cfgs = [_run_config(path, set_, data) for path in configs]
    done, finished, combined = run_jobs(cfgs, workers, folds, None if ensemble == "none" else ensemble, log=_log)
    print_table(
        "jobs",
        [
            {
                "job": job.name,
                "status": "done" if job.returncode == 0 else f"failed ({job.returncode})",
                "seconds": round(job.seconds),
                "log": str(job.log),
            }
            for job in done
        ],
    )
    console.print(f"finished runs: {', '.join(map(str, finished)) or 'none'}", highlight=False)
    if combined is not None:
        console.print(f"ensemble ({ensemble}): {combined}", highlight=False)
    if any(job.returncode != 0 for job in done):
        raise typer.Exit(1)


@app.command()
@user_errors
def tapt(
    config: Path | None = RunConfigOpt,
    data: Path | None = DataOpt,
    set_: list[str] | None = SetOpt,
    verbose: bool = VerboseOpt,
):
    """Task-adaptive pretraining alone: masked LM on the train + test sentences, saved as a run's `model/`."""

    cfg = _run_config(config, set_, data)
    with console_stages(console, verbose) as bars:
        run_dir = run_tapt_stage(cfg, log=_log, bars=bars)
    result = read_json(run_dir / "result.json")
    console.print(
        f"TAPT: {result['tapt']['steps']:,} steps, final masked-LM loss {result['tapt']['final_loss']}; run folder: {run_dir}"
    )
    console.print(
        f"train on it: --set model.backbone.name={result['model']} --set tapt.enabled=false",
        markup=False,
        highlight=False,
    )


@app.command()
@user_errors
def predict(
    run_dir: Path = typer.Argument(..., help="a run folder (runs/<run_id>)"),
    data: Path = typer.Option(..., "--data", "-d", help="test file to predict"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="submission path (default submissions/<run>-<data>.csv)"
    ),
):
    """Predict a test file with a trained run and write a validated submission."""

    out = out or Path("submissions") / f"{run_dir.name}-{data.stem}.csv"
    path = predict_file(run_dir, data, out, log=lambda msg: console.print(msg, markup=False))
    console.print(f"submission: {path}")


config_app = typer.Typer(no_args_is_help=True, help="The resolved config, every key with its help.")
app.add_typer(config_app, name="config")


@config_app.command("show")
@user_errors
def config_show(config: Path | None = ConfigOpt, set_: list[str] | None = SetOpt):
    """Print the resolved config (the defaults, or FILE with --set overrides) as YAML, each key with its help."""
    typer.echo(render(_config(config, set_)), nl=False)


backbone_app = typer.Typer(no_args_is_help=True, help="Packaged backbones (multilingual-e5-small, E5S1 .bin files).")
app.add_typer(backbone_app, name="backbone")


@backbone_app.command("prepare")
@user_errors
def backbone_prepare(
    name: str = typer.Argument(..., help="multilingual-e5-small, or a path to an E5S1 .bin file"),
    cache: Path = typer.Option(CACHE, "--cache", help="the project's cache folder"),
):
    """Convert a packaged backbone into a transformers folder (once; later runs reuse it) and print the folder last."""
    if not is_packaged(name):
        raise PipelineError(
            f"{name!r} is not a packaged backbone: use one of {', '.join(PACKAGED)} or a path to a .bin file"
        )
    folder = backbone_folder(name, cache, log=lambda msg: console.print(msg, markup=False))
    typer.echo(folder.resolve())


RunsDirOpt = typer.Option(Path("runs"), "--runs-dir", help="folder holding the run folders")
SubmissionsDirOpt = typer.Option(Path("submissions"), "--submissions-dir", help="where the submission CSV goes")
RunArg = typer.Argument(..., help="a run folder, or a run id under --runs-dir")
runs_app = typer.Typer(invoke_without_command=True, help="List (default), show and compare run folders.")
app.add_typer(runs_app, name="runs")


def cells(rows: list[dict]) -> list[dict]:
    """Table rows with floats to two decimals and missing values as '-'."""
    return [
        {k: "-" if v is None else f"{v:.2f}" if isinstance(v, float) else v for k, v in row.items()} for row in rows
    ]


@runs_app.callback()
@user_errors
def runs_list(
    ctx: typer.Context,
    sort: str = typer.Option("run", "--sort", help="column to sort by (metrics best first)"),
    filter_: str | None = typer.Option(None, "--filter", help="only runs whose id or config name contains this text"),
    runs_dir: Path = RunsDirOpt,
):
    """A table of run folders: run, config, data fingerprint, micro-F1, AUPRC, minutes, status (unfinished runs flagged)."""
    if ctx.invoked_subcommand is not None:
        return

    rows = list_runs(runs_dir, sort, filter_)
    if not rows:
        console.print(f"no runs in {runs_dir}" + (f" matching {filter_!r}" if filter_ else ""), highlight=False)
        return
    print_table(f"{len(rows)} runs in {runs_dir}", cells(rows))


@runs_app.command("show")
@user_errors
def runs_show(run: str = RunArg, runs_dir: Path = RunsDirOpt):
    """One run: config, data fingerprints and file hashes, git, device, metrics, per-fold metrics, ledgers."""

    for title, rows in run_summary(resolve_run(run, runs_dir)).items():
        if rows:
            print_table(title, cells(rows))


@runs_app.command("compare")
@user_errors
def runs_compare(a: str = RunArg, b: str = RunArg, runs_dir: Path = RunsDirOpt):
    """Two runs: library versions that differ (first), config differences as dotted keys, data fingerprint
    differences, metrics side by side."""

    a_dir, b_dir = resolve_run(a, runs_dir), resolve_run(b, runs_dir)
    diff = compare_runs(a_dir, b_dir)
    for change in diff["environment"]:
        console.print(f"[yellow]environment differs (A -> B):[/] {change}", highlight=False)
    console.print(f"A = {a_dir}, B = {b_dir}", highlight=False)
    for title in ("config", "data"):
        if diff[title]:
            print_table(
                f"{title}: {len(diff[title])} differences",
                cells([{"key": r["key"], "A": str(r["a"]), "B": str(r["b"])} for r in diff[title]]),
            )
        else:
            console.print(f"{title}: identical")
    if diff["metrics"]:
        print_table(
            "metrics",
            cells([{"metric": r["metric"], "A": r["a"], "B": r["b"], "B - A": r["diff"]} for r in diff["metrics"]]),
        )


@app.command()
@user_errors
def reproduce(
    run: str = RunArg,
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="largest allowed metric difference in points (default: 0 on CPU, 0.5 on GPU)"
    ),
    runs_dir: Path = RunsDirOpt,
    submissions_dir: Path = SubmissionsDirOpt,
    verbose: bool = VerboseOpt,
):
    """Retrain a run from its folder alone (config.yaml, saved tokenizer) and compare the metrics; exit 1 if they differ.

    Refuses when the data the config loads today has another fingerprint than the logged one. On CPU
    training is deterministic and the metrics must match exactly. On GPU non-deterministic kernels
    (atomic adds, cuBLAS/cuDNN algorithm choice) make small differences, so the default tolerance
    there is 0.5 points; set it with --tolerance.
    """

    run_dir = resolve_run(run, runs_dir)
    old = finished(run_dir)
    for change in environment_changes(old.get("environment") or {}):
        console.print(f"[yellow]environment differs from the run's:[/] {change}", highlight=False)
    with console_stages(console, verbose) as bars:
        new_dir = rerun(run_dir, runs_dir, submissions_dir, log=_log, bars=bars)
    rows = metric_rows(old.get("metrics"), read_json(new_dir / "result.json").get("metrics"))
    print_table(
        f"{run_dir.name} (old) vs {new_dir.name} (new)",
        cells([{"metric": r["metric"], "old": r["a"], "new": r["b"], "new - old": r["diff"]} for r in rows]),
    )
    tolerance = default_tolerance() if tolerance is None else tolerance
    off = [r["metric"] for r in rows if r["diff"] is None or abs(r["diff"]) > tolerance]
    if off:
        console.print(
            f"[bold red]not reproduced:[/] {', '.join(off)} differ by more than {tolerance} points", highlight=False
        )
        raise typer.Exit(1)
    console.print(f"[green]reproduced[/] within {tolerance} points: {new_dir}", highlight=False)


@app.command()
@user_errors
def report(
    run: str | None = typer.Argument(None, help="a run folder or a run id under --runs-dir (none: only the index)"),
    compare: tuple[str, str] | None = typer.Option(
        None, "--compare", help="two runs A B: one page of their config differences and per-class deltas"
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="with --compare: the page to write (default <runs-dir>/compare-A-vs-B.html)"
    ),
    screenshot: Path | None = typer.Option(
        None, "--screenshot", help="also a PNG of the page's top, taken by headless Chromium"
    ),
    size: str = typer.Option("1400x2400", "--size", help="with --screenshot: WIDTHxHEIGHT in pixels"),
    runs_dir: Path = RunsDirOpt,
):
    """Write a run's HTML report (runs/<id>/report.html) after (re)drawing its figures, and runs/index.html.

    With --compare A B: one page comparing two runs instead. The pages are single files: open them in a browser.
    """

    if compare and all(compare):
        a, b = (resolve_run(r, runs_dir) for r in compare)
        page = write_comparison(a, b, out or runs_dir / f"compare-{a.name}-vs-{b.name}.html")
    elif run is not None:
        run_dir = resolve_run(run, runs_dir)
        if (run_dir / "oof_probs.npy").exists():
            for path in write_reports(run_dir):
                console.print(f"wrote {path}", highlight=False)
        page = write_report(run_dir)
        console.print(f"wrote {run_dir.parent / 'index.html'}", highlight=False)
    else:
        page = write_index(runs_dir)
    console.print(f"wrote {page}", highlight=False)
    if screenshot is not None:
        try:
            width, height = (int(n) for n in size.lower().split("x"))
        except ValueError:
            raise PipelineError(f"--size must look like 1400x2400, got {size!r}") from None
        console.print(f"wrote {take_screenshot(page, screenshot, width, height)}", highlight=False)


lb_app = typer.Typer(
    no_args_is_help=True, help="The leaderboard log: public scores recorded against the run that wrote the submission."
)
app.add_typer(lb_app, name="lb")


@lb_app.command("add")
@user_errors
def lb_add(
    submission: Path = typer.Argument(..., help="the submission CSV that was scored"),
    public: float = typer.Option(..., "--public", help="public leaderboard micro-F1 (points)"),
    auprc: float | None = typer.Option(None, "--auprc", help="public leaderboard AUPRC (points)"),
    note: str | None = typer.Option(None, "--note", help="free text kept with the score"),
    run: str | None = typer.Option(None, "--run", help="the run that wrote it (default: found from the submission)"),
    runs_dir: Path = RunsDirOpt,
):
    """Record a public leaderboard score in the run folder (leaderboard.jsonl) of the run that wrote SUBMISSION.

    The run is the one whose result.json names the submission (training runs and ensembles), or the run whose
    id starts the name of a `re-pipeline predict` submission. `runs` and the reports show it beside validation.
    """

    run_dir = resolve_run(run, runs_dir) if run else run_of_submission(submission, runs_dir)
    add_score(submission, public, auprc, note, run_dir)
    console.print(f"recorded public micro-F1 {public:.2f} for {run_dir}", highlight=False)
    page = write_report(run_dir) if (run_dir / "report.html").exists() else write_index(run_dir.parent)
    console.print(f"updated {page}", highlight=False)


@app.command("ensemble")
@user_errors
def ensemble_cmd(
    members: list[Path] = typer.Argument(..., help="run folders and/or submission CSVs"),
    method: str = typer.Option("mean", "--method", "-m", help="mean | weighted | fit-f1 | fit-auprc"),
    pool: str = typer.Option("mean", "--pool", help="mean (soft voting) | log (weighted geometric mean)"),
    weights: str | None = typer.Option(
        None, "--weights", "-w", help="with --method weighted: one weight per member, e.g. 0.5,0.3,0.2"
    ),
    labels: str = typer.Option("klue", "--labels", help="label order of CSV members: klue or a label JSON"),
    calibration: str = typer.Option(
        "none", "--calibration", help="none | temperature | bcts: each member calibrated on its out-of-fold rows"
    ),
    prior_shift: str = typer.Option(
        "none",
        "--prior-shift",
        help="none | em | em_no_relation | bbse | bbse_no_relation, on the pooled probabilities",
    ),
    decision: str = typer.Option(
        "argmax", "--decision", help="argmax | f1: the no_relation factor of best out-of-fold F1"
    ),
    runs_dir: Path = RunsDirOpt,
    submissions_dir: Path = SubmissionsDirOpt,
):
    """Combine runs or submissions into runs/<id>-ensemble/ and a validated submission; fit-* fits weights out of
    fold. One run with --calibration, --prior-shift or --decision re-decides that run's submission."""

    try:
        parsed = [float(w) for w in weights.split(",")] if weights else None
    except ValueError:
        raise PipelineError(f"--weights must be comma-separated numbers, got {weights!r}") from None
    run_dir = run_ensemble(
        members,
        method,
        parsed,
        resolve_label_set(labels, []),
        runs_dir,
        submissions_dir,
        log=_log,
        pool=pool,
        calibration=calibration,
        prior_shift=prior_shift,
        decision=decision,
    )
    summary, result = run_summary(run_dir), read_json(run_dir / "result.json")
    test_prior = result["ensemble"].get("test_prior")
    if test_prior:
        console.print(
            f"test: {100 * test_prior['no_relation_predicted']:.1f}% predicted no_relation (validated rows "
            f"{100 * test_prior['no_relation_validated']:.1f}%, estimated {100 * test_prior['no_relation_estimated']:.1f}%)",
            highlight=False,
        )
    print_table(f"ensemble ({method}): weights and out-of-fold metrics", cells(summary["ensemble members"]))
    in_sample = result["ensemble"].get("in_sample_metrics")
    if summary["metrics"]:
        scored = "cross-fitted: each part scored with weights fit on the other parts" if in_sample else "out of fold"
        print_table(f"ensemble, {scored}", cells(summary["metrics"]))
    if in_sample:
        print_table("ensemble, in sample: weights fit and scored on the same rows (optimistic)", cells([in_sample]))
    if result.get("test_metrics"):
        print_table("ensemble, on the labels the test file carries", cells([result["test_metrics"]]))
    console.print(
        f"run folder: {run_dir}\nsubmission: {result['submission']}\nreport: {write_report(run_dir)}", highlight=False
    )


def main() -> None:
    app(prog_name="re-pipeline")


if __name__ == "__main__":
    sys.exit(main())
