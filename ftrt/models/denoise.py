"""A small sensor-noise remover in front of the restorer, gated by the photograph's own noise, as one graph.

Why a separate network: on quality.py's ``real`` pairs of DRIVE's training photographs the vessel gap the
restorer leaves sits in veils with sensor noise on them. Taking the noise away before restoring (the same
degradation drawn without its noise family) lifts the restorer's Dice there from 0.249 / 0.388 / 0.567 to
0.601 / 0.546 / 0.696 (photographs 26 / 27 / 36), and BM3D at the true noise level gets about half of that (0.413 /
0.477 / 0.627), where non-local means wiped faint vessels. The restorer learns no such denoising from noise in
a sixth of its crops (stages 13 and 16), so a network whose only job it is does it.

The denoiser works on the 2x2 pixel-unshuffled photograph (FFDNet's layout: a quarter of the positions, the
full resolution kept in the channels), predicts a residual (zero-initialised: the identity until trained), and
its output is mixed in by the gate: 0 where the noise-to-contrast ratio (``noise_contrast_ratio``) shows no
sensor noise, 1 where noise is most of the local contrast, so a noise-free photograph reaches the restorer as
it was.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.blocks import pad_to_multiple
from ftrt.models.unet import DenseUNet

# Immerkaer's noise operator (the difference of two Laplacians): it cancels any signal that is locally planar.
_IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_REC601 = (0.299, 0.587, 0.114)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Rec.601 Y of an N x 3 x H x W batch, N x 1 x H x W."""
    w = torch.tensor(_REC601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def blur(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel of a N x C x H x W tensor, edges replicated; sigma 0 leaves it as
    it is. A map of one channel (the gate's) is one plain convolution per direction, as exported since dn-s."""
    if sigma <= 0:
        return y
    r = int(3 * sigma)
    g = torch.exp(-torch.arange(-r, r + 1, dtype=y.dtype, device=y.device) ** 2 / (2 * sigma * sigma))
    g = g / g.sum()
    c = int(y.shape[1])
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def fov_mean(a: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
    """Per image: the mean of a N x 1 x H x W map inside the FOV (0 where the FOV is empty).

    A ratio of two means, not of two sums: an FP16 conversion passes the tensors between the nodes it keeps in FP32
    through FP16, and a pixel count over 65504 (any photograph over 256 px) would become infinity there."""
    return (a * fov).mean(dim=(1, 2, 3)) / fov.mean(dim=(1, 2, 3)).clamp_min(1e-12)


def noise_contrast_ratio(x: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
    """Per image: Immerkaer's noise estimate of the luminance over its local contrast (mean |Y - blur(Y)|,
    sigma 2), inside ``fov``. Measured on DRIVE's training photographs and their ``real`` degradations (three
    draws each): 0.4-0.6 on clean photographs, 0.1-0.8 on degraded ones without sensor noise (8-bit rounded
    veils included), 0.9-1.3 with it, where the noise is most of the local contrast the input holds."""
    y = luminance(x)
    k = torch.tensor(_IMMERKAER, dtype=y.dtype, device=y.device).view(1, 1, 3, 3)
    noise = math.sqrt(math.pi / 2) / 6 * fov_mean(F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k).abs(), fov)
    return noise / fov_mean((y - blur(y, 2.0)).abs(), fov).clamp_min(1e-6)


def check_gate(gate: list[float], name: str = "gate") -> None:
    """A gate's [lo, hi] noise-to-contrast ratios: two finite numbers, 0 <= lo < hi (configs and model metadata
    are untrusted input)."""
    if len(gate) != 2 or not all(math.isfinite(g) for g in gate) or not 0 <= gate[0] < gate[1]:
        raise ValueError(f"{name} must be [lo, hi] with 0 <= lo < hi, got {gate}")


def ramp(r: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """0 up to ``lo``, 1 from ``hi``, linear between."""
    return ((r - lo) / (hi - lo)).clamp(0.0, 1.0)


def lit_fov(x: torch.Tensor, erode: int = 7) -> torch.Tensor:
    """Where the photograph is lit, ``erode`` px in from the edge: the pipeline hands the network the FOV with
    black around it, and the rim (where a blur meets the black) is not noise."""
    lit = (x.amax(dim=1, keepdim=True) > 0.02).to(x.dtype)
    return -F.max_pool2d(-lit, 2 * erode + 1, stride=1, padding=erode)


def _he(convs: nn.Module) -> None:
    # He initialisation: PyTorch's default shrinks the signal about 3x a layer, so eight layers deep the
    # features are their biases, the same everywhere, and the network cannot learn (measured: loss flat).
    for m in convs.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


class Denoiser(nn.Module):
    """RGB [0, 1] NCHW in, same size out; a residual CNN on the 2x2-unshuffled photograph.

    ``context`` > 0 adds a branch of that width at a quarter of the resolution (``dn-m``): four convolutions on the
    body's features pooled 2x2, shuffled back up and added to them. It widens what each output pixel sees from
    about 34 px to about 70, where the heaviest noise on a faint veiled vessel needs more photograph to average
    over. Its last convolution starts at zero, so a ``dn-s`` loads into it (``--init``) and computes what it did.
    """

    gain = 20.0

    def __init__(self, width: int = 32, layers: int = 8, context: int = 0) -> None:
        super().__init__()
        if layers < 2 or width < 1 or context < 0:
            raise ValueError(f"a denoiser needs at least 2 layers, width >= 1 and context >= 0, got {layers}, "
                             f"{width}, {context}")
        convs: list[nn.Module] = [nn.Conv2d(24, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            convs += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*convs)
        _he(self.body)
        self.pad_multiple = 4 if context else 2
        self.context: nn.Sequential | None = None
        if context:
            self.context = nn.Sequential(
                nn.AvgPool2d(2), nn.Conv2d(width, context, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(context, context, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(context, context, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(context, 4 * width, 3, padding=1), nn.PixelShuffle(2))
            _he(self.context)
            nn.init.zeros_(self.context[-2].weight)
            nn.init.zeros_(self.context[-2].bias)
        self.tail = nn.Conv2d(width, 12, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        xp = pad_to_multiple(x, self.pad_multiple)
        # The network sees the fine detail (the photograph minus its 5x5 mean) scaled up to order 1, where the
        # noise is, beside the local mean that sets its shot-noise level. Given the raw photograph (values near
        # 0.5, noise near 0.01) it did not learn at all in 500 steps; this way it starts at once.
        low = F.avg_pool2d(xp, 5, stride=1, padding=2, count_include_pad=False)
        feat = self.body(F.pixel_unshuffle(torch.cat([(xp - low) * self.gain, low], dim=1), 2))
        if self.context is not None:
            feat = feat + self.context(feat)
        return x + F.pixel_shuffle(self.tail(feat), 2)[:, :, :h, :w] / self.gain


class Refiner(Denoiser):
    """The detail refiner behind the restorer (``rf-m``): dn-m's network, taught on the restorer's own outputs
    (``ftrt.training.refine``). Its own class so that no chain or denoiser run takes it for a denoiser
    (``registry.DENOISER_PRESETS``); a denoiser's weights may start it (``init:``)."""


class NoiseGate(nn.Module):
    """How far the chain lets the denoiser in: ``ramp(noise_contrast_ratio, lo, hi)``, N x 1 x 1 x 1.

    A module of its own so that its nodes carry the ``/noise_gate/`` scope in an exported graph: ftrt's FP16 and INT8
    conversions keep that scope in FP32 (``ftrt.onnx.fp16.FP32_SCOPES``): its statistics average over a million
    pixels, and quantising its filters would move the threshold."""

    def __init__(self, gate: list[float]) -> None:
        super().__init__()
        check_gate(gate)
        self.lo, self.hi = float(gate[0]), float(gate[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ramp(noise_contrast_ratio(x, lit_fov(x)), self.lo, self.hi).view(-1, 1, 1, 1)


class DenoiseThenRestore(nn.Module):
    """The gated denoiser, then res-s (``DenseUNet``), then optionally a detail refiner (``dn-res-rf-s``): RGB
    [0, 1] NCHW in, same size out.

    ``gate``: [lo, hi] of the noise-to-contrast ratio over which the denoised photograph replaces the input.
    ``refiner``: a ``Refiner``'s kwargs, the network taught on the restorer's own outputs
    (``ftrt.training.refine``); it runs on every photograph."""

    def __init__(self, denoiser: dict[str, Any], restorer: dict[str, Any], gate: list[float],
                 refiner: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.noise_gate = NoiseGate(gate)
        self.denoiser = Denoiser(**denoiser)
        self.restorer = DenseUNet(**restorer)
        self.refiner = Refiner(**refiner) if refiner is not None else None
        self.pad_multiple = math.lcm(self.restorer.pad_multiple, self.denoiser.pad_multiple,
                                     self.refiner.pad_multiple if self.refiner is not None else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        # One pad, of the graph's input, for both networks: ftrt's CPU layout pass (ftrt.onnx.passes.row_pairs)
        # follows the height's multiple from a padded graph input, and the restorer padding the denoiser's output
        # itself hid it (36 of its 45 grouped convolutions fell back to widened groups: 0.3-0.7 s a 1024 px
        # photograph). Below the gate the restorer sees exactly what res-s pads for itself.
        xp = pad_to_multiple(x, self.pad_multiple)
        gate = self.noise_gate(x)  # the photograph's statistics, not its reflected pad's
        restorer_input = xp + gate * (self.denoiser(xp) - xp)
        out = self.restorer.padded(restorer_input)
        if self.refiner is not None:
            out = self.refiner(out)  # on the padded size, a multiple of its own: it pads nothing
        return out[:, :, :h, :w]
