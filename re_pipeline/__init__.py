"""re_pipeline: a Korean relation-extraction pipeline for KLUE-RE style competitions."""

import os

# oneDNN (torch's CPU kernels for bf16) keeps a compiled kernel per input shape, up to 1,024 of them. Our batches
# come in many lengths: on full KLUE-RE that cache made TAPT's resident memory grow by more than 1 GiB in its first
# 300 steps, and TAPT ran no faster with it (BENCHMARKS.md, "Memory"). Off, unless the user sets it.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")

__version__ = "0.1.0"
