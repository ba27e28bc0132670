"""Hyperparameter search with Optuna (`re-pipeline hpsearch`): every trial is an ordinary run folder.

    search:
      space:                          # dotted config keys, as for --set
        train.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
        model.pooling: {type: categorical, choices: [cls, entity_start]}
      metric: micro_f1                # out-of-fold validation metric: micro_f1 | auprc | accuracy
      direction: maximize
      pruner: median                  # median (stops a trial whose evaluations trail the others') | null

The study lives in `runs/hpsearch/<study>.db` (SQLite) unless `--storage` names another database;
workers given one storage and study name share the study. The best trial's resolved config is
written to `runs/hpsearch/<study>-best.yaml`.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from ..config import to_yaml, with_values
from ..core.errors import PipelineError
from ..core.io_utils import atomic_write
from ..pipeline import run_pipeline
from ..records.runs import new_run_id

OUT = Path("runs") / "hpsearch"


def pruning_callback(trial, metric: str):
    """A `TrainerCallback` reporting each evaluation's `metric` to `trial`; raises `TrialPruned` when told to."""
    import optuna  # heavy, and needed by this command only

    class Pruning(TrainerCallback):
        reports = 0  # evaluations so far in this trial, over all folds

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(f"eval_{metric}")
            if value is None:
                return
            self.reports += 1
            trial.report(value, self.reports)
            if trial.should_prune():
                raise optuna.TrialPruned(f"evaluation {self.reports} (step {state.global_step}): {metric} {value:.2f}")

    return Pruning()


def run_hpsearch(config, trials: int, storage: str | None = None, study_name: str | None = None, log=print) -> Path:
    """Run `trials` more trials of `config.search` in the (shared) study; write the best config and return its path."""
    import optuna  # heavy, and needed by this command only

    search, study_name = config.search, study_name or config.name
    if not search.space:
        raise PipelineError("the config has no search.space to search (see re_pipeline/experiments/hpsearch.py)")
    if config.train.validation == "none":
        raise PipelineError("a search needs validation metrics: set train.validation to holdout or kfold")
    with_values(config, {key: spec.first() for key, spec in search.space.items()})  # every key is a config key
    OUT.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{OUT / study_name}.db"
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials)
        if search.pruner
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, direction=search.direction, pruner=pruner, load_if_exists=True
        )
    except Exception as exc:  # a bad URL, an unreachable database, a study of the other direction
        raise PipelineError(f"cannot open study {study_name!r} in {storage}: {exc}") from None
    study.sampler = optuna.samplers.TPESampler(
        seed=config.seed + len(study.trials)
    )  # reproducible, and new points for each worker

    def objective(trial) -> float:
        values = {key: spec.suggest(trial, key) for key, spec in search.space.items()}
        cfg = with_values(config, {**values, "name": f"{config.name}-trial{trial.number}"})
        run_dir = Path("runs") / new_run_id(cfg.name)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("config", to_yaml(cfg))
        log(f"trial {trial.number}: {json.dumps(values)} -> {run_dir}")
        run_pipeline(cfg, run_dir, log=log, callbacks=(pruning_callback(trial, search.metric),))
        return json.loads((run_dir / "result.json").read_text(encoding="utf-8"))["metrics"][search.metric]

    study.optimize(objective, n_trials=trials, catch=(PipelineError,))
    states = [t.state.name.lower() for t in study.trials]
    log(f"study {study_name!r} in {storage}: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))))
    if "complete" not in states:
        raise PipelineError(f"study {study_name!r} has no finished trial yet")
    best = study.best_trial
    path = OUT / f"{study_name}-best.yaml"
    with atomic_write(path) as fh:
        fh.write(
            f"# best of study {study_name!r}: trial {best.number}, {search.metric} {best.value:.2f}, {best.params}\n"
        )
        fh.write(best.user_attrs["config"])
    log(
        f"best: trial {best.number} ({best.user_attrs['run_dir']}), {search.metric} {best.value:.2f}, {json.dumps(best.params)}"
    )
    return path
