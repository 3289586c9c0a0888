"""The light corrector: a per-pixel colour gain and offset estimated from the whole photograph at low
resolution, applied at full resolution. Nothing else.

Why a network that can only do this (issue 21): veil, exposure, uneven light, vignetting and diffuse
reflections are smooth fields over the fundus, and the image formation inverts each with a per-pixel
affine map (a veil ``I = t J + (1 - t) A`` by the gain ``1 / t`` and the offset ``-A (1 - t) / t``).
Inverting it raises local contrast by ``1 / t`` where the veil was, and a map that is smooth at the
scale of the low-resolution grid can neither invent a vessel nor smooth one away: every output pixel is
the same input pixel, scaled and shifted. Restorers that also had a full-resolution branch learnt to
smooth (the average correction over noise, JPEG and blur) or, pushed for contrast, to invent texture.

The estimate sees the whole photograph at ``side`` x ``side`` whatever the input size (so a 565 px and a
2048 px photograph are judged alike, and training at 256 px carries over to 1024 px at run time). It costs
a fixed 0.30 GMAC (width 16, side 128, map_side 32; convolutions counted by a forward hook) plus two
resizes and one multiply-add per pixel, whatever the size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.unet import apply_colour, fov_statistics


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GELU())


class LightCorrector(nn.Module):
    """RGB [0, 1] NCHW in, same size out; any H, W >= 32.

    ``side``: the low-resolution view of the whole photograph (a U-Net of ``levels`` halvings works on it,
    with a global term from FOV statistics at its bottom); ``width``: channels at full ``side``;
    ``map_side``: the grid of the gain/offset map (bilinear to the input size).
    """

    def __init__(self, width: int = 16, side: int = 128, levels: int = 3, map_side: int = 32) -> None:
        super().__init__()
        if side % map_side or map_side < side >> levels or map_side > side:
            raise ValueError(f"map_side {map_side} must divide side {side} and lie between side/2**levels and side")
        self.side, self.levels, self.map_side = side, levels, map_side
        widths = [width * min(2**i, 4) for i in range(levels + 1)]
        self.inc = _conv(4, widths[0])
        self.downs = nn.ModuleList(_conv(widths[i], widths[i + 1], stride=2) for i in range(levels))
        wb = widths[-1]
        # FOV colour mean and spread (6) and the FOV-mean bottom features: exposure and airlight are
        # properties of the whole photograph, not of a neighbourhood.
        self.glob = nn.Sequential(nn.Linear(wb + 6, wb), nn.GELU(), nn.Linear(wb, wb))
        # The decoder stops at map_side: the map's grid (32 px cells on a 1024 px photograph) is coarser
        # than any vessel, so modulating the gain cannot draw one. A 128 px map could, and a contrast loss
        # taught it to (measured: false vessels 7x the input's).
        top = (side // map_side).bit_length() - 1  # the map is at side / 2**top
        self.ups = nn.ModuleList(_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(top, levels)))
        # Gain - 1 (3) and offset (3); zero: the untrained corrector is the identity.
        self.head = nn.Conv2d(widths[top], 6, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coef = F.interpolate(self.coefficients(x), size=(x.shape[-2], x.shape[-1]), mode="bilinear",
                             align_corners=False)
        return apply_colour(x, coef)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """The whole photograph at side x side, with a FOV channel: bilinear to 4x the side, then a 4x4
        mean (an area resize that ONNX opset 17 can express for any input size)."""
        s = self.side
        # Where, not a bool Cast: the FP16 converter leaves a Cast's target type at FP32.
        fov = torch.where(x.amax(dim=1, keepdim=True) > 0.02, 1.0, 0.0)
        big = F.interpolate(torch.cat([x, fov], dim=1), size=(4 * s, 4 * s), mode="bilinear", align_corners=False)
        return F.avg_pool2d(big, 4)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Gain - 1 and offset, N x 6 x map_side x map_side."""
        small = self.view(x)
        skips = [self.inc(small)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        h = skips[-1]
        stats = fov_statistics(small[:, :3], h, 2**self.levels).flatten(1)
        h = h + self.glob(stats)[:, :, None, None]
        for up, skip in zip(self.ups, reversed(skips[-1 - len(self.ups):-1])):
            h = up(torch.cat([F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False), skip], dim=1))
        return self.head(h)
