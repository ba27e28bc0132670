"""Run folders: `runs/<run_id>/` holds what is needed to trace, compare and rerun a result.

`result.json` is written last, so a folder without it is an unfinished (or crashed) run.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import yaml

from ..core.device import cpu_name, resolve_precision
from ..core.errors import PipelineError
from ..core.io_utils import atomic_write, file_sha256, read_json
from .leaderboard import latest

LIBRARIES = (
    "re_pipeline",
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "accelerate",
    "peft",
    "scikit-learn",
    "scipy",
    "numpy",
    "hgtk",
    "matplotlib",
)
COLUMNS = ("run", "config", "data", "micro_f1", "auprc", "lb_micro_f1", "lb_auprc", "minutes", "status")
BEST_FIRST = ("micro_f1", "auprc", "lb_micro_f1", "lb_auprc")  # sorted highest first; every other column ascending
METRICS = ("micro_f1", "auprc", "accuracy")


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def new_run_dir(parent: Path, name: str) -> Path:
    """A new, empty `parent/<time>-<name>`, with -2, -3, ... appended when that second's folder exists."""
    base = parent / new_run_id(name)
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise PipelineError(f"no free run folder name under {parent} for {base.name}")


def environment() -> dict:
    """Library versions, device, python, and the git commit with a dirty flag."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    cpu = f"cpu ({torch.get_num_threads()} threads, {cpu_name()})"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu
    device += f", precision auto = {resolve_precision('auto')}"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "versions": versions,
        "git": git_state(),
    }


def git_state() -> dict:
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def data_files(config) -> dict:
    """Path and SHA-256 of the configured train and test files (sha256 None for a hub dataset or no file)."""
    files = {"train": config.data.train, "test": config.data.test}
    return {
        name: {"path": path, "sha256": file_sha256(path) if path and Path(path).is_file() else None}
        for name, path in files.items()
    }


def write_metrics_log(path: Path, folds: dict) -> None:
    """`metrics.jsonl`: one line per trainer log entry of every fold (`kind`: eval, train or summary), and a
    transformer fold's training speed (`kind`: throughput; rows/s, GFLOP/s, MFU)."""
    with atomic_write(path) as fh:
        for fold, info in folds.items():
            for entry in info.get("log_history") or []:
                kind = (
                    "eval"
                    if any(key.startswith("eval_") for key in entry)
                    else "train"
                    if "loss" in entry
                    else "summary"
                )
                fh.write(json.dumps({"fold": fold, "kind": kind, **entry}, ensure_ascii=False) + "\n")
            if info.get("throughput"):
                fh.write(json.dumps({"fold": fold, "kind": "throughput", **info["throughput"]}) + "\n")


def resolve_run(run: str | Path, runs_dir: Path = Path("runs")) -> Path:
    """A run folder given as a path or as a run id under `runs_dir`."""
    for path in (Path(run), runs_dir / str(run)):
        if path.is_dir():
            return path
    raise PipelineError(f"no run folder {run} (nor {runs_dir / str(run)})")


def finished(run_dir: Path) -> dict:
    """The run's result.json; a clear error for an unfinished run."""
    if not (run_dir / "result.json").exists():
        raise PipelineError(
            f"{run_dir} is unfinished (no result.json): train it to the end, or resume it with `re-pipeline train --resume {run_dir}`"
        )
    return read_json(run_dir / "result.json")


def settings(run_dir: Path, result: dict | None = None) -> dict:
    """What produced the run: its config.yaml, or an ensemble's members, method and weights."""
    if (run_dir / "config.yaml").exists():
        return yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    return {"ensemble": (result or {}).get("ensemble", {})}


