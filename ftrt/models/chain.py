"""The light corrector followed by a vessel-scale restorer, as one network (one ONNX graph, one card).

Why two networks in a row rather than one: the light corrector fixes what is smooth over the whole
photograph (exposure, veil, uneven light) and by construction can neither invent nor erase a vessel; the
restorer after it then sees photographs whose colour and light are already right, so its capacity goes
to what only a full-resolution network can undo (scatter blur, defocus, noise). Each can be trained and
judged on its own (``ftrt.models.light``, ``ftrt.models.unet``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ftrt.models.light import LightCorrector
from ftrt.models.unet import DenseUNet


class LightThenDetail(nn.Module):
    """RGB [0, 1] NCHW in, same size out; any H, W >= 32. ``light`` and ``detail``: the two parts' kwargs."""

    def __init__(self, light: dict[str, Any], detail: dict[str, Any]) -> None:
        super().__init__()
        self.light = LightCorrector(**light)
        self.detail = DenseUNet(**detail)
        self.pad_multiple = self.detail.pad_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detail(self.light(x))
