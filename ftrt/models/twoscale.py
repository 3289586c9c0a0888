"""A two-scale restorer: colour, haze and light estimated from the whole photograph at low resolution,
vessel-scale detail restored at full resolution.

Why this shape (issue 21): a cataract veil, exposure and uneven light are smooth fields over the whole
fundus, and the image formation inverts them with a per-pixel affine map, ``J = (I - A (1 - t)) / t``:
a gain ``1 / t`` and an offset ``-A (1 - t) / t``. Estimating that map needs the whole photograph (a 192 px
crop cannot know the exposure or the airlight), which is cheap at 1/8 resolution. Inverting it raises local
contrast by ``1 / t`` without inventing anything: every output pixel is a function of the same input
pixel. What the map cannot undo (scatter blur, defocus, noise) is local, so a small full-resolution
residual branch with a ~33 px receptive field sees every vessel at its real width.

The whole network costs ~20 k multiply-adds per pixel at full resolution (a 1024 px photograph in well
under a second on two CPU cores), so the default can run at vessel scale without tiles: the low-resolution
branch must see the whole FOV, and tiling would hide it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.blocks import pad_to_multiple
from ftrt.models.unet import apply_colour, fov_statistics


class ResBlock(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(x)))


def _zero(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    assert conv.bias is not None
    nn.init.zeros_(conv.bias)
    return conv


class TwoScaleRestorer(nn.Module):
    """RGB [0, 1] NCHW in, same size out; any H, W >= 32 (reflect-padded inside, cropped back).

    ``factor``: the low-resolution branch runs at 1/factor (then two more halvings and a global term);
    ``dilations``: one full-resolution residual block per entry, its convolutions dilated by it.
    """

    def __init__(self, lr_width: int = 32, hr_width: int = 16, factor: int = 8,
                 dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.factor = factor
        self.pad_multiple = factor * 4
        w = lr_width
        # Low resolution: colour, a FOV channel (so the border is known), two halvings, a global term.
        self.lr_in = nn.Sequential(nn.Conv2d(4, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, w, 3, padding=1),
                                   nn.GELU())
        self.lr_down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
                                     nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
                                     nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU())
        # FOV colour mean and spread (6) and mean features -> a per-photograph shift of the features.
        self.glob = nn.Sequential(nn.Conv2d(2 * w + 6, 2 * w, 1), nn.GELU(), nn.Conv2d(2 * w, 2 * w, 1))
        self.lr_mix = nn.Sequential(nn.Conv2d(3 * w, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, w, 3, padding=1),
                                    nn.GELU())
        # Per-pixel gain (3) and offset (3); zero: the untrained network is the identity.
        self.lr_head = _zero(nn.Conv2d(w, 6, 3, padding=1))
        # Full resolution: the input and its colour-corrected version in, a residual out.
        self.hr_in = nn.Conv2d(6, hr_width, 3, padding=1)
        self.hr_blocks = nn.Sequential(*(ResBlock(hr_width, d) for d in dilations))
        self.hr_out = _zero(nn.Conv2d(hr_width, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        xp = self.pad(x)
        base = apply_colour(xp, self.colour_map(xp))
        out = base + self.detail(xp, base)
        return out[:, :, :h, :w]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.pad_multiple)

    def colour_map(self, xp: torch.Tensor) -> torch.Tensor:
        """Gain and offset (N x 6 x H x W) from the whole photograph at low resolution."""
        f = self.factor
        # Where, not a bool Cast: the FP16 converter leaves a Cast's target type at FP32.
        fov = torch.where(xp.amax(dim=1, keepdim=True) > 0.02, 1.0, 0.0)
        small = torch.cat([F.avg_pool2d(xp, f), F.avg_pool2d(fov, f)], dim=1)
        f0 = self.lr_in(small)
        f1 = self.lr_down(f0)
        f1 = f1 + self.glob(fov_statistics(xp, f1, f * 4))
        up = F.interpolate(f1, scale_factor=4.0, mode="bilinear", align_corners=False)
        coef = self.lr_head(self.lr_mix(torch.cat([up, f0], dim=1)))
        return F.interpolate(coef, scale_factor=float(f), mode="bilinear", align_corners=False)

    def detail(self, xp: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The full-resolution residual: scatter blur, defocus and noise, which no smooth map undoes."""
        return self.hr_out(self.hr_blocks(F.gelu(self.hr_in(torch.cat([xp, base], dim=1)))))