def read_oof(run_dir: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Out-of-fold (ids, gold labels, probs); rows never validated are NaN."""
    if not (run_dir / "oof_probs.npy").exists():
        raise PipelineError(f"{run_dir} has no out-of-fold probabilities (trained with train.validation: none?)")
    meta = read_json(run_dir / "oof_ids.json")
    if "labels" not in meta:
        raise PipelineError(f"{run_dir}/oof_ids.json has no gold labels (written by an older version): re-run it")
    return meta["ids"], meta["labels"], np.load(run_dir / "oof_probs.npy", allow_pickle=False)


def summarize(run_dir: Path) -> dict | None:
    """One table row for a run folder (validation and latest leaderboard scores side by side); None for a folder
    that is not a run."""
    has_result = (run_dir / "result.json").exists()
    if not has_result and not (run_dir / "config.yaml").exists():
        return None
    try:
        result = read_json(run_dir / "result.json") if has_result else {}
        status = "done" if has_result else "unfinished"
    except PipelineError:
        result, status = {}, "unreadable result.json"
    metrics = result.get("metrics") or {}
    name = result.get("name") or settings(run_dir).get("name")
    minutes = result["seconds"] / 60 if "seconds" in result else None
    board = latest(run_dir) or {}
    return {
        "run": run_dir.name,
        "config": name or "-",
        "data": result.get("train_fingerprint") or "-",
        "micro_f1": metrics.get("micro_f1"),
        "auprc": metrics.get("auprc"),
        "lb_micro_f1": board.get("public_micro_f1"),
        "lb_auprc": board.get("public_auprc"),
        "minutes": minutes,
        "status": status,
    }


def list_runs(runs_dir: Path, sort: str = "run", text: str | None = None) -> list[dict]:
    """Rows for every run folder under `runs_dir` whose id or config name contains `text`; missing values last."""
    if sort not in COLUMNS:
        raise PipelineError(f"cannot sort by {sort!r}; columns: {', '.join(COLUMNS)}")
    rows = (
        [row for path in sorted(runs_dir.iterdir()) if path.is_dir() and (row := summarize(path))]
        if runs_dir.is_dir()
        else []
    )
    rows = [r for r in rows if not text or text in r["run"] or text in r["config"]]
    present = sorted((r for r in rows if r[sort] is not None), key=lambda r: r[sort], reverse=sort in BEST_FIRST)
    return present + [r for r in rows if r[sort] is None]


def flatten(data, prefix: str = "") -> dict:
    """Nested mappings as dotted keys: {"train": {"epochs": 3}} -> {"train.epochs": 3}."""
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    return {
        k: v
        for key, value in data.items()
        for k, v in flatten(value, f"{prefix}.{key}" if prefix else str(key)).items()
    }


def dict_diff(a: dict, b: dict) -> list[dict]:
    """Keys whose values differ (a missing key shows as `<absent>`), in sorted order."""
    a, b = flatten(a), flatten(b)
    absent = "<absent>"
    return [
        {"key": k, "a": a.get(k, absent), "b": b.get(k, absent)}
        for k in sorted(set(a) | set(b))
        if a.get(k, absent) != b.get(k, absent)
    ]


def metric_rows(a: dict | None, b: dict | None) -> list[dict]:
    """Side by side metrics with the difference b - a."""
    a, b = a or {}, b or {}
    return [
        {"metric": m, "a": a.get(m), "b": b.get(m), "diff": b[m] - a[m] if m in a and m in b else None}
        for m in sorted(set(a) | set(b))
    ]


def compare_runs(a_dir: Path, b_dir: Path) -> dict:
    """Library version and device differences (A -> B), config differences (dotted keys), metric differences,
    and data fingerprint differences of two finished runs."""
    a, b = finished(a_dir), finished(b_dir)
    data = (
        {k: a.get(k) for k in ("train_fingerprint", "test_fingerprint")},
        {k: b.get(k) for k in ("train_fingerprint", "test_fingerprint")},
    )
    return {
        "environment": environment_changes(a.get("environment") or {}, b.get("environment") or {}),
        "config": dict_diff(settings(a_dir, a), settings(b_dir, b)),
        "metrics": metric_rows(a.get("metrics"), b.get("metrics")),
        "data": dict_diff(*data),
    }


def environment_changes(logged: dict, now: dict | None = None) -> list[str]:
    """Library versions and device of `now` (default: this machine) that differ from a logged environment."""
    now = now or environment()
    versions = now.get("versions", {})
    changes = [
        f"{lib}: {v} -> {versions.get(lib)}" for lib, v in logged.get("versions", {}).items() if v != versions.get(lib)
    ]
    if logged.get("device") != now.get("device"):
        changes.append(f"device: {logged.get('device')} -> {now.get('device')}")
    return changes


def run_summary(run_dir: Path) -> dict[str, list[dict]]:
    """`runs show`: tables (title -> rows) of a finished run: overview, metrics, folds, ledgers, ensemble members."""
    result = finished(run_dir)
    env, git = result.get("environment") or {}, (result.get("environment") or {}).get("git") or {}
    overview = {
        "config": result.get("name") or settings(run_dir).get("name"),
        "seed": result.get("seed"),
        "train fingerprint": result.get("train_fingerprint"),
        "test fingerprint": result.get("test_fingerprint"),
        **{
            f"{name} file": f"{f['path']} (sha256 {f['sha256']})"
            for name, f in (result.get("data_files") or {}).items()
            if f["path"]
        },
        "git commit": f"{git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        "device": env.get("device"),
        "minutes": f"{result['seconds'] / 60:.1f}" if "seconds" in result else None,
        "submission": result.get("submission"),
    }
    folds = result.get("folds") or {}
    ensemble = result.get("ensemble") or {}
    member_metrics = ensemble.get("member_metrics") or {}
    return {
        "run": [{"field": key, "value": "-" if value is None else str(value)} for key, value in overview.items()],
        "metrics": [result["metrics"]] if result.get("metrics") else [],
        "folds": [
            {
                "fold": name,
                **_metric_cells(fold.get("metrics")),
                "steps": (fold.get("log_history") or [{}])[-1].get("step"),
                **_speed_cells(fold.get("throughput")),
            }
            for name, fold in folds.items()
        ],
        "ledgers": [
            {"data": name, **ledger["counts"]} for name, ledger in (result.get("ledgers") or {}).items() if ledger
        ],
        "ensemble members": [
            {"member": m, "weight": w, **_metric_cells(member_metrics.get(m))}
            for m, w in zip(ensemble.get("members", []), ensemble.get("weights", []))
        ],
    }


def _speed_cells(throughput: dict | None) -> dict:
    """A transformer fold's training speed: rows/s, achieved GFLOP/s and MFU (% of the matmul peak)."""
    t = throughput or {}
    mfu = f"{100 * t['mfu']:.1f}% of {t['precision']}" if "mfu" in t else "-"
    return {"rows/s": t.get("rows_per_s", "-"), "GFLOP/s": t.get("gflops", "-"), "MFU": mfu}


def _metric_cells(metrics: dict | None) -> dict:
    return {m: (metrics or {}).get(m) for m in METRICS}
