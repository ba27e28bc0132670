"""How close a training run comes to the hardware.

`matmul_peak` measures the machine's own ceiling in this process: a 2048³ `torch.matmul`, in float32 and, where
the hardware computes it, bfloat16. `Throughput` (a `TrainerCallback`, fed each training batch by the
trainer) counts the model FLOPs the steps performed and splits the training time into steps, evaluation and
the rest (data loading, collation, checkpoints, logging). Its summary goes into the fold's record: rows/s,
achieved GFLOP/s, and the model FLOP utilisation (MFU) against the peak of the precision the run computes in.

Model FLOPs per row of L real tokens (padding is waste, not model work), per encoder layer, forward:
2·L·(4H² + 2HI) for the matrix multiplies and 4·L²·H for attention's scores and weighted sum. A training
step runs forward through the layers it computes (all of them, or those above a cached frozen part) and
backward at twice the forward cost through the trained layers; with PEFT the backward pass still carries
activation gradients through every layer (counted once) but few weight gradients (not counted).
Embedding lookups and the classifier head are left out (well under 1% here).
"""

from __future__ import annotations

import functools
import time

import torch
from transformers import TrainerCallback

from ..core.device import cpu_has_bf16, resolve_precision


@functools.cache
def matmul_peak(dtype: str, device: str = "cpu", size: int = 2048, repeats: int = 10, warmup: float = 0.3) -> float:
    """GFLOP/s of a `size`³ matmul in `dtype` ("fp32" | "bf16" | "fp16") on `device`: the best of `repeats`
    after `warmup` seconds of the same matmul (on a CPU with AMX the rate climbs for about ten matmuls)."""
    kind = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    a, b = (torch.randn(size, size, device=device).to(kind) for _ in range(2))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    while time.perf_counter() - start < warmup:
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def peaks(device: str = "cpu") -> dict[str, float]:
    """The matmul peaks that apply here: fp32 always, bf16 where the CPU or GPU computes it in hardware."""
    gpu_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    types = ["fp32", "bf16"] if gpu_bf16 or (device == "cpu" and cpu_has_bf16()) else ["fp32"]
    return {t: round(matmul_peak(t, device), 1) for t in types}


def significant(x: float, digits: int = 3) -> float:
    """`x` to `digits` significant figures: a tiny model's GFLOP/s and MFU stay above 0 (fixed decimals round
    them away)."""
    return float(f"{x:.{digits}g}")


class Throughput(TrainerCallback):
    """Model FLOPs and time of a Trainer's training steps. `encoder_config`: the encoder's (hidden_size,
    intermediate_size, num_hidden_layers); `frozen`: its bottom layers that do not train; `cached`: whether
    their output comes from a cache (then they do not run); `peft`: only adapters train."""

    def __init__(self, encoder_config, frozen: int = 0, cached: bool = False, peft: bool = False, precision="auto"):
        h, i, n = encoder_config.hidden_size, encoder_config.intermediate_size, encoder_config.num_hidden_layers
        self.hidden, self.layer_params = h, 4 * h * h + 2 * h * i
        forward = n - frozen if cached else n
        self.passes = forward + (n if peft else 2 * (n - frozen))  # layer-forwards per step, backward included
        self.precision = resolve_precision(precision)
        self.rows = self.tokens = 0
        self.flops = self.step_seconds = self.eval_seconds = self.wall = 0.0
        self._step = self._begin = None

    def count(self, inputs: dict) -> None:
        """Add one training batch (its (B, T) `attention_mask`)."""
        lengths = inputs["attention_mask"].sum(1).double()  # (B,)
        per_layer = 2 * lengths * self.layer_params + 4 * lengths**2 * self.hidden
        self.rows += len(lengths)
        self.tokens += int(lengths.sum())
        self.flops += float(per_layer.sum()) * self.passes

    def on_train_begin(self, args, state, control, **kwargs):
        self._begin = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._step = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step is not None:
            self.step_seconds += time.perf_counter() - self._step

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.eval_seconds += (metrics or {}).get("eval_runtime", 0.0)

    def on_train_end(self, args, state, control, **kwargs):
        if self._begin is not None:
            self.wall += time.perf_counter() - self._begin

    def summary(self, device: str = "cpu") -> dict:
        """Rows/s and GFLOP/s of training (evaluation excluded), the peaks and MFU, and the time split."""
        training = max(self.wall - self.eval_seconds, 1e-9)
        achieved = self.flops / training / 1e9
        measured = peaks(device)
        peak = measured.get(self.precision if self.precision in measured else "fp32")
        return {
            "rows_per_s": round(self.rows / training, 2),
            "tokens_per_s": round(self.tokens / training, 1),
            "gflops": significant(achieved),
            "step_gflops": significant(self.flops / max(self.step_seconds, 1e-9) / 1e9),
            "precision": self.precision,
            "peak_gflops": measured,
            "mfu": significant(achieved / peak),
            "seconds": {
                "steps": round(self.step_seconds, 3),
                "evaluation": round(self.eval_seconds, 3),
                "other": round(training - self.step_seconds, 3),
            },
        }
