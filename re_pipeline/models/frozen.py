"""Frozen lower layers (`model.backbone.freeze_layers: K`): the embeddings and the bottom K layers of a
BERT-family encoder (`embeddings` + `encoder.layer`: BERT, RoBERTa, XLM-R, e5) stay fixed and always run
without dropout, so their output is a function of the input tokens alone. That is what lets
`training/frozen_cache.py` compute it once per distinct input and reuse it in every epoch, for validation and test.

transformers has no public call that runs a slice of an encoder's layers, so `run_layers` loops over them
with the mask the model itself would build (`create_bidirectional_mask`, the library's public helper).

Shapes: B rows, T tokens, H hidden size.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from ..core.errors import PipelineError


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's layer stack; a clear error for an architecture this split does not know."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(encoder, "embeddings"):
        raise PipelineError(
            f"model.backbone.freeze_layers needs a BERT-family encoder (embeddings + encoder.layer); "
            f"{type(encoder).__name__} is not one"
        )
    return layers


def frozen_modules(encoder: nn.Module, k: int) -> list[nn.Module]:
    """The embeddings and the bottom `k` layers: what `freeze_layers: k` fixes (none, on any encoder, for 0)."""
    if k == 0:
        return []
    layers = encoder_layers(encoder)
    if not 0 <= k <= len(layers):
        raise PipelineError(f"model.backbone.freeze_layers is {k}, but the encoder has {len(layers)} layers")
    return [encoder.embeddings, *layers[:k]]


def freeze(encoder: nn.Module, k: int) -> list[nn.Module]:
    """Stop gradients through the embeddings and the bottom `k` layers; returns those modules."""
    modules = frozen_modules(encoder, k)
    for module in modules:
        module.requires_grad_(False)
    return modules


def run_layers(encoder: nn.Module, layers, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """`layers` of `encoder` over `states` (B, T, H) with the (B, T) padding mask -> (B, T, H)."""
    mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=states, attention_mask=attention_mask)
    for layer in layers:
        states = layer(states, mask)
    return states


@torch.no_grad()
def lower_states(encoder: nn.Module, k: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The frozen part's output: embeddings and the bottom `k` layers over (B, T) tokens -> (B, T, H)."""
    embeds = encoder.embeddings(input_ids=input_ids)
    return run_layers(encoder, encoder_layers(encoder)[:k], embeds, attention_mask)


def upper_states(encoder: nn.Module, k: int, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The trained part: the layers above the bottom `k` over (B, T, H) states -> (B, T, H)."""
    return run_layers(encoder, encoder_layers(encoder)[k:], states, attention_mask)


def frozen_digest(encoder: nn.Module, k: int) -> str:
    """A hash of the frozen part's weights (names, shapes, dtypes, values): a changed backbone file, TAPT
    checkpoint, trimmed vocabulary or K gives another digest."""
    digest = hashlib.sha256(f"freeze_layers={k}".encode())
    for i, module in enumerate(frozen_modules(encoder, k)):
        for name, tensor in sorted(module.state_dict().items()):
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{i}.{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
