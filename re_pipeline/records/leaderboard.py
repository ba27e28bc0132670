"""The leaderboard log: public-leaderboard scores recorded against the run that wrote the submission.

Each run folder may hold `leaderboard.jsonl`, one line per `re-pipeline lb add`: time, submission path and
SHA-256, public micro-F1, public AUPRC (or null) and a note. The run is found from the submission: the run
whose `result.json` names it (a training run or an ensemble), or, for `re-pipeline predict`'s
`<run_id>-<data>.csv`, the run its name starts with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..core.errors import PipelineError
from ..core.io_utils import atomic_write, file_sha256, read_json

LOG = "leaderboard.jsonl"


def scores(run_dir: Path) -> list[dict]:
    """The run's leaderboard entries, oldest first (none: an empty list)."""
    path = run_dir / LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latest(run_dir: Path) -> dict | None:
    """The run's most recent leaderboard entry."""
    entries = scores(run_dir)
    return entries[-1] if entries else None


def run_of_submission(submission: Path, runs_dir: Path) -> Path:
    """The run folder under `runs_dir` that wrote `submission`; a PipelineError naming `--run` when none did."""
    runs = sorted(p for p in runs_dir.iterdir() if (p / "result.json").is_file()) if runs_dir.is_dir() else []
    written = {}
    for run in runs:
        path = read_json(run / "result.json").get("submission")
        if path:
            written[run] = Path(path)
    for same in (
        lambda path: path.resolve() == submission.resolve(),
        lambda path: path.name == submission.name,  # logged relative to another working directory
    ):
        for run, path in written.items():
            if same(path):
                return run
    by_prefix = [run for run in runs if submission.stem.startswith(f"{run.name}-")]  # re-pipeline predict
    if by_prefix:
        return max(by_prefix, key=lambda run: len(run.name))
    raise PipelineError(f"no run under {runs_dir} wrote {submission}: name the run with --run RUN")


def add_score(submission: Path, public: float, auprc: float | None, note: str | None, run_dir: Path) -> dict:
    """Append a leaderboard entry for `submission` to `run_dir`'s log; returns the entry."""
    if not submission.is_file():
        raise PipelineError(f"{submission}: no such submission file")
    for name, value in (("--public", public), ("--auprc", auprc)):
        if value is not None and not 0 <= value <= 100:
            raise PipelineError(f"{name} is a score in points between 0 and 100, got {value}")
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "submission": str(submission),
        "sha256": file_sha256(submission),
        "public_micro_f1": public,
        "public_auprc": auprc,
        "note": note,
    }
    lines = [json.dumps(e, ensure_ascii=False) for e in [*scores(run_dir), entry]]
    with atomic_write(run_dir / LOG) as fh:
        fh.write("\n".join(lines) + "\n")
    return entry
