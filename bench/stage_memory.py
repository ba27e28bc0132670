"""Peak resident memory and wall time of each pipeline stage, from one real `run_pipeline` call.

A thread samples the process's RSS every 20 ms; the pipeline's progress messages mark where one
stage ends and the next begins. The run uses a fresh cache (so the tokenizer and TAPT really run)
and short budgets: `tapt.epochs` and `train.max_steps` below, everything else from the config.
Each stage's peak is the highest RSS seen while it ran, so it includes memory that earlier
stages still hold (the loaded data, the tokenizer, the Python and torch runtime).

Usage: python bench/stage_memory.py [--data ../shared/data/klue-re]   (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import psutil

# message prefix -> the stage that starts with it; before the first message the data is loaded and cleaned
STAGES = {
    "tokenizer:": "tokenizer",
    "TAPT:": "TAPT",
    "features:": "format + tokenize",
    "fold 1: training": "fine-tune",
    "fold 1: predicting": "predict (validation + test)",
}
BUDGET = ["tapt.epochs=0.05", "train.max_steps=50", "train.eval_steps=50"]


class StageMeter:
    """RSS peaks and seconds per stage; `mark(message)` switches stage on a known message prefix."""

    def __init__(self, first: str) -> None:
        self.process = psutil.Process()
        self.stage, self.started = first, time.perf_counter()
        self.peaks: dict[str, float] = {first: 0.0}
        self.seconds: dict[str, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            self._record()

    def _record(self) -> None:
        rss = self.process.memory_info().rss / 2**20
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss)

    def switch(self, stage: str) -> None:
        self._record()
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self.started
        self.stage, self.started = stage, now
        self._record()

    def mark(self, message: str) -> None:
        print(message, flush=True)
        for prefix, stage in STAGES.items():
            if message.startswith(prefix) and stage != self.stage:
                self.switch(stage)

    def stop(self) -> dict:
        self.switch("end")
        self.done.set()
        self.thread.join()
        return {
            stage: {"peak_rss_mib": round(self.peaks[stage]), "seconds": round(self.seconds[stage], 1)}
            for stage in self.seconds
        }


def main(data: str, config_path: str = "configs/transformer.yaml", extra: tuple[str, ...] = ()) -> dict:
    from re_pipeline.config import load_config
    from re_pipeline.pipeline import run_pipeline

    overrides = [f"data.train={data}/train.csv", f"data.test={data}/test_data.csv", *BUDGET, *extra]
    meter = StageMeter("load + clean")
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(config_path, overrides)
        run_pipeline(config, Path(tmp) / "run", Path(tmp) / "submissions", log=meter.mark, cache=Path(tmp) / "cache")
    stages = meter.stop()
    stages.pop("end", None)
    return {"overrides": overrides, "stages": stages}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/klue-re")
    print(json.dumps(main(parser.parse_args().data), indent=1))
