"""Latent-diffusion restoration: RetinaRegen (Tang et al.) and latent diffusion adaptors (Yang et al.).

Four networks, exported as four ONNX parts and run by a numpy sampler (ftrt.runtime.sampler):

- ``FundusVAE``: strided convolutions to a latent mean and log-variance at 1/4 resolution (RetinaRegen uses
  three strided layers, 1/8; at 1/4 a vessel two pixels wide still spans half a latent cell, which is what
  lets the decoder keep it), trained with BCE reconstruction + a small KL term.
- ``ConditionFeatures``: readability features of the photograph (RetinaRegen conditions on features of a
  readability network; ftrt's own classifier backbone stands in for its ResNet34 + self-attention).
- ``LatentDenoiser``: a small U-Net on the latent with a timestep embedding, conditioned on the degraded
  photograph's latent (concatenated) and on the readability features (1x1-compressed, bilinearly resized to
  the latent and added: RetinaRegen's best fusion). Predicts v (Salimans & Ho), which keeps few-step
  sampling stable at high noise.
- ``Adaptor``: Yang et al.'s enhancement adaptors, zero-initialised bottlenecks after the VAE's and the
  denoiser's blocks: the identity until the adaptation phase trains them, and the only trainable parts then.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.blocks import pad_to_multiple
from ftrt.models.readability import ReadabilityNet

FEATURE_SIDE = 224  # the readability backbone's training input


def _zero(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class Adaptor(nn.Module):
    """x + up(gelu(down(x))), ``up`` zero: exactly the identity until trained."""

    def __init__(self, channels: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, rank, 1)
        self.up = _zero(nn.Conv2d(rank, channels, 1))
        # Off: the reconstruction-phase network exactly (adaptation's clean target latent is encoded so).
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.down(x))) if self.enabled else x


class Block(nn.Module):
    """Residual conv block, optionally with a timestep embedding added between its convolutions and an
    adaptor after it. No normalisation layer: nothing to fold or keep in FP32 at export."""

    def __init__(self, cin: int, cout: int, emb: int = 0, adaptor_rank: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout) if emb else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.adaptor = Adaptor(cout, adaptor_rank) if adaptor_rank else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.gelu(x))
        if self.emb is not None and emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        out = self.skip(x) + self.conv2(F.gelu(h))
        return self.adaptor(out) if self.adaptor is not None else out


class FundusVAE(nn.Module):
    """RGB [0, 1] -> latent (``latent`` channels at 1/2**downs) -> RGB [0, 1]; any size (reflect-padded)."""

    def __init__(self, width: int = 32, latent: int = 4, downs: int = 2, adaptor_rank: int = 8) -> None:
        super().__init__()
        chans = [width * min(2**i, 2) for i in range(downs + 1)]
        self.latent = latent
        self.pad_multiple = 2**downs
        self.enc_in = nn.Conv2d(3, chans[0], 3, padding=1)
        self.enc_blocks = nn.ModuleList(Block(chans[i], chans[i], adaptor_rank=adaptor_rank) for i in range(downs))
        self.enc_downs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1)
                                       for i in range(downs))
        self.enc_mid = Block(chans[-1], chans[-1], adaptor_rank=adaptor_rank)
        self.enc_out = nn.Conv2d(chans[-1], 2 * latent, 3, padding=1)
        self.dec_in = nn.Conv2d(latent, chans[-1], 3, padding=1)
        self.dec_mid = Block(chans[-1], chans[-1], adaptor_rank=adaptor_rank)
        self.dec_ups = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1) for i in range(downs))
        self.dec_blocks = nn.ModuleList(Block(chans[i], chans[i], adaptor_rank=adaptor_rank) for i in range(downs))
        self.dec_out = nn.Conv2d(chans[0], 3, 3, padding=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of the latent of ``x`` (padded to a multiple of ``pad_multiple``)."""
        h = self.enc_in(pad_to_multiple(x, self.pad_multiple) * 2.0 - 1.0)
        for block, down in zip(self.enc_blocks, self.enc_downs):
            h = down(block(h))
        mean, logvar = self.enc_out(F.gelu(self.enc_mid(h))).chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dec_mid(self.dec_in(z))
        for i in reversed(range(len(self.dec_ups))):
            h = self.dec_blocks[i](self.dec_ups[i](F.interpolate(h, scale_factor=2.0, mode="nearest")))
        return self.dec_out(F.gelu(h))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (the latent mean), cropped to the input's size."""
        return self.decode(self.encode(x)[0])[:, :, : x.shape[-2], : x.shape[-1]]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of float timesteps (N,) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class LatentDenoiser(nn.Module):
    """v-prediction U-Net on the latent: (z_t, t, condition latent, readability features) -> v."""

    def __init__(self, latent: int = 4, width: int = 64, feature_channels: int = 384, adaptor_rank: int = 8) -> None:
        super().__init__()
        w = width
        self.width = w
        self.pad_multiple = 4
        emb = 4 * w
        self.time = nn.Sequential(nn.Linear(w, emb), nn.GELU(), nn.Linear(emb, emb))
        self.inp = nn.Conv2d(2 * latent, w, 3, padding=1)
        self.feat = nn.Conv2d(feature_channels, w, 1)
        self.d1 = Block(w, w, emb, adaptor_rank)
        self.down1 = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)
        self.d2 = Block(2 * w, 2 * w, emb, adaptor_rank)
        self.down2 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)
        self.mid = Block(2 * w, 2 * w, emb, adaptor_rank)
        self.up2 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.u2 = Block(4 * w, 2 * w, emb, adaptor_rank)
        self.up1 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.u1 = Block(2 * w, w, emb, adaptor_rank)
        self.out = _zero(nn.Conv2d(w, latent, 3, padding=1))

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        h_in, w_in = z.shape[-2], z.shape[-1]
        m = self.pad_multiple
        zc = pad_to_multiple(torch.cat([z, cond], dim=1), m)
        emb = self.time(timestep_embedding(t, self.width))
        h = self.inp(zc)
        # RetinaRegen's fusion: compressed features, bilinearly resized to the latent, added.
        h = h + F.interpolate(self.feat(feats), size=(h.shape[-2], h.shape[-1]), mode="bilinear", align_corners=False)
        s1 = self.d1(h, emb)
        s2 = self.d2(self.down1(s1), emb)
        h = self.mid(self.down2(s2), emb)
        h = self.u2(torch.cat([self.up2(F.interpolate(h, scale_factor=2.0, mode="nearest")), s2], dim=1), emb)
        h = self.u1(torch.cat([self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest")), s1], dim=1), emb)
        return self.out(F.gelu(h))[:, :, :h_in, :w_in]


class ConditionFeatures(nn.Module):
    """Readability features of a photograph: resized to the backbone's input inside the graph, so training
    and every runtime resize the same way; the backbone's last feature map (384 x 7 x 7)."""

    def __init__(self, backbone: str = "edge") -> None:
        super().__init__()
        self.net = ReadabilityNet(backbone=backbone)

    @property
    def channels(self) -> int:
        return int(self.net.backbone.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, size=(FEATURE_SIDE, FEATURE_SIDE), mode="bilinear", align_corners=False)
        return self.net.features(small)[-1]


class LatentDiffusionRestorer(nn.Module):
    """The four parts in one module (one weights file, one builder); sampling is ftrt.runtime.sampler's.

    ``latent_scale`` (a buffer, set from the data when the denoiser starts training) makes the latents
    unit-variance for the noise schedule, as Stable Diffusion's 0.18215.
    """

    def __init__(self, vae: dict[str, Any] | None = None, denoiser: dict[str, Any] | None = None,
                 backbone: str = "edge") -> None:
        super().__init__()
        self.vae = FundusVAE(**(vae or {}))
        self.features = ConditionFeatures(backbone)
        self.denoiser = LatentDenoiser(latent=self.vae.latent, feature_channels=self.features.channels,
                                       **(denoiser or {}))
        self.register_buffer("latent_scale", torch.tensor(1.0))
        self.pad_multiple = self.vae.pad_multiple * self.denoiser.pad_multiple

    def train(self, mode: bool = True) -> "LatentDiffusionRestorer":
        super().train(mode)
        # The readability network is frozen: its batch norms keep the statistics it was trained with (in train
        # mode they would use each batch's and drift, and training would see other features than export).
        self.features.eval()
        return self

    def adaptors(self) -> list[Adaptor]:
        return [m for m in self.modules() if isinstance(m, Adaptor)]

    def set_adaptation(self, on: bool) -> None:
        """Adaptation phase: only the adaptors train (Yang et al.); the rest is frozen."""
        for p in self.parameters():
            p.requires_grad_(not on)
        for a in self.adaptors():
            for p in a.parameters():
                p.requires_grad_(on)
        for p in self.features.parameters():
            p.requires_grad_(False)  # the readability network is never trained here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A deterministic few-step restoration (seed 0, the sampler's defaults), for validation and the torch
        backend; the exported pipeline runs the same sampler on its parts."""
        from ftrt.runtime.sampler import SamplerSettings, restore_latent

        out: torch.Tensor = restore_latent(TorchParts(self), x, SamplerSettings())
        return out


class TorchParts:
    """The sampler's view of the PyTorch model: numpy in, numpy out, one call per part (as the ONNX parts)."""

    def __init__(self, model: LatentDiffusionRestorer) -> None:
        self.model = model
        self.latent_scale = float(model.latent_scale)
        self.pad_multiple = model.pad_multiple

    @torch.no_grad()
    def features(self, x: Any) -> Any:
        return self.model.features(torch.as_tensor(x)).numpy()

    @torch.no_grad()
    def encode(self, x: Any) -> Any:
        return self.model.vae.encode(torch.as_tensor(x))[0].numpy()

    @torch.no_grad()
    def denoise(self, z: Any, t: Any, cond: Any, feats: Any) -> Any:
        return self.model.denoiser(*(torch.as_tensor(a) for a in (z, t, cond, feats))).numpy()

    @torch.no_grad()
    def decode(self, z: Any) -> Any:
        return self.model.vae.decode(torch.as_tensor(z)).numpy()
