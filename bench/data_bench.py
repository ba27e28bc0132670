"""Load + clean throughput on the full shared KLUE-RE train set (median of several runs)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from re_pipeline.data.load import load_data

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-re" / "train.csv"


def bench_load_clean(path: Path = TRAIN, repeats: int = 5) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = load_data(path)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    rows = loaded.ledger.rows_read
    return {
        "rows": rows,
        "kept": len(loaded.examples),
        "median_s": median,
        "rows_per_s": rows / median,
        "runs": repeats,
        "seconds": times,
    }


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TRAIN
    if not path.exists():
        sys.exit(f"shared data not found at {path}")
    print(json.dumps(bench_load_clean(path)))
