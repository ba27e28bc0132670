"""Where the arithmetic runs and in which precision.

`precision: auto` picks bf16 autocast where the hardware has bf16 units (GPUs that support it; CPUs with
AMX or AVX-512 BF16, such as Intel Sapphire Rapids and AMD Zen 4), float32 elsewhere. `bf16` and `fp16`
force autocast, `fp32` turns it off.
"""

from __future__ import annotations

import platform
from contextlib import nullcontext
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_name() -> str:
    """This CPU's model name (from /proc/cpuinfo on Linux): speed figures mean little without it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return name or platform.processor() or "unknown CPU"


def cpu_bf16_units() -> list[str]:
    """This CPU's units that compute bfloat16 in hardware: `amx_tile`, `avx512_bf16`, both or none."""
    units = {"amx_tile": torch.cpu._is_amx_tile_supported(), "avx512_bf16": torch.cpu._is_avx512_bf16_supported()}
    return [name for name, present in units.items() if present]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX tiles or AVX-512 BF16)."""
    return bool(cpu_bf16_units())


def resolve_precision(precision: str) -> str:
    """`auto` made concrete for this machine: bf16 where the hardware has it, else fp32."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def precision_flags(precision: str) -> dict:
    """`TrainingArguments` flags for `precision` (the Trainer autocasts on CPU too with `use_cpu`)."""
    resolved = resolve_precision(precision)
    return {"bf16": resolved == "bf16", "fp16": resolved == "fp16"}


def autocast(precision: str, device: str = "cpu"):
    """A context that runs the forward pass in `precision` (inference outside the Trainer)."""
    resolved = resolve_precision(precision)
    if resolved == "fp32":
        return nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)
