"""A study: named systems, each a change to one config, run as screens (`re-pipeline screen`) and as full runs on
KLUE-RE, every submission scored on the public board, one table. The systems are a YAML file in research/studies/
(the format bench/sweep.py reads, which runs the same file's full runs in parallel on a GPU):

    base: configs/e5-small.yaml        # the config every system changes
    reference: recipe                  # the row the others are compared with (the difference columns)
    replicas: {recipe-seed2: recipe}   # a system again under another train.seed: the seed noise
    variants:
      recipe: []
      unweighted: [model.loss.class_weighted=false]
      team-1st: {config: configs/teams/1st-kiyoung2.yaml, set: [...]}

Each run is a child process (wall time and its own peak RSS from `os.wait4`) into runs/<study>/; a system whose
run already holds result.json is not run again and an interrupted full run continues from its checkpoint, so
a study resumes where a session stopped; `table --out FILE` keeps FILE's rows for runs no longer on disk. With
three or more systems run both ways, the table gives the Spearman rank correlation of screens against full runs. The public labels are read by
../shared/tools/leaderboard.py only: nothing here trains, tunes or selects on them.

Usage: python research/study.py run STUDY.yaml {screen|full} [--systems NAME ...] [--data ../shared/data/klue-re]
       python research/study.py table STUDY.yaml [--out bench/results/STUDY.json] [--systems NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # the board and the sweep runner
from leaderboard_scores import public_score
from scipy.stats import spearmanr
from sweep import train_command, variants

from re_pipeline.core.labels import LabelSet
from re_pipeline.evaluation.metrics import compute_metrics
from re_pipeline.evaluation.prior import cross_fitted_decision
from re_pipeline.submit.submission import read_submission

HERE = Path(__file__).resolve().parents[1]
DATA = HERE.parent / "shared" / "data" / "klue-re"
MODES = ("screen", "full")
METRICS = ("val_micro_f1", "val_auprc", "public_micro_f1", "public_auprc")


@dataclass
class Study:
    """A study file read: its systems (name -> config, overrides), reference row, replicas and run folder."""

    path: Path
    systems: dict[str, tuple[str, list[str]]]
    reference: str | None
    replicas: dict[str, str]
    runs: Path

    @classmethod
    def read(cls, path: Path, runs_root: Path = HERE / "runs") -> Study:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        _, systems = variants(path)
        known = set(systems)
        named = [spec.get("reference"), *spec.get("replicas", {}), *spec.get("replicas", {}).values()]
        unknown = sorted({n for n in named if n is not None and n not in known})
        if unknown:
            raise SystemExit(f"{path}: reference or replicas name unknown systems {unknown}")
        return cls(path, systems, spec.get("reference"), spec.get("replicas", {}), runs_root / path.stem)

    def command(self, mode: str, name: str, data: Path) -> list[str]:
        """The child's command line: a full run (or its continuation from the last checkpoint) or a screen."""
        config, sets = self.systems[name]
        config = HERE / config
        if mode == "full":
            run_dir = self.full_dir(name)
            if (run_dir / "config.yaml").exists():  # interrupted before: continue from its last checkpoint
                return [sys.executable, "-m", "re_pipeline", "train", "--resume", str(run_dir)]
            return train_command(config, data, run_dir, sets)
        table = self.runs / f"screen-{name}.json"
        overrides = [arg for item in sets for arg in ("--set", item)]
        return [
            sys.executable,
            "-m",
            "re_pipeline",
            "screen",
            str(config),
            "--data",
            str(data),
            "--out",
            str(table),
            *overrides,
        ]

    def full_dir(self, name: str) -> Path:
        """The folder of the system's full run, finished or not."""
        return self.runs / f"full-{name}"

    def continues(self, name: str) -> bool:
        """Whether the system's full run has a complete checkpoint to continue from (the pipeline's own test)."""
        from re_pipeline.training.train import last_checkpoint  # imports transformers: 4 s the table need not pay

        return any(last_checkpoint(fold / "checkpoints") for fold in self.full_dir(name).glob("fold*"))

    def run_dir(self, mode: str, name: str) -> Path | None:
        """The system's finished run folder in this mode (a screen's is named by its table), else None."""
        where = self.full_dir(name) if mode == "full" else self.runs / f"screen-{name}.json"
        if mode == "screen" and where.exists():
            where = HERE / json.loads(where.read_text())["rows"][0]["run"]
        return where if (where / "result.json").exists() else None

    def shown(self, name: str) -> str:
        """The system as a reader reruns it: its config file and overrides."""
        config, sets = self.systems[name]
        return " ".join([f"-c {config}", *(f"--set {s}" for s in sets)])


