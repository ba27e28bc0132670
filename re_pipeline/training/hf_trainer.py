"""Everything that leans on transformers' private `Trainer` API, in one module.

`RelationTrainer` overrides the private `_get_train_sampler` / `_get_eval_sampler`, and `resume_training`
calls `_load_best_model` / `_load_from_checkpoint`. Private methods change between releases without
notice, so importing this module checks that the installed transformers is inside the range these
overrides were written and tested for (`SUPPORTED_TRANSFORMERS`, the same range as `pyproject.toml`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import torch
import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers import Trainer, TrainerState
from transformers.trainer_pt_utils import get_length_grouped_indices

from ..data.features import token_lengths

SUPPORTED_TRANSFORMERS = ">=5.0,<6"


def check_transformers(version: str = transformers.__version__) -> None:
    """ImportError naming the supported range when `version` is outside it."""
    if Version(version) not in SpecifierSet(SUPPORTED_TRANSFORMERS):
        raise ImportError(
            f"re_pipeline needs transformers {SUPPORTED_TRANSFORMERS} (it overrides private Trainer methods), "
            f"but transformers {version} is installed; run `make install` for the locked versions"
        )


check_transformers()


class EpochLengthSampler(torch.utils.data.Sampler):
    """Length-grouped batches (`get_length_grouped_indices`) drawn from `seed + epoch`.

    The stock sampler keeps one generator across epochs, so a run resumed mid-training
    sees other batches than an uninterrupted one; seeding per epoch replays them exactly.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        self.batch_size, self.lengths, self.seed, self.epoch = batch_size, lengths, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class RelationTrainer(Trainer):
    """A `Trainer` that evaluates and predicts in dataset order, replays length-grouped batches on resume, and
    shows each training batch to its `throughput` meter.

    transformers 5 also length-groups the *evaluation* sampler when training uses `group_by_length`,
    which would misalign predictions with their rows.
    """

    def __init__(self, *args, throughput=None, layer_decay: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.throughput = throughput  # a `throughput.Throughput` among the callbacks, fed every training batch
        self.layer_decay = layer_decay
        # The model's `**_` would make its loss look normalised by `num_items_in_batch`: under DDP the
        # Trainer would then multiply it by the number of processes (and skip gradient accumulation's division).
        self.model_accepts_loss_kwargs = False

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.throughput is not None:
            self.throughput.count(inputs)
        return super().training_step(model, inputs, num_items_in_batch)

    def create_optimizer(self, model=None):
        """The stock optimizer; with `layer_decay` below 1 its groups split by depth, each layer's rate
        `layer_decay` times the one above (ELECTRA's layer-wise decay; the Trainer has no such option)."""
        optimizer = super().create_optimizer(model)
        if self.layer_decay == 1.0:
            return optimizer
        names = {id(p): n for n, p in (model or self.model).named_parameters()}
        depth = {i: layer_depth(n) for i, n in names.items()}
        top = 1 + max((d for d in depth.values() if d is not None), default=0)
        groups = []
        for group in optimizer.param_groups:
            by_depth = defaultdict(list)
            for p in group["params"]:
                by_depth[top if depth[id(p)] is None else depth[id(p)]].append(p)
            settings = {k: v for k, v in group.items() if k != "params"}
            for d, params in sorted(by_depth.items()):
                groups.append({**settings, "params": params, "lr": group["lr"] * self.layer_decay ** (top - d)})
        optimizer.param_groups = []  # nothing stepped yet: no state to carry
        for group in groups:
            optimizer.add_param_group(group)
        return optimizer

    def _get_eval_sampler(self, eval_dataset):
        return torch.utils.data.SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or self.args.world_size > 1:
            return super()._get_train_sampler(train_dataset)
        return EpochLengthSampler(self.args.train_batch_size, token_lengths(dataset), self.args.data_seed)


def layer_depth(name: str) -> int | None:
    """0 for the encoder's embeddings, i + 1 for its layer i, None for the rest (the head: the top)."""
    if match := re.search(r"\.layer\.(\d+)\.", name):
        return int(match.group(1)) + 1
    return 0 if ".embeddings." in name else None


def resume_training(trainer: Trainer, checkpoint: Path | None) -> None:
    """`trainer.train()`, resuming from `checkpoint` when given. A checkpoint saved as training stopped
    (early stopping, the last step) only gets its best model loaded, as at the end of training:
    `train()` would take at least one more step."""
    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json")) if checkpoint else None
    control = state.stateful_callbacks.get("TrainerControl", {}) if state else {}
    if state is None or not control.get("args", {}).get("should_training_stop"):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return
    trainer.state = state
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        trainer._load_best_model()
    else:
        trainer._load_from_checkpoint(str(checkpoint))
