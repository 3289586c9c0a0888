"""The Catintell-style dense U-Net used for restoration (Res) and cataract synthesis (Syn)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.blocks import DenseConvBlock, DenseUnit, pad_to_multiple


class DenseUNet(nn.Module):
    """RGB [0, 1] NCHW in, same size out; any H, W >= 32.

    The input is reflect-padded to a multiple of 2**stages inside ``forward`` and
    cropped back, so an exported graph accepts any size as well.
    """

    def __init__(self, width: int = 32, stages: int = 4, blocks_per_unit: int = 3, group_width: int = 8,
                 affine_head: bool = False, global_head: bool = False, bottleneck_blocks: int = 0) -> None:
        super().__init__()
        self.width = width
        self.stages = stages
        self.pad_multiple = 2**stages
        self.in_proj = nn.Sequential(nn.Conv2d(3, width, 5, padding=2), nn.GELU())
        chans = [width * 2**i for i in range(stages + 1)]
        self.encoders = nn.ModuleList(DenseUnit(c, blocks_per_unit, group_width) for c in chans[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1) for c in chans[:-1])
        # A deeper bottleneck (bottleneck_blocks > blocks_per_unit) adds capacity and reach where it is cheap: at
        # 1/2**stages resolution each block costs about a sixtieth of res-s's compute and sees 2**stages times as
        # far as a full-resolution one.
        self.bottleneck = DenseUnit(chans[-1], bottleneck_blocks or blocks_per_unit, group_width)
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
        # Optional global colour term for that head: brightness, contrast and colour casts are one number per
        # channel for the whole photograph, which the convolutional head can only estimate from each pixel's
        # neighbourhood. Statistics pooled over the FOV feed a small MLP that shifts the affine map.
        if global_head and not affine_head:
            raise ValueError("global_head refines the affine head: set affine_head=True as well")
        self.global_head: nn.Sequential | None = None
        if global_head:
            last = nn.Conv2d(64, 6, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.global_head = nn.Sequential(nn.Conv2d(chans[-1] + 6, 64, 1), nn.GELU(), last)
        self.out_proj = nn.Conv2d(width, 3, 5, padding=2)
        # Zero head: the untrained network is the identity, which the identity loss wants anyway.
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        return self.padded(self.pad(x))[:, :, :h, :w]

    def padded(self, xp: torch.Tensor) -> torch.Tensor:
        """The restored photograph of an input already padded to ``pad_multiple``, padding included."""
        feat, skips = self.encode(xp)
        base = xp
        if self.affine is not None:
            coef = self.local_colour(feat)
            if self.global_head is not None:
                coef = coef + self.global_head(fov_statistics(xp, feat, self.pad_multiple))
            base = apply_colour(xp, coef)
        return base + self.decode(feat, skips)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.pad_multiple)

    def encode(self, xp: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Bottleneck features and the skips of a padded input."""
        feat = self.in_proj(xp)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        return self.bottleneck(feat), skips

    def local_colour(self, feat: torch.Tensor) -> torch.Tensor:
        """The affine head's per-pixel gain (3) and offset (3) at input resolution."""
        assert self.affine is not None
        return F.interpolate(self.affine(feat), scale_factor=float(self.pad_multiple), mode="bilinear",
                             align_corners=False)

    def decode(self, feat: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """The fine residual added to the (colour-corrected) input."""
        for i in reversed(range(self.stages)):
            feat = self.ups[i](F.interpolate(feat, scale_factor=2.0, mode="nearest"))
            feat = self.fuse[i](self.dec_blocks[i](torch.cat([feat, skips[i]], dim=1)))
        return torch.tanh(self.out_proj(feat))


def apply_colour(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    return x * (1.0 + coef[:, :3]) + coef[:, 3:]


def fov_statistics(x: torch.Tensor, feat: torch.Tensor, factor: int) -> torch.Tensor:
    """Per-image mean and spread of the input colour and the mean features, over the FOV only.

    The black surround is excluded (it would make the statistics depend on how much border a crop
    or camera has). Means, not sums: a sum over a large photograph overflows FP16.
    """
    # Where, not a bool Cast: the FP16 converter leaves a Cast's target type at FP32.
    w = torch.where(x.amax(dim=1, keepdim=True) > 0.02, 1.0, 0.0)
    share = w.mean(dim=(2, 3), keepdim=True).clamp_min(1e-4)
    mu = (x * w).mean(dim=(2, 3), keepdim=True) / share
    var = ((x - mu) ** 2 * w).mean(dim=(2, 3), keepdim=True) / share
    wf = F.avg_pool2d(w, factor)
    fmu = (feat * wf).mean(dim=(2, 3), keepdim=True) / wf.mean(dim=(2, 3), keepdim=True).clamp_min(1e-4)
    return torch.cat([mu, torch.sqrt(var + 1e-6), fmu], dim=1)


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
