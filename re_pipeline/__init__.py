"""re_pipeline: a Korean relation-extraction pipeline for KLUE-RE style competitions.

The flow, and where each part lives: core (shared ground) -> data (load, clean, format, augment, split) ->
models -> evaluation -> training -> records -> submit (ensemble, submission) -> config (every stage's section)
-> pipeline (one run end to end), predict (a saved model on new rows) -> experiments (many runs) -> cli.
A module imports only from its own layer or those before it (tests/test_layers.py)."""

import os

# oneDNN (torch's CPU kernels for bf16) keeps a compiled kernel per input shape, up to 1,024 of them. Our batches
# come in many lengths: on full KLUE-RE that cache made TAPT's resident memory grow by more than 1 GiB in its first
# 300 steps, and TAPT ran no faster with it (BENCHMARKS.md, "Memory"). Off, unless the user sets it.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")

__version__ = "0.1.0"
