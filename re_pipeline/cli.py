"""Command line: `re-pipeline SUBCOMMAND`. Thin: parse, load config, call a stage, print a summary."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .config import Config, load_config
from .errors import PipelineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Korean relation extraction pipeline (KLUE-RE style).")
console = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file")
SetOpt = typer.Option(None, "--set", "-s", help="override a config key: section.key=value (repeatable)")


def user_errors(fn):
    """Print PipelineError as one red line and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def _config(path: Optional[Path], overrides: Optional[list[str]]) -> Config:
    return load_config(path, overrides or [])


def print_table(title: str, rows: list[dict]) -> None:
    """Rows of equal keys as a table; integers with thousands separators."""
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col, justify="right" if isinstance(rows[0][col], int) else "left")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


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
    out_dir: Path = typer.Option(Path("data/clean"), "--out-dir", "-o", help="where the cleaned file, audit and quarantine go"),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
):
    """Load, validate and clean a data file; write the cleaned CSV, the audit CSV and the quarantine CSV."""
    from .data.io import write_examples_csv
    from .data.load import load_configured

    cfg = _config(config, set_)
    with console.status(f"loading and cleaning {file}"):
        loaded = load_configured(file, cfg)
    stem = Path(str(file).replace(":", "_")).stem
    out_dir.mkdir(parents=True, exist_ok=True)
    write_examples_csv(out_dir / f"{stem}.clean.csv", loaded.examples)
    loaded.ledger.write(out_dir / f"{stem}.audit.csv", out_dir / f"{stem}.quarantine.csv")
    summary = {**loaded.ledger.summary(), "label_set": loaded.label_set.name, "labels": len(loaded.label_set), "fingerprint": loaded.fingerprint}
    (out_dir / f"{stem}.summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print_ledger(summary)
    console.print(f"labels: {summary['label_set']} ({summary['labels']}); fingerprint {loaded.fingerprint}; outputs in {out_dir}/{stem}.*")


@app.command("augment")
@user_errors
def augment_cmd(
    file: Path = typer.Argument(..., help="training file (CSV or KLUE JSON)"),
    out: Path = typer.Option(Path("data/augmented/train.augmented.csv"), "--out", "-o", help="augmented CSV to write"),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
):
    """Load and clean a training file, apply the config's `augment.methods`, write originals + children."""
    from .data.augment import augment, summary_table
    from .data.io import write_examples_csv
    from .data.load import load_configured

    cfg = _config(config, set_)
    if not cfg.augment.methods:
        raise PipelineError("no augmentation methods in the config: set augment.methods (see configs/augment.yaml)")
    with console.status(f"loading, cleaning and augmenting {file}"):
        loaded = load_configured(file, cfg)
        examples, summary = augment(loaded.examples, cfg.augment)
    write_examples_csv(out, examples)
    print_table("augmentation", summary_table(summary))
    console.print(f"{len(loaded.examples):,} originals + {len(examples) - len(loaded.examples):,} children written to {out}")


@app.command("validate-submission")
@user_errors
def validate_submission_cmd(
    file: Path = typer.Argument(..., help="submission CSV (id,pred_label,probs)"),
    test: Path = typer.Option(..., "--test", "-t", help="the test file the submission answers"),
    labels: str = typer.Option("klue", help="label set: klue or a label JSON path"),
):
    """Check a leaderboard CSV against the test file: ids, order, labels, probabilities."""
    from .data.io import ReadOptions, read_examples
    from .labels import resolve_label_set
    from .submission import validate_submission

    examples, _ = read_examples(test, ReadOptions())
    problems = validate_submission(file, [ex.id for ex in examples], resolve_label_set(labels, []))
    if problems:
        for problem in problems:
            console.print(f"[red]✗[/] {problem}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {file} is a valid submission for {test} ({len(examples):,} rows)")


DEFAULT_TRAIN = "data/raw/train.csv"


def resolve_data(cfg: Config, data: Optional[Path]) -> None:
    """`--data DIR` (train.csv + test_data.csv) or a file; with no data at all, a generated sample."""
    if data is not None:
        if data.is_dir():
            cfg.data.train = str(data / "train.csv")
            cfg.data.test = str(data / "test_data.csv") if (data / "test_data.csv").exists() else None
        else:
            cfg.data.train = str(data)
        return
    if cfg.data.train == DEFAULT_TRAIN and not Path(DEFAULT_TRAIN).exists():
        from .data.sample import write_sample

        train, test = write_sample("data/sample")
        cfg.data.train, cfg.data.test = str(train), str(test)
        console.print(
            "[yellow]no data/raw/train.csv: using a generated synthetic Korean sample (data/sample/). "
            "Put the competition's train.csv and test_data.csv in data/raw/ to train on them.[/]"
        )
    elif cfg.data.test and not Path(cfg.data.test).exists():
        console.print(f"[yellow]no test file at {cfg.data.test}: training without a submission[/]")
        cfg.data.test = None


@app.command()
@user_errors
def train(
    config: Optional[Path] = typer.Option(Path("configs/default.yaml"), "--config", "-c", help="YAML config file"),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="folder with train.csv and test_data.csv, or a train file"),
    set_: Optional[list[str]] = SetOpt,
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue an interrupted run folder from its last checkpoint"),
):
    """Train a model (load, clean, TAPT, folds), score it, and write a validated submission."""
    from .pipeline import run_pipeline

    if resume is not None:
        if not (resume / "config.yaml").exists():
            raise PipelineError(f"{resume}: not a run folder (no config.yaml)")
        cfg = load_config(resume / "config.yaml")
    else:
        cfg = _config(config, set_)
        resolve_data(cfg, data)
    run_dir = run_pipeline(cfg, run_dir=resume, log=lambda msg: console.print(msg, markup=False, highlight=False))
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    metrics = result.get("metrics")
    if metrics:
        console.print("validation: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    console.print(f"run folder: {run_dir}")
    if result.get("submission"):
        console.print(f"submission: {result['submission']}")


@app.command()
@user_errors
def predict(
    run_dir: Path = typer.Argument(..., help="a run folder (runs/<run_id>)"),
    data: Path = typer.Option(..., "--data", "-d", help="test file to predict"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="submission path (default submissions/<run>-<data>.csv)"),
):
    """Predict a test file with a trained run and write a validated submission."""
    from .predict import predict_file

    out = out or Path("submissions") / f"{run_dir.name}-{data.stem}.csv"
    path = predict_file(run_dir, data, out, log=lambda msg: console.print(msg, markup=False))
    console.print(f"submission: {path}")


def main() -> None:
    app(prog_name="re-pipeline")


if __name__ == "__main__":
    sys.exit(main())
