"""A console people can read: one progress bar per stage instead of the Trainer's bars and printed log dicts.

`StageBars` is a `TrainerCallback` (each Trainer's training is a bar named by `args.run_name`, with the live
loss and the last validation metric beside it; its predictions after training are another) and shows any
other stage through `stage(name)`. Bars carry rich's estimate of the time left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import datasets
import transformers
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback


class StageBars(TrainerCallback):
    """One bar per stage on `console`; use as a context manager around the stages."""

    def __init__(self, console: Console | None = None):
        self.progress = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(table_column=Column(min_width=7)),
            TextColumn("eta"),
            TimeRemainingColumn(table_column=Column(min_width=7)),
            TextColumn("{task.fields[postfix]}", table_column=Column(overflow="fold")),
            console=console,
        )
        self.training = self.predicting = self.loader = self.predict_name = None
        self.predict_total = 0
        self.postfix: dict[str, str] = {}

    def __enter__(self) -> StageBars:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A bar for a stage that reports no steps (it pulses, then shows done)."""
        task = self.progress.add_task(name, total=None, postfix="")
        yield
        self.progress.update(task, total=1, completed=1)

    def _show(self, task) -> None:
        self.progress.update(task, postfix=" ".join(f"{k} {v}" for k, v in self.postfix.items()))

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            name = args.run_name or "training"
            self.postfix, self.predict_name = {}, None
            self.training = self.progress.add_task(
                f"{name}: training", total=state.max_steps, completed=state.global_step, postfix=""
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.training is not None:
            self.progress.update(self.training, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training is not None and "loss" in (logs or {}):
            self.postfix["loss"] = f"{logs['loss']:.4f}"
            self._show(self.training)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        key = f"eval_{args.metric_for_best_model}"
        if self.training is not None and key in (metrics or {}):
            self.postfix.pop("evaluating", None)
            self.postfix[f"val {args.metric_for_best_model}"] = f"{metrics[key]:.2f}"
            self._show(self.training)

    def on_train_end(self, args, state, control, **kwargs):
        if self.training is not None:  # early stopping ends before max_steps: the bar shows what ran
            self.progress.update(self.training, total=state.global_step, completed=state.global_step)
            self.training = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not state.is_world_process_zero or eval_dataloader is None:
            return
        if self.training is not None:  # an evaluation during training: counted in the training bar's postfix
            self.postfix["evaluating"] = "…"
            self._show(self.training)
            return
        name = f"{args.run_name or 'model'}: predicting"
        if name != self.predict_name:
            self.predicting = self.progress.add_task(name, total=0, postfix="")
            self.predict_name, self.predict_total, self.loader = name, 0, None
        if eval_dataloader is not self.loader:  # one bar for every dataset predicted (validation, then test rows)
            self.loader = eval_dataloader
            self.predict_total += len(eval_dataloader)
            self.progress.update(self.predicting, total=self.predict_total)
        self.progress.advance(self.predicting)


def stage(bars: StageBars | None, name: str):
    """`bars.stage(name)`, or nothing where no bars are shown (`--verbose`, library use)."""
    return bars.stage(name) if bars is not None else contextlib.nullcontext()


def replace_stock_output(trainer: Trainer) -> Trainer:
    """Drop the Trainer's own progress bar and printed log dicts when a `StageBars` shows its progress."""
    if any(isinstance(cb, StageBars) for cb in trainer.callback_handler.callbacks):
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
    return trainer


@contextlib.contextmanager
def console_stages(console: Console, verbose: bool = False) -> Iterator[StageBars | None]:
    """`StageBars` on `console`, with transformers' info logs and datasets' bars silenced meanwhile;
    with `verbose`, None: the libraries' own bars and log lines."""
    if verbose:
        yield None
        return
    level, bars_on = transformers.logging.get_verbosity(), datasets.is_progress_bar_enabled()
    hub_bars_on = transformers.logging.is_progress_bar_enabled()  # loading and saving weights
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        with StageBars(console) as bars:
            yield bars
    finally:
        transformers.logging.set_verbosity(level)
        if hub_bars_on:
            transformers.logging.enable_progress_bar()
        if bars_on:
            datasets.enable_progress_bars()
