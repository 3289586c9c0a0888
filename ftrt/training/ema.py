"""Exponential moving average of model weights (used for validation, export and as mean teacher)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int | None = None) -> None:
    """``ema = d * ema + (1 - d) * model``; early on d is lowered so the average is not dominated by init."""
    if step is not None:
        decay = min(decay, (1 + step) / (10 + step))
    for e, m in zip(ema.parameters(), model.parameters()):
        e.lerp_(m.detach(), 1.0 - decay)
    for e, m in zip(ema.buffers(), model.buffers()):
        e.copy_(m)
