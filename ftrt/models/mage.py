"""MAGE-Net (Guo et al., T-MAGE-Net): two-stage enhancement guided by a retinal-structure segmenter.

Own implementation from the paper's description, sized for CPUs:

    input x ──► Stage 1: U-Net of channel-attention blocks (CAB), bilinear upsampling
                └► SAM (supervised attention): stage-1 image y1 = x + conv(f), attention from y1 gates f
           y1 ─► RSP: a small U-Net vessel segmenter, logits at four scales (supervised by vessel masks);
                 its full-resolution decoder features describe where the structures are
    x ──► Stage 2 at the original resolution (no downsampling), the photograph split into two half-height
          patches: three fundus attention blocks (FAB), each adding one level of resized stage-1 features
          and concatenating the RSP features, then CABs ──► y2 = x + conv(f)

``forward`` returns y2 only (what export and restore use); ``forward_all`` returns y1, y2 and the
segmentation logits for the losses. Both output convolutions start at zero, so the untrained network is
the identity (identity pairs ask for exactly that, and fine-tuning starts from "do no harm").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.blocks import pad_to_multiple


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: one gain per channel from the pooled features."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3), keepdim=True))


class CAB(nn.Module):
    """Channel attention block: conv-ReLU-conv, channel attention, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1), ChannelAttention(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _cabs(channels: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(CAB(channels) for _ in range(n)))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class SAM(nn.Module):
    """Supervised attention module (MPRNet): the stage's image is supervised, and gates the features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.feat = nn.Conv2d(channels, channels, 3, padding=1)
        self.to_img = nn.Conv2d(channels, 3, 3, padding=1)
        self.from_img = nn.Conv2d(3, channels, 3, padding=1)
        nn.init.zeros_(self.to_img.weight)
        nn.init.zeros_(self.to_img.bias)

    def forward(self, f: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = x + self.to_img(f)
        attn = torch.sigmoid(self.from_img(img))
        return f + self.feat(f) * attn, img


class Stage1(nn.Module):
    """Encoder-decoder of CABs over three scales; returns the decoder features, finest first."""

    def __init__(self, width: int, step: int, blocks: int) -> None:
        super().__init__()
        chans = [width, width + step, width + 2 * step]
        self.shallow = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), CAB(width))
        self.enc = nn.ModuleList(_cabs(c, blocks) for c in chans)
        self.down = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 1) for i in range(2))
        self.dec = nn.ModuleList(_cabs(c, blocks) for c in chans)
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 1) for i in range(2))
        self.skip = nn.ModuleList(CAB(c) for c in chans[:2])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.shallow(x)
        skips = []
        for i, enc in enumerate(self.enc):
            f = enc(f)
            skips.append(f)
            if i < 2:
                # Bilinear down then a 1x1 conv (MPRNet): no strided conv aliasing the vessel pattern.
                f = self.down[i](F.interpolate(f, scale_factor=0.5, mode="bilinear", align_corners=False))
        outs = [self.dec[2](f)]
        for i in (1, 0):
            f = self.up[i](_up(outs[0], skips[i])) + self.skip[i](skips[i])
            outs.insert(0, self.dec[i](f))
        return outs


class RSP(nn.Module):
    """Retinal structure preservation: a small U-Net segmenter with vessel logits at four scales."""

    def __init__(self, width: int) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(4)]

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))

        self.enc = nn.ModuleList(block(3 if i == 0 else chans[i - 1], c) for i, c in enumerate(chans))
        self.dec = nn.ModuleList(block(chans[i + 1] + chans[i], chans[i]) for i in range(3))
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in chans)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(full-resolution decoder features, logits at 1, 1/2, 1/4, 1/8 of the input)."""
        skips = []
        f = x
        for i, enc in enumerate(self.enc):
            f = enc(f if i == 0 else F.max_pool2d(f, 2))
            skips.append(f)
        logits = [self.heads[3](f)]
        for i in (2, 1, 0):
            f = self.dec[i](torch.cat([_up(f, skips[i]), skips[i]], dim=1))
            logits.insert(0, self.heads[i](f))
        return f, logits


class FAB(nn.Module):
    """Fundus attention block: add resized stage-1 features, concatenate structure features, CABs."""

    def __init__(self, width: int, stage1_channels: int, structure_channels: int, blocks: int) -> None:
        super().__init__()
        self.from_stage1 = nn.Conv2d(stage1_channels, width, 1)
        self.fuse = nn.Conv2d(width + structure_channels, width, 1)
        self.body = _cabs(width, blocks)

    def forward(self, f: torch.Tensor, stage1: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        f = f + _up(self.from_stage1(stage1), f)
        f = self.fuse(torch.cat([f, structure], dim=1))
        return f + self.body(f)


class MageOutputs(NamedTuple):
    stage1: torch.Tensor
    stage2: torch.Tensor
    vessel_logits: list[torch.Tensor]  # finest first: 1, 1/2, 1/4, 1/8 of the padded input


class MAGENet(nn.Module):
    """RGB [0, 1] NCHW in, same size out; any H, W (reflect-padded to a multiple of 16 inside)."""

    def __init__(self, width: int = 16, step: int = 16, stage1_blocks: int = 2, stage2_width: int = 16,
                 stage2_blocks: int = 2, rsp_width: int = 8) -> None:
        super().__init__()
        # Stage 1 and RSP downsample three times; stage 2 halves the height once more: 2**3 * 2.
        self.pad_multiple = 16
        self.stage1 = Stage1(width, step, stage1_blocks)
        self.sam = SAM(width)
        self.rsp = RSP(rsp_width)
        self.shallow2 = nn.Sequential(nn.Conv2d(3, stage2_width, 3, padding=1), CAB(stage2_width))
        s1 = [width, width + step, width + 2 * step]
        self.fabs = nn.ModuleList(FAB(stage2_width, c, rsp_width, stage2_blocks) for c in s1)
        self.out2 = nn.Conv2d(stage2_width, 3, 3, padding=1)
        nn.init.zeros_(self.out2.weight)
        nn.init.zeros_(self.out2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x).stage2

    def forward_all(self, x: torch.Tensor) -> MageOutputs:
        h, w = x.shape[-2], x.shape[-1]
        xp = pad_to_multiple(x, self.pad_multiple)
        feats = self.stage1(xp)
        feats[0], y1 = self.sam(feats[0], xp)
        structure, logits = self.rsp(y1)
        # Stage 2 sees the photograph as two half-height patches (batched: one pass, no seam handling, as
        # in the paper); the features that guide it are split the same way.
        half = xp.shape[-2] // 2

        def split(t: torch.Tensor) -> torch.Tensor:
            cut = t.shape[-2] * half // xp.shape[-2]
            return torch.cat([t[:, :, :cut], t[:, :, cut:]], dim=0)

        f = self.shallow2(split(xp))
        for fab, s in zip(self.fabs, feats):
            f = fab(f, split(s), split(structure))
        top, bottom = torch.chunk(f, 2, dim=0)
        y2 = xp + self.out2(torch.cat([top, bottom], dim=2))
        crop = (slice(None), slice(None), slice(0, h), slice(0, w))
        return MageOutputs(y1[crop], y2[crop], logits)
