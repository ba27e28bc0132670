"""Load -> clean -> format -> tokenize throughput on the full shared train set (configs/reference.yaml's
markers), 1 and 2 processes,
and the token-length distribution per input format.

Usage: python bench/features_bench.py [train.csv] > result.json   (median of 3 runs per process count)
The tokenizer is the offline default (16k Unigram trained on train+test sentences, cached in .cache/).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from re_pipeline.config import load_config
from re_pipeline.data.features import build_features, prepare_tokenizer, token_lengths
from re_pipeline.data.load import load_data
from re_pipeline.data.markers import FORMATS, MarkerConfig
from re_pipeline.models.backbone import BackboneConfig, default_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-re"
DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "reference.yaml"


def main(train_path: Path, repeats: int = 3) -> dict:
    test_path = train_path.parent / "test_data.csv"
    sentences = sorted({ex.sentence for p in (train_path, test_path) for ex in load_data(p).examples})
    tokenizer = default_tokenizer(sentences, BackboneConfig(), Path(".cache/bench-tokenizer-16k"))
    types = ["PER", "ORG", "LOC", "DAT", "POH", "NOH"]
    out = {"throughput": [], "lengths": []}
    config = load_config(DEFAULT).markers
    for procs in (1, 2):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            loaded = load_data(train_path)
            prepare_tokenizer(tokenizer, config, types)
            build_features(loaded.examples, tokenizer, config, loaded.label_set, 256, num_proc=procs)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        out["throughput"].append(
            {
                "processes": procs,
                "rows": loaded.ledger.rows_read,
                "median_s": round(median, 2),
                "rows_per_s": round(loaded.ledger.rows_read / median),
            }
        )
    for fmt in FORMATS:
        for language in ("en", "ko"):
            if fmt == "baseline" and language == "ko":
                continue
            config = MarkerConfig(format=fmt, type_language=language)
            prepare_tokenizer(tokenizer, config, types)
            ds, stats = build_features(loaded.examples, tokenizer, config, loaded.label_set, 256, num_proc=2)
            lengths = np.array(token_lengths(ds))
            out["lengths"].append(
                {
                    "format": fmt,
                    "types": language,
                    "mean": round(float(lengths.mean()), 1),
                    "p50": int(np.percentile(lengths, 50)),
                    "p95": int(np.percentile(lengths, 95)),
                    "max_before_window": stats["max_tokens"],
                    "windowed": stats["truncated_window"],
                }
            )
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED / "train.csv"), indent=1))
