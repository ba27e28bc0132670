"""Screening (`re-pipeline screen CONFIG...`): a cheap proxy of each config's full run, to rank many systems.

A screen is the config's own run on a label-stratified share of each fold's training rows
(`train.train_fraction`) for fewer epochs (`train.epochs`); validation and the test prediction stay whole,
so it writes the same validation scores and a full submission. Everything else is the config's: its markers,
loss, learning rate and frozen layers. Configs that tokenize the same way share one frozen-layer store
(`training/frozen_cache.py`), so only the first screen of a family pays for it. How far screens rank systems like
full runs do is measured in research/study.py (research/studies/agreement.yaml).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import Config, with_values
from ..core.io_utils import read_json, write_json
from ..records.runs import new_run_id

FRACTION, EPOCHS = 0.3, 3.0  # the defaults: about 8 minutes a system for configs/e5-small.yaml here


def screen_config(config: Config, fraction: float = FRACTION, epochs: float = EPOCHS) -> Config:
    """`config` as a screen: `fraction` of the training rows for `epochs` epochs, named `<name>-screen`."""
    return with_values(
        config, {"name": f"{config.name}-screen", "train.train_fraction": fraction, "train.epochs": epochs}
    )


def screen_row(config: Config, run_dir: Path, seconds: float) -> dict:
    """One line of a screen's table: validation scores, time, training speed and the submission."""
    result = read_json(run_dir / "result.json")
    metrics = result.get("metrics") or {}
    speed = [fold.get("throughput", {}).get("rows_per_s") for fold in result.get("folds", {}).values()]
    return {
        "config": config.name,
        "val_micro_f1": round(metrics.get("micro_f1", float("nan")), 2),
        "val_auprc": round(metrics.get("auprc", float("nan")), 2),
        "minutes": round(seconds / 60, 1),
        "rows_per_s": next((s for s in speed if s), None),
        "run": str(run_dir),
        "submission": result.get("submission"),
    }


def run_screen(configs: list[Config], run, out: Path | None = None, log=print, **screen) -> list[dict]:
    """Screen each config in turn with `run(config, run_dir) -> run_dir` (the pipeline); the table goes to
    `out` (default runs/screens/<id>.json) after each config, so a stopped screen keeps what finished."""
    out = out or Path("runs") / "screens" / f"{new_run_id('screen')}.json"
    rows = []
    for config in configs:
        screened = screen_config(config, **screen)
        log(
            f"screen: {config.name} on {screened.train.train_fraction:.0%} of the rows, {screened.train.epochs:g} epochs"
        )
        started = time.time()
        run_dir = run(screened, Path("runs") / new_run_id(screened.name))
        rows.append(screen_row(config, run_dir, time.time() - started))
        write_json(out, {"fraction": screened.train.train_fraction, "epochs": screened.train.epochs, "rows": rows})
    log(f"screen table: {out}")
    return rows
