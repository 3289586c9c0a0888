"""A vessel segmenter on its own: MAGE-Net's retinal-structure U-Net (``RSP``) trained on clean photographs.

ftrt uses it as a judge, not a product: the restorer's vessel-map term (``losses.vessel_map_loss``) asks
that this network find the same vessels in the restoration as in the clean photograph. It never sees a
degraded photograph while it learns, so vessels a degradation hides are vessels it misses, and texture a
restorer draws is texture it may take for vessels: both cost the restorer.
"""

from __future__ import annotations

import torch
from torch import nn

from ftrt.models.blocks import pad_to_multiple
from ftrt.models.mage import RSP


class VesselNet(nn.Module):
    pad_multiple = 8  # three 2x poolings

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.rsp = RSP(width)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Vessel logits at 1, 1/2, 1/4 and 1/8 of the input, any H, W >= 8."""
        h, w = x.shape[-2:]
        # Each crop's own per-channel mean removed: the segmenter answers "where are the vessels", blind to
        # the photograph's exposure, so the restorer's term built on it teaches no colour.
        x = x - x.mean(dim=(2, 3), keepdim=True)
        _, logits = self.rsp(pad_to_multiple(x, self.pad_multiple))
        return [lg[..., : -(-h // 2**i), : -(-w // 2**i)] for i, lg in enumerate(logits)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The vessel probability at full resolution, N x 1 x H x W."""
        return torch.sigmoid(self.forward_all(x)[0])
