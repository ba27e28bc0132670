"""`re-pipeline reproduce`: retrain a finished run from its folder alone and compare the metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..config import load_config
from ..core.errors import PipelineError
from ..pipeline import CACHE, load_inputs, run_pipeline
from ..records.runs import finished, new_run_id


def default_tolerance() -> float:
    """Reproduction tolerance in metric points: 0 on CPU (bit-exact), 0.5 on GPU (non-deterministic kernels)."""
    return 0.5 if torch.cuda.is_available() else 0.0


def check_same_data(run_dir: Path, config, logged: dict) -> None:
    """Refuse when the data the run's config loads today is not the data the run was trained on."""
    train, test = load_inputs(config)
    for name, path, loaded in (("train", config.data.train, train), ("test", config.data.test, test)):
        now, then = loaded.fingerprint if loaded else None, logged.get(f"{name}_fingerprint")
        if now != then:
            raise PipelineError(
                f"cannot reproduce {run_dir.name}: the {name} data changed ({path}: fingerprint now {now}, logged {then}); "
                "restore the original file or train a new run"
            )


def reproduce(
    run_dir: Path, runs_dir: Path, submissions_dir: Path, log=print, cache: Path | None = None, bars=None
) -> Path:
    """Retrain a finished run from its folder alone (config.yaml and saved tokenizer) into a new run folder
    (`bars`: a `StageBars` for the console).

    Refuses with a PipelineError when the current data's fingerprint differs from the logged one.
    On CPU the new metrics equal the old ones exactly; on GPU non-deterministic kernels (atomics in
    attention and scatter ops, cuBLAS workspaces) move them slightly, typically well under 0.5 F1 points.
    """
    logged = finished(run_dir)
    if not logged.get("metrics"):
        raise PipelineError(
            f"{run_dir.name} has no validation metrics to compare (trained with train.validation: none)"
        )
    config = load_config(run_dir / "config.yaml")
    check_same_data(run_dir, config, logged)
    new_dir = runs_dir / new_run_id(f"{config.name}-repro")
    if (run_dir / "tokenizer").is_dir():
        shutil.copytree(run_dir / "tokenizer", new_dir / "tokenizer")
    return run_pipeline(config, new_dir, submissions_dir, log, cache or CACHE, bars=bars)
