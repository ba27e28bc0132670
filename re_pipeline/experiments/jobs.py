"""Many trainings as separate processes, N at a time, then one ensemble (`re-pipeline jobs`).

Every config gets a run folder holding its resolved `config.yaml`; a job is `re-pipeline train
--resume RUN_DIR` on it, its output in `RUN_DIR/job.log`. With `folds`, every fold of a config is
a job of its own (`--fold K`, output in `RUN_DIR/foldK.job.log`) in the config's one run folder:
data, tokenizer and TAPT are prepared first in this process, and the finished folds are then
assembled into the run's results as a sequential run would have them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..config import to_yaml
from ..core.errors import PipelineError
from ..core.io_utils import atomic_write
from ..pipeline import run_pipeline
from ..records.runs import new_run_id
from ..submit.ensemble import run_ensemble

ENSEMBLES = ("mean", "fit-f1", "fit-auprc")


@dataclass
class Job:
    run_dir: Path
    fold: int | None = None
    returncode: int | None = None
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.run_dir.name + ("" if self.fold is None else f" fold {self.fold}")

    @property
    def log(self) -> Path:
        return self.run_dir / ("job.log" if self.fold is None else f"fold{self.fold}.job.log")

    def run(self, env: dict) -> Job:
        command = [sys.executable, "-m", "re_pipeline", "train", "--resume", str(self.run_dir)]
        if self.fold is not None:
            command += ["--fold", str(self.fold)]
        started = time.time()
        with open(self.log, "w", encoding="utf-8") as fh:
            self.returncode = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        self.seconds = time.time() - started
        return self


def run_jobs(
    configs: list, workers: int = 1, folds: bool = False, ensemble: str | None = "mean", log=print
) -> tuple[list[Job], list[Path], Path | None]:
    """Run `configs` (or their folds) as jobs, `workers` at a time; ensemble the finished runs.

    Returns the jobs, the finished run folders and the ensemble's run folder (None: fewer than two runs).
    """

    if ensemble not in (None, *ENSEMBLES):
        raise PipelineError(f"--ensemble must be one of {', '.join(ENSEMBLES)} or none, not {ensemble!r}")
    if workers < 1:
        raise PipelineError("--workers must be at least 1")
    run_dirs, jobs = [], []
    for i, config in enumerate(configs):
        run_dir = Path("runs") / new_run_id(f"{config.name}-job{i}")
        run_dir.mkdir(parents=True)
        with atomic_write(run_dir / "config.yaml") as fh:
            fh.write(to_yaml(config))
        run_dirs.append(run_dir)
        if folds:
            run_pipeline(
                config, run_dir, log=log, only_folds=[]
            )  # data, tokenizer and TAPT once, before the fold jobs
            jobs += [Job(run_dir, k) for k in range(config.train.folds if config.train.validation == "kfold" else 1)]
        else:
            jobs.append(Job(run_dir))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // workers)),
    }
    log(f"{len(jobs)} jobs, {workers} at a time; each writes its output to a *job.log in its run folder")
    with ThreadPoolExecutor(workers) as pool:
        for done in as_completed([pool.submit(job.run, env) for job in jobs]):
            job = done.result()
            log(
                f"{job.name}: {'done' if job.returncode == 0 else f'failed (exit {job.returncode}), see {job.log}'} in {job.seconds:.0f}s"
            )
    finished = []
    for config, run_dir in zip(configs, run_dirs):
        if folds and all(job.returncode == 0 for job in jobs if job.run_dir == run_dir):
            run_pipeline(config, run_dir, log=log)  # every fold is finished: reused and assembled
        if (run_dir / "result.json").exists():
            finished.append(run_dir)
    combined = run_ensemble(finished, ensemble, log=log) if ensemble and len(finished) >= 2 else None
    return jobs, finished, combined
