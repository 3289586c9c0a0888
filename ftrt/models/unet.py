"""The Catintell-style dense U-Net used for restoration (Res) and cataract synthesis (Syn)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.blocks import DenseConvBlock, DenseUnit


class DenseUNet(nn.Module):
    """RGB [0, 1] NCHW in, same size out; any H, W >= 32.

    The input is reflect-padded to a multiple of 2**stages inside ``forward`` and
    cropped back, so an exported graph accepts any size as well.
    """

    def __init__(self, width: int = 32, stages: int = 4, blocks_per_unit: int = 3, group_width: int = 8,
                 affine_head: bool = False) -> None:
        super().__init__()
        self.width = width
        self.stages = stages
        self.pad_multiple = 2**stages
        self.in_proj = nn.Sequential(nn.Conv2d(3, width, 5, padding=2), nn.GELU())
        chans = [width * 2**i for i in range(stages + 1)]
        self.encoders = nn.ModuleList(DenseUnit(c, blocks_per_unit, group_width) for c in chans[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1) for c in chans[:-1])
        self.bottleneck = DenseUnit(chans[-1], blocks_per_unit, group_width)
        self.ups = nn.ModuleList(nn.Conv2d(2 * c, c, 3, padding=1) for c in chans[:-1])
        self.dec_blocks = nn.ModuleList(DenseConvBlock(2 * c, group_width) for c in chans[:-1])
        self.fuse = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in chans[:-1])
        # Optional illumination head (an ftrt addition, off in the paper's layout): per-pixel colour gain and
        # offset predicted at the bottleneck and upsampled bilinearly. Uneven light, colour casts and haze are
        # smooth fields; a coarse affine map models them directly instead of through the fine residual.
        self.affine = nn.Conv2d(chans[-1], 6, 3, padding=1) if affine_head else None
        if self.affine is not None:
            nn.init.zeros_(self.affine.weight)
            nn.init.zeros_(self.affine.bias)
        self.out_proj = nn.Conv2d(width, 3, 5, padding=2)
        # Zero head: the untrained network is the identity, which the identity loss wants anyway.
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        m = self.pad_multiple
        ph = (m - h % m) % m
        pw = (m - w % m) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect")
        feat = self.in_proj(xp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.bottleneck(feat)
        base = xp
        if self.affine is not None:
            coef = F.interpolate(self.affine(feat), scale_factor=float(m), mode="bilinear", align_corners=False)
            base = xp * (1.0 + coef[:, :3]) + coef[:, 3:]
        for i in reversed(range(self.stages)):
            feat = self.ups[i](F.interpolate(feat, scale_factor=2.0, mode="nearest"))
            feat = self.fuse[i](self.dec_blocks[i](torch.cat([feat, skips[i]], dim=1)))
        out = base + torch.tanh(self.out_proj(feat))
        return out[:, :, :h, :w]


class PatchDiscriminator(nn.Module):
    """A light PatchGAN critic: one real/fake logit per ~70 px patch.

    Spectral norm keeps the critic Lipschitz so the small (0.01-0.1) GAN weights
    of the papers give a stable signal without a gradient penalty.
    """

    def __init__(self, width: int = 32, layers: int = 4) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        mods: list[nn.Module] = [sn(nn.Conv2d(3, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, layers):
            stride = 2 if i < layers - 1 else 1
            mods += [sn(nn.Conv2d(c, 2 * c, 4, stride=stride, padding=1)), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(sn(nn.Conv2d(c, 1, 4, padding=1)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)