def recorded_rows(table_file: Path | None) -> dict:
    """The rows per system that a table file (`study.py table --out`) recorded; none if there is no file."""
    return json.loads(table_file.read_text())["systems"] if table_file and table_file.exists() else {}


def run(study: Study, mode: str, names: list[str], data: Path, recorded: Path | None = None) -> None:
    """Run each system in turn; one whose run is on disk, or whose row the table file `recorded` holds, is skipped."""
    study.runs.mkdir(parents=True, exist_ok=True)
    # run folders do not outlive a checkout, the table file does: without it a new checkout would rerun every row
    kept = recorded_rows(recorded)
    for name in names:
        if study.run_dir(mode, name) or kept.get(name, {}).get(mode):
            print(f"{mode} {name}: done before", flush=True)
            continue
        cmd = study.command(mode, name, data)
        # a continuation counts as one only from a checkpoint: a run stopped before its first starts over
        resumed = "--resume" in cmd and study.continues(name)
        log, cost_file = study.runs / f"{mode}-{name}.log", study.runs / f"{mode}-{name}.cost.json"
        # a resumed run adds to what its earlier part cost (an earlier part stopped without a record is lost)
        before = json.loads(cost_file.read_text()) if resumed and cost_file.exists() else {}
        print(f"{mode} {name}: {' '.join(cmd)}", flush=True)
        started = time.time()
        with open(log, "a" if resumed else "w", encoding="utf-8") as fh:
            unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the log follows the run as it goes
            child = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=HERE, env=unbuffered)
            _, status, usage = os.wait4(child.pid, 0)
        cost = {
            "seconds": round(time.time() - started + before.get("seconds", 0), 1),
            "peak_rss_GiB": round(max(usage.ru_maxrss / 2**20, before.get("peak_rss_GiB", 0)), 2),
            **({"resumed": True} if resumed else {}),
        }
        cost_file.write_text(json.dumps({**cost, "status": status}))
        print(f"{mode} {name}: status {status}, {cost}", flush=True)


def row(study: Study, mode: str, name: str) -> dict | None:
    run_dir = study.run_dir(mode, name)
    if run_dir is None:
        return None
    result = json.loads((run_dir / "result.json").read_text())
    cost_file = study.runs / f"{mode}-{name}.cost.json"
    cost = json.loads(cost_file.read_text()) if cost_file.exists() else {}
    fold = next(iter(result["folds"].values()))
    model = run_dir / "fold0" / "model"
    return {
        "val_micro_f1": round(result["metrics"]["micro_f1"], 2),
        "val_auprc": round(result["metrics"]["auprc"], 2),
        "val_decided_f1": decided_f1(run_dir),
        **public_score(Path(result["submission"])),
        "no_relation_share": no_relation_share(Path(result["submission"])),
        "minutes": round(cost.get("seconds", result["seconds"]) / 60, 1),
        "resumed": cost.get("resumed", False),
        "peak_rss_GiB": cost.get("peak_rss_GiB"),
        "trainable_percent": round(fold.get("trainable", {}).get("percent", float("nan")), 2),
        "saved_MB": round(sum(f.stat().st_size for f in model.rglob("*") if f.is_file()) / 2**20, 1)
        if model.exists()
        else None,
        "rows_per_s": fold.get("throughput", {}).get("rows_per_s"),
        "device": result.get("environment", {}).get("device"),
        "run": str(run_dir.relative_to(HERE)),
    }


def decided_f1(run_dir: Path) -> float:
    """Validation micro-F1 under `train.decision: f1`, each half decided with the factor of the other half."""
    labels = LabelSet.from_dict(json.loads((run_dir / "labels.json").read_text()))
    oof = np.load(run_dir / "oof_probs.npy")
    validated = ~np.isnan(oof[:, 0])
    gold = np.array(labels.ids(json.loads((run_dir / "oof_ids.json").read_text())["labels"]))[validated]
    return round(compute_metrics(gold, cross_fitted_decision(oof[validated], gold, "none", "f1"))["micro_f1"], 2)


def no_relation_share(submission: Path) -> float:
    """The share of test rows the submission labels no_relation, in %."""
    _, labels, _ = read_submission(submission)
    return round(100 * sum(label == "no_relation" for label in labels) / len(labels), 1)


