"""Handing freed heap memory back to the system during long training loops.

glibc's malloc keeps the memory that a training step's many short-lived buffers free inside its heap instead of
returning it: on full KLUE-RE, TAPT's resident memory grew from 2.1 to 2.8 GiB in 300 steps that way.
`malloc_trim(0)` returns the free pages; called every 50 steps it cost no time (BENCHMARKS.md, "Peak memory and
time of each stage").
Written by hand because neither torch nor transformers exposes it. Where the C library is not glibc (macOS,
musl) there is no `malloc_trim` and this does nothing.
"""

from __future__ import annotations

import ctypes
from functools import cache

from transformers import TrainerCallback


@cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError, TypeError):  # TypeError: Windows has no process-wide C library handle
        return None


def release_heap() -> bool:
    """Return the heap's free pages to the system; False where the C library has no `malloc_trim`."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class ReleaseHeap(TrainerCallback):
    """Calls `release_heap` every `every` optimizer steps and after each evaluation."""

    def __init__(self, every: int = 50):
        self.every = every

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            release_heap()

    def on_evaluate(self, args, state, control, **kwargs):
        release_heap()
