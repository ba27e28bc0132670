"""TAPT step time: the stock full-vocabulary LM head versus the head gathered at masked positions.

Default backbone (4 layers, 256 wide), a 16k tokenizer trained on the shared train sentences
(cached in .cache/bench-tokenizer-16k), 64 random train sentences at max_length 128,
padded to the longest in the batch (as TAPT trains) and to 128.
Each timing is the median of 5 steps (forward + backward + AdamW step) after 1 warm-up step; the
head share is the stock head + loss (forward + backward on fixed encoder outputs) over the full step.

    python bench/tapt_head_bench.py   (prints JSON)
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from re_pipeline.data.load import load_data
from re_pipeline.models.backbone import BackboneConfig, build_config, default_tokenizer
from re_pipeline.training.tapt import GatheredMLM, TaptConfig, encode, make_collator

KLUE_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "klue-re" / "train.csv"


def median_seconds(fns: dict[str, Callable[[], None]], repeats: int = 5) -> dict[str, float]:
    """Median wall time of each function after one warm-up call, timed round-robin so that load
    from other processes on the machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def train_step(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(module.parameters(), lr=5e-4)

    def step() -> None:
        optimizer.zero_grad()
        module(**batch)["loss"].backward()
        optimizer.step()

    return step


def full_head_only(mlm: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    """Forward + backward of the stock head and loss alone, on fixed encoder outputs."""
    with torch.no_grad():
        hidden = mlm.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    hidden.requires_grad_(True)

    def step() -> None:
        logits = mlm.lm_head(hidden)
        F.cross_entropy(logits.view(-1, logits.shape[-1]), batch["labels"].view(-1)).backward()

    return step


def main(train_path: Path = KLUE_TRAIN, cache_dir: str = ".cache/bench-tokenizer-16k") -> list[dict]:
    """One row per padding: seconds per step with the full and the gathered head, and the head's share."""
    from transformers import XLMRobertaForMaskedLM

    torch.manual_seed(0)
    backbone = BackboneConfig()
    sentences = sorted({ex.sentence for ex in load_data(train_path).examples})
    tokenizer = default_tokenizer(sentences, backbone, cache_dir)
    sample = random.Random(0).sample(sentences, 64)
    config = TaptConfig(max_length=128, seed=0)
    rows = []
    for pad_to in (None, config.max_length):
        collator = make_collator(tokenizer, config)
        collator.pad_to_multiple_of = pad_to
        batch = collator(encode(sample, tokenizer, config.max_length, whole_word=False))
        mlm = XLMRobertaForMaskedLM(build_config(backbone, len(tokenizer), tokenizer.pad_token_id))
        steps = {
            "full": train_step(mlm, batch),
            "head": full_head_only(mlm, batch),
            "gathered": train_step(GatheredMLM(mlm), batch),
        }
        timed = median_seconds(steps)
        size, width = batch["input_ids"].shape
        rows.append(
            {
                "padding": "to the batch's longest" if pad_to is None else f"to {pad_to}",
                "batch": f"{size} x {width}",
                "masked": int((batch["labels"] != -100).sum()),
                "vocab": len(tokenizer),
                "threads": torch.get_num_threads(),
                "full_s": timed["full"],
                "gathered_s": timed["gathered"],
                "head_share": timed["head"] / timed["full"],
            }
        )
    return rows


if __name__ == "__main__":
    if not KLUE_TRAIN.exists():
        sys.exit(f"shared data not found at {KLUE_TRAIN}")
    print(json.dumps(main(), indent=1))
