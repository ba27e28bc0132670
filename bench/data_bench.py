"""Load + clean throughput on the full shared KLUE-RE train set (median of several runs)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from re_pipeline.data.load import load_data

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-re" / "train.csv"


def bench_load_clean(repeats: int = 5) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = load_data(TRAIN)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    rows = loaded.ledger.rows_read
    return {"rows": rows, "median_s": median, "rows_per_s": rows / median, "runs": repeats}


if __name__ == "__main__":
    if not TRAIN.exists():
        sys.exit(f"shared data not found at {TRAIN}")
    print(bench_load_clean())
