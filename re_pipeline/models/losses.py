"""Losses, one table entry each (`LOSSES`): cross-entropy (optionally label-smoothed) and focal, both
optionally class-weighted. Shapes: logits (B, C), labels (B,), class weights (C,)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.typed_config import check, choice, option


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, config: LossConfig, weight: torch.Tensor | None, allowed=None
):
    """Cross-entropy. Label smoothing spreads its share of the target over the labels `allowed` per row (B, C)
    (every label when None: torch's own smoothing), so labels a type-pair head blocks get none of it."""
    eps = config.label_smoothing
    if not eps or allowed is None:
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=eps)
    log_p = F.log_softmax(logits.float(), dim=-1)  # (B, C)
    w = torch.ones_like(log_p[0]) if weight is None else weight  # (C,)
    gold = -w[labels] * log_p.gather(1, labels[:, None]).squeeze(1)  # (B,)
    spread = -(allowed * w * log_p).sum(1) / allowed.sum(1)  # (B,)
    return ((1 - eps) * gold + eps * spread).sum() / w[labels].sum()  # torch's weighted mean


def focal(logits: torch.Tensor, labels: torch.Tensor, config: LossConfig, weight: torch.Tensor | None, allowed=None):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_gold) ** gamma; weighted mean with `weight`
    (no smoothing, so `allowed` is not needed)."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)  # (B,)
    loss = -((1 - log_p.exp()) ** config.focal_gamma) * log_p
    if weight is None:
        return loss.mean()
    w = weight[labels]
    return (loss * w).sum() / w.sum()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": cross_entropy, "focal": focal}


@dataclass
class LossConfig:
    """The training loss."""

    name: str = option("ce", "loss: " + " | ".join(LOSSES))
    label_smoothing: float = option(
        0.0, "ce only: share of the target mass spread over the labels (those its type pair allows)"
    )
    focal_gamma: float = option(2.0, "focal only: the focusing exponent")
    class_weighted: bool = option(True, "weight classes by inverse square-root frequency: rare relations get ranked")

    def __post_init__(self) -> None:
        choice("model.loss.name", self.name, LOSSES)
        check("model.loss.label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)", self.label_smoothing)
        check("model.loss.focal_gamma", self.focal_gamma >= 0, "at least 0", self.focal_gamma)


def relation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: LossConfig,
    class_weights: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """The configured loss, a scalar. `allowed` (B, C): the labels each row's type-pair head allows (None: all)."""
    return LOSSES[config.name](logits, labels, config, class_weights if config.class_weighted else None, allowed)


def inverse_sqrt_weights(label_ids: list[int], num_labels: int) -> torch.Tensor:
    """Class weights ∝ 1/sqrt(count), normalised to mean 1; unseen classes get the largest weight."""
    counts = torch.bincount(torch.tensor(label_ids), minlength=num_labels).float()
    weights = counts.clamp(min=1.0).rsqrt()
    return weights * num_labels / weights.sum()
