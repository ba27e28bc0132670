"""HTML pages of runs: `runs/<id>/report.html`, `runs/index.html` and the comparison of two runs.

Each page is one self-contained file rendered with Jinja2 (templates in `resources/templates/`): styles,
scripts and figures (PNG data URIs) inline, nothing fetched. Tables sort by a click on a header. The
misclassified validation rows travel as JSON inside the page and are filtered and paged in the browser,
so a full KLUE-RE run stays one small, quick file. Optional inputs render when present: `shift.json`
(titled tables), `metrics_reweighted` in `result.json`, the leaderboard log, an ensemble's members.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from ..core.io_utils import atomic_write, read_json
from ..evaluation.metrics import per_class_report
from .leaderboard import latest, scores
from .reports import Validated, write_reports
from .runs import COLUMNS, compare_runs, finished, list_runs, run_summary, settings

MAX_ERRORS = 10_000  # misclassified rows embedded in a page, most confident first: ~5 MB with KLUE-RE sentences
PAGE_ROWS = 50  # misclassified rows shown at a time
FIGURES = {"confusion matrix": "confusion_matrix.png", "precision-recall curves": "pr_curves.png"}
HEADLINE = {
    "validation": "metrics",
    "validation reweighted to the test": "metrics_reweighted",
    "validation calibrated and decided (cross-fitted)": "metrics_decided",
    "test, on the labels its file carries": "test_metrics",
}
SECTIONS = {
    "summary": "scores",
    "ensemble": "ensemble",
    "classes": "per class",
    "errors": "misclassified",
    "figures": "precision-recall",
    "leaderboard": "leaderboard",
    "shift": "shift",
    "config": "config",
}


def num(value) -> str:
    """A cell: '-' for None, thousands separators for integers, two decimals for floats."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.2f}"


ENV = Environment(
    loader=PackageLoader("re_pipeline", "resources/templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["num"] = num
ENV.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}  # Korean text as is: 3 bytes, not 6


def render(out: Path, template: str, **context) -> Path:
    with atomic_write(out) as fh:
        fh.write(ENV.get_template(template).render(**context))
    return out


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def write_report(run_dir: Path) -> Path:
    """Write `run_dir/report.html` (its figures drawn first when missing) and the runs folder's `index.html`."""
    result = finished(run_dir)
    summary = run_summary(run_dir)
    has_oof = (run_dir / "oof_probs.npy").exists()
    oof = Validated.read(run_dir) if has_oof else None
    if has_oof and not all((run_dir / name).exists() for name in FIGURES.values()):
        write_reports(run_dir)
    env = result.get("environment") or {}
    ensemble = result.get("ensemble")
    context = {
        "title": f"report {run_dir.name}",
        "run": run_dir.name,
        "name": result.get("name") or "-",
        "started": result.get("started"),
        "minutes": result["seconds"] / 60 if "seconds" in result else None,
        "device": env.get("device"),
        "submission": result.get("submission"),
        "headline": headline(run_dir, result),
        "board": leaderboard_rows(run_dir),
        "correlation": correlation(list_runs(run_dir.parent), run_dir.name),
        "ensemble": ensemble and {"method": ensemble.get("method"), "members": member_rows(result)},
        "per_class": per_class_report(oof.gold, oof.probs, oof.label_set) if oof else None,
        "validated": len(oof.rows) if oof else 0,
        "figures": {title: png_uri((run_dir / name).read_bytes()) for title, name in FIGURES.items()} if oof else {},
        "shift": read_json(run_dir / "shift.json").get("tables") if (run_dir / "shift.json").exists() else None,
        "errors": misclassified(run_dir, oof) if oof else None,
        "page_rows": PAGE_ROWS,
        "folds": summary["folds"],
        "data": summary["run"],
        "ledgers": summary["ledgers"],
        "config_text": yaml.safe_dump(settings(run_dir, result), sort_keys=False, allow_unicode=True),
        "environment": environment_rows(env),
    }
    shown = {
        "leaderboard": context["board"],
        "ensemble": ensemble,
        "classes": context["per_class"],
        "figures": context["figures"],
        "shift": context["shift"],
        "errors": oof,
    }
    context["sections"] = [(key, title) for key, title in SECTIONS.items() if shown.get(key, True)]
    out = render(run_dir / "report.html", "report.html.j2", **context)
    write_index(run_dir.parent)
    return out


def headline(run_dir: Path, result: dict) -> list[tuple[str, dict]]:
    """(title, metrics) cards: validation, reweighted validation and the latest leaderboard scores, where present."""
    cards = [(title, result[key]) for title, key in HEADLINE.items() if result.get(key)]
    board = latest(run_dir)
    if board:
        public = {"public micro_f1": board["public_micro_f1"], "public auprc": board["public_auprc"]}
        cards.append(("leaderboard", {k: v for k, v in public.items() if v is not None}))
    return cards


def leaderboard_rows(run_dir: Path) -> list[dict]:
    return [
        {
            "time": e["time"],
            "submission": Path(e["submission"]).name,
            "public micro-F1": e["public_micro_f1"],
            "public AUPRC": e["public_auprc"],
            "note": e["note"] or "",
        }
        for e in scores(run_dir)
    ]


def member_rows(result: dict) -> list[dict]:
    """An ensemble's members (weight and out-of-fold scores) and, last, the ensemble itself."""
    ensemble, metrics = result["ensemble"], result.get("metrics") or {}
    member_metrics = ensemble.get("member_metrics") or {}
    keys = ("micro_f1", "auprc", "accuracy")
    rows = [
        {"member": m, "weight": w, **{k: (member_metrics.get(m) or {}).get(k) for k in keys}}
        for m, w in zip(ensemble["members"], ensemble["weights"])
    ]
    return [*rows, {"member": "ensemble", "weight": sum(ensemble["weights"]), **{k: metrics.get(k) for k in keys}}]


def environment_rows(env: dict) -> list[dict]:
    git = env.get("git") or {}
    rows = {
        "python": env.get("python"),
        "platform": env.get("platform"),
        "device": env.get("device"),
        "git commit": f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        **(env.get("versions") or {}),
    }
    return [{"field": k, "value": "-" if v is None else str(v)} for k, v in rows.items()]


def misclassified(run_dir: Path, oof: Validated) -> dict:
    """The validated rows predicted wrong, most confident first (at most MAX_ERRORS), each with its sentence
    and entity spans from `oof_examples.jsonl` (written at train time) when the run has it."""
    examples = {}
    if (run_dir / "oof_examples.jsonl").exists():
        lines = (run_dir / "oof_examples.jsonl").read_text(encoding="utf-8").splitlines()
        examples = {rec["row"]: rec for rec in map(json.loads, lines)}
    names = oof.label_set.names
    pred = oof.probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != oof.gold)
    wrong = wrong[np.argsort(-oof.probs[wrong, pred[wrong]], kind="stable")]
    rows = []
    for i in wrong[:MAX_ERRORS]:
        example = examples.get(int(oof.rows[i]), {})
        rows.append(
            {
                "id": oof.ids[i],
                "gold": names[oof.gold[i]],
                "pred": names[pred[i]],
                "p_gold": round(float(oof.probs[i, oof.gold[i]]), 3),
                "p_pred": round(float(oof.probs[i, pred[i]]), 3),
                "sentence": example.get("sentence"),
                **{key: span(example.get(key)) for key in ("subject", "object")},
            }
        )
    return {
        "rows": rows,
        "wrong": len(wrong),
        "sentences": bool(examples),
        "gold_labels": sorted({r["gold"] for r in rows}),
        "pred_labels": sorted({r["pred"] for r in rows}),
    }


