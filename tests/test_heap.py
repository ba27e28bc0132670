"""Freed heap memory goes back to the system: measured on this process's resident memory, in a child process
with a heap of its own."""

from __future__ import annotations

import subprocess
import sys

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from re_pipeline.core import heap

CHILD = """
import os
from re_pipeline.core.heap import release_heap

def resident():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

chunks = [bytes([1]) * 100_000 for _ in range(2_000)]  # 200 MB of heap blocks under glibc's mmap threshold
pin = bytes([1]) * 100_000  # above them: the heap's top cannot shrink on free
del chunks
before = resident()
assert release_heap()
print((before - resident()) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc are Linux's")
def test_release_heap_returns_freed_blocks_to_the_system():
    if heap._malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim (not glibc)")
    freed_mib = float(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout)
    assert freed_mib > 150


def test_the_callback_releases_every_n_steps_and_after_evaluation(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(heap, "release_heap", lambda: calls.append(True))
    callback, state = heap.ReleaseHeap(every=50), TrainerState()
    args, control = TrainingArguments(output_dir=str(tmp_path), use_cpu=True), TrainerControl()
    for step in range(1, 121):
        state.global_step = step
        callback.on_step_end(args, state, control)
    assert len(calls) == 2
    callback.on_evaluate(args, state, control)
    assert len(calls) == 3