def markdown(study: Study, result: dict, shown: list[str] | None = None) -> str:
    """The study as a Markdown table: one line per system and mode that ran, the differences to the reference
    row of the same mode, then the screens' rank agreement and the seed noise."""
    head = [
        "system",
        "mode",
        "validation F1 / AUPRC (F1 decided)",
        "Δ val F1 / AUPRC",
        "public F1 / AUPRC",
        "Δ public F1 / AUPRC",
        "no_relation",
        "time, peak RSS",
        "trainable, saved",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    on = {}  # times compare only on one device: which rows ran where
    for name, modes in result["systems"].items():
        if shown and name not in shown:
            continue
        for mode, r in modes.items():
            if r is None:
                continue
            on.setdefault(r.get("device") or "device not recorded", []).append(f"{name} ({mode})")
            ref = result["systems"].get(study.reference, {}).get(mode)
            delta = [
                f"{r[a] - ref[a]:+.2f} / {r[b] - ref[b]:+.2f}" if ref and name != study.reference else ""
                for a, b in (("val_micro_f1", "val_auprc"), ("public_micro_f1", "public_auprc"))
            ]
            lines.append(
                f"| {name} (`{study.shown(name)}`) | {mode} | "
                f"{r['val_micro_f1']:.2f} / {r['val_auprc']:.2f} ({r['val_decided_f1']:.2f}) | {delta[0]} | "
                f"{r['public_micro_f1']:.2f} / {r['public_auprc']:.2f} | {delta[1]} | {r['no_relation_share']:.1f}% | "
                f"{r['minutes']:.1f} min{' (resumed: later part)' if r.get('resumed') else ''}, "
                f"{r['peak_rss_GiB'] or '?'} GiB | {r['trainable_percent']:.1f}%, {r['saved_MB'] or '?'} MB |"
            )
    lines.append("")
    lines.extend(f"On {device}: {', '.join(rows)}." for device, rows in on.items())
    if result["spearman"]:
        rho = ", ".join(f"{m} {v:+.2f}" for m, v in result["spearman"].items())
        lines.append(f"\nSpearman, screen against full, over {', '.join(result['compared'])}: {rho}.")
    for pair, gaps in result["seed_noise"].items():
        lines.append(f"Seed gap ({pair}): " + ", ".join(f"{m} {v:.2f}" for m, v in gaps.items()) + ".")
    return "\n".join(lines)


def table(study: Study, out: Path | None, shown: list[str] | None = None) -> dict:
    # run folders do not outlive a checkout: a row whose run is gone keeps the figures the last table recorded
    before = recorded_rows(out)
    rows = {
        name: {mode: row(study, mode, name) or before.get(name, {}).get(mode) for mode in MODES}
        for name in study.systems
    }
    both = [name for name, r in rows.items() if r["screen"] and r["full"] and name not in study.replicas]
    agreement = {}
    if len(both) >= 3:
        for metric in METRICS:
            rho = spearmanr([rows[n]["screen"][metric] for n in both], [rows[n]["full"][metric] for n in both])
            agreement[metric] = round(float(rho.statistic), 3)
    noise = {  # |replica - original| per mode and metric, where both ran
        f"{mode}: {replica} - {original}": {
            m: round(abs(rows[replica][mode][m] - rows[original][mode][m]), 2) for m in METRICS
        }
        for replica, original in study.replicas.items()
        for mode in MODES
        if rows[replica][mode] and rows[original][mode]
    }
    result = {"systems": rows, "compared": both, "spearman": agreement, "seed_noise": noise}
    if out:
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(study, result, shown))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    runs = sub.add_parser("run")
    runs.add_argument("study", type=Path)
    runs.add_argument("mode", choices=MODES)
    runs.add_argument("--systems", nargs="+", help="the systems run, in this order (default: all)")
    runs.add_argument("--data", type=Path, default=DATA)
    runs.add_argument("--skip-recorded", type=Path, metavar="TABLE", help="skip the systems this table file records")
    tab = sub.add_parser("table")
    tab.add_argument("study", type=Path)
    tab.add_argument("--out", type=Path)
    tab.add_argument("--systems", nargs="+", help="the rows printed (all are scored)")
    args = parser.parse_args(argv)
    study = Study.read(args.study)
    unknown = sorted(set(args.systems or []) - set(study.systems))
    if unknown:
        raise SystemExit(f"{args.study}: no systems {unknown}; known: {list(study.systems)}")
    if args.what == "run":
        if args.skip_recorded and not args.skip_recorded.exists():
            raise SystemExit(f"--skip-recorded {args.skip_recorded}: no such table file")
        run(study, args.mode, args.systems or list(study.systems), args.data, args.skip_recorded)
    else:
        table(study, args.out, args.systems)


if __name__ == "__main__":
    main()
