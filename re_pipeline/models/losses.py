"""Losses: cross-entropy (optionally label-smoothed), focal, and class-weighted variants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import PipelineError

LOSSES = ("ce", "focal")


@dataclass
class LossConfig:
    """`name`: ce | focal. `class_weighted`: weight classes by inverse square-root frequency."""

    name: str = "ce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    class_weighted: bool = False

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise PipelineError(f"model.loss.name must be one of {', '.join(LOSSES)}, not {self.name!r}")


def relation_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: LossConfig, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    weight = class_weights if config.class_weighted else None
    if config.name == "ce":
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=config.label_smoothing)
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
    focal = -((1 - log_p.exp()) ** config.focal_gamma) * log_p
    if weight is not None:
        w = weight[labels]
        return (focal * w).sum() / w.sum()
    return focal.mean()


def inverse_sqrt_weights(label_ids: list[int], num_labels: int) -> torch.Tensor:
    """Class weights ∝ 1/sqrt(count), normalised to mean 1; unseen classes get the largest weight."""
    counts = torch.bincount(torch.tensor(label_ids), minlength=num_labels).float()
    weights = counts.clamp(min=1.0).rsqrt()
    return weights * num_labels / weights.sum()