def span(entity: dict | None) -> list | None:
    """An entity as [start, end (inclusive), type]: the word is the sentence's slice."""
    return entity and [entity["start_idx"], entity["end_idx"], entity["type"]]


def correlation(rows: list[dict], highlight: str | None = None) -> dict | None:
    """Validation against public micro-F1 across the runs that have both: a scatter plot (PNG data URI) and
    Spearman's rank correlation (None below three runs). None when no run has both."""
    pairs = [
        (r["run"], r["micro_f1"], r["lb_micro_f1"]) for r in rows if None not in (r["micro_f1"], r["lb_micro_f1"])
    ]
    if not pairs:
        return None
    names, x, y = zip(*pairs)
    rho = float(spearmanr(x, y).statistic) if len(pairs) >= 3 and len(set(x)) > 1 and len(set(y)) > 1 else None
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x, y, color=["tab:red" if n == highlight else "tab:blue" for n in names])
    for name, xi, yi in pairs:
        ax.annotate(name, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="validation micro-F1", ylabel="public leaderboard micro-F1", title="validation vs leaderboard")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return {"image": png_uri(buffer.getvalue()), "rho": rho, "runs": len(pairs)}


def write_index(runs_dir: Path) -> Path:
    """`runs_dir/index.html`: every run (the `runs` table) linked to its report, and validation against the
    leaderboard across runs."""
    rows = [{**row, "report": (runs_dir / row["run"] / "report.html").exists()} for row in list_runs(runs_dir)]
    return render(
        runs_dir / "index.html",
        "index.html.j2",
        title=f"runs in {runs_dir}",
        runs_dir=str(runs_dir),
        rows=rows,
        columns=COLUMNS,
        correlation=correlation(rows),
    )


def write_comparison(a_dir: Path, b_dir: Path, out: Path) -> Path:
    """One page comparing two finished runs: environment and config differences, data fingerprints, metrics
    and per-class deltas (B - A)."""
    diff = compare_runs(a_dir, b_dir)
    return render(
        out,
        "compare.html.j2",
        title=f"{a_dir.name} vs {b_dir.name}",
        a=a_dir.name,
        b=b_dir.name,
        environment=diff["environment"],
        metrics=[{"metric": r["metric"], "A": r["a"], "B": r["b"], "B - A": r["diff"]} for r in diff["metrics"]],
        config=[{"key": r["key"], "A": str(r["a"]), "B": str(r["b"])} for r in diff["config"]],
        data=[{"key": r["key"], "A": str(r["a"]), "B": str(r["b"])} for r in diff["data"]],
        per_class=class_deltas(a_dir, b_dir),
    )


def class_deltas(a_dir: Path, b_dir: Path) -> list[dict]:
    """Per-class precision, recall and F1 of both runs and their differences, by label name."""
    reports = []
    for run_dir in (a_dir, b_dir):
        if not (run_dir / "oof_probs.npy").exists():
            return []
        oof = Validated.read(run_dir)
        reports.append({r["label"]: r for r in per_class_report(oof.gold, oof.probs, oof.label_set)})
    a, b = reports
    rows = []
    for label in [*a, *(k for k in b if k not in a)]:
        x, y = a.get(label, {}), b.get(label, {})
        row = {"label": label, "support A": x.get("support"), "support B": y.get("support")}
        for m in ("precision", "recall", "f1"):
            row[f"{m} A"], row[f"{m} B"] = x.get(m), y.get(m)
            row[f"{m} B - A"] = y[m] - x[m] if m in x and m in y else None
        rows.append(row)
    return rows
