"""Losses of the Catintell papers: SmoothL1, perceptual (+ style), identity, GAN."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ftrt.models.denoise import blur as _blur
from ftrt.models.denoise import fov_mean as _fov_mean
from ftrt.models.denoise import luminance as _luminance
from ftrt.models.denoise import noise_contrast_ratio, ramp

# beta 1.0 (PyTorch's default) would make SmoothL1 a scaled MSE on [0, 1] images; 0.05 keeps it L1-like.
SMOOTH_L1_BETA = 0.05


def pixel_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(pred, target, beta=SMOOTH_L1_BETA)


def _fov_means(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-channel mean of ``x`` over the FOV that ``ref`` lights, that FOV as a 0/1 map)."""
    fov = (ref.amax(dim=1, keepdim=True) > 0.02).to(x.dtype)
    share = fov.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    return (x * fov).mean(dim=(2, 3), keepdim=True) / share, fov


def keep_mean_loss(pred: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """L1 between the output's and the input's per-channel FOV means (see RestorerConfig.w_keep_mean)."""
    return F.l1_loss(_fov_means(pred, source)[0], _fov_means(source, source)[0])


def mean_free_pixel_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SmoothL1 after removing each crop's per-channel mean over the FOV (pixels the target lights).

    A crop cannot tell how bright the whole photograph was meant to be (exposure, a veil's airlight and a
    camera's colour are global, and a 192 px crop sees a fraction of the fundus): a plain pixel loss is then
    dominated by a global error the network can only answer with the training set's mean colour, which is
    how a restorer learns to pull every photograph to one brightness. Without the means, the loss is about
    structure and local contrast; the output keeps the input's global colour.
    """
    mp, fov = _fov_means(pred, target)
    mt, _ = _fov_means(target, target)
    return F.smooth_l1_loss((pred - mp) * fov, (target - mt) * fov, beta=SMOOTH_L1_BETA)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """sqrt((p - t)^2 + eps^2), the MAGE-Net paper's pixel loss (eps 0.001): L1-like, smooth at zero."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])


def edge_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier on Laplacians (MPRNet / MAGE-Net's edge loss): rewards the vessel-scale detail a pixel
    loss averages away. Its gradient does not see the global mean, so it cannot teach a colour pull."""
    return charbonnier(_laplacian(pred), _laplacian(target), eps)


def _inner_fov(target: torch.Tensor) -> torch.Tensor:
    """The clean photograph's FOV, 7 px away from its rim: there a blur reaches the black surround, and a
    brighter rim would raise "local contrast" with no detail at all (a loophole a smooth gain map finds at
    once)."""
    fov = (target.amax(dim=1, keepdim=True) > 0).to(target.dtype)
    return -F.max_pool2d(-fov, 15, stride=1, padding=7)


def local_contrast(x: torch.Tensor, fov: torch.Tensor, sigma: float = 2.0, fine: float = 0.0) -> torch.Tensor:
    """Per image: mean |Y - Gaussian-blurred Y| inside the FOV (the local contrast benchmarks/quality.py reports);
    with ``fine`` > 0, of Y first blurred by that sigma (what is finer than it does not count)."""
    y = _blur(_luminance(x), fine)
    return _fov_mean((y - _blur(y, sigma)).abs(), fov)


def _local_contrasts(pred: torch.Tensor, target: torch.Tensor,
                     fine: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the output's and the clean photograph's local contrast, away from the FOV's rim."""
    fov = _inner_fov(target).to(pred.dtype)
    return local_contrast(pred, fov, fine=fine), local_contrast(target, fov, fine=fine).clamp_min(1e-4)


def contrast_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The share of the clean photograph's local contrast the output lacks (0 when it has as much or more):
    penalises smoothing directly, which pixel losses reward when the network cannot tell blur from noise."""
    lp, lt = _local_contrasts(pred, target)
    return (F.relu(lt - lp) / lt).mean()


def contrast_match_loss(pred: torch.Tensor, target: torch.Tensor, fine: float = 0.0,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """The relative difference between the output's local contrast and the clean photograph's, both ways.

    Why both ways: ``contrast_loss`` only pushes up, and a network that may raise contrast anywhere raises
    it everywhere (noise and texture too: measured, false vessels 7x the input's). A pixel loss, unsure
    how strong a veil was, hedges towards too little; this term asks for the clean level, no more.
    ``fine``: contrast finer than this sigma is not counted. At 0 (stages 4-9) a network unsure where the
    clean detail was can pay the term with a texture of its own: stage 9 paints horizontal stripes of period
    3-4 px, which take the term from 0.51 to 0.30 on its training crops; seen through a sigma-1 blur they
    take it only from 0.59 to 0.55.
    ``weights``: one per image (``noise_gate``), multiplying its share of the mean.
    """
    lp, lt = _local_contrasts(pred, target, fine)
    rel = (lp - lt).abs() / lt
    return (rel if weights is None else rel * weights).mean()


def noise_gate(lq: torch.Tensor, target: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Per image: 1 where the degraded input's ``noise_contrast_ratio`` is at most ``lo``, 0 from ``hi`` on,
    linear between.

    Why: where sensor noise buries a heavy veil's vessels, ``contrast_match_loss`` still asks for the clean
    photograph's amount of local contrast, and a network that cannot find the vessels pays it with amplified
    noise: worm-like texture that the fixed segmenter takes for vessels (DRIVE training photograph 26 under
    ``real``: Dice 0.65 clean, 0.14 degraded, 0.25 restored by stage 11). Gated, such inputs are taught by the
    in-place terms alone, whose best guess under noise is a smooth one."""
    with torch.no_grad():
        return 1.0 - ramp(noise_contrast_ratio(lq, _inner_fov(target).to(lq.dtype)), lo, hi)


def contrast_map_loss(pred: torch.Tensor, target: torch.Tensor, sigma: float = 2.0,
                      window: float = 6.0) -> torch.Tensor:
    """Local contrast *maps* matched, both ways: |Y - blur(Y)| averaged over ``window``-sized neighbourhoods,
    output against clean, relative to the clean crop's mean. Unlike ``contrast_match_loss`` (one number per
    crop), a network cannot pay for sharper large vessels with flatter fine ones."""
    fov = _inner_fov(target).to(pred.dtype)
    maps = []
    for x in (pred, target):
        y = _luminance(x)
        maps.append(_blur((y - _blur(y, sigma)).abs(), window))
    return (_fov_mean((maps[0] - maps[1]).abs(), fov) / _fov_mean(maps[1], fov).clamp_min(1e-4)).mean()


def band_loss(pred: torch.Tensor, target: torch.Tensor,
              sigmas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)) -> torch.Tensor:
    """Luminance band-pass differences (Gaussian sigma 1-2, 2-4, 4-8 px), each relative to the clean band's
    mean magnitude, away from the FOV's rim. A sigma of 0 adds the finest band (the photograph minus its
    sigma-1 blur: periods under about 4 px), where a texture the clean photograph lacks is otherwise free.

    Why: the contrast terms ask for the clean *amount* of detail, and where thin vessels cannot be recovered
    a network meets that amount by amplifying whatever is visible (measured on the Peli ``cataract`` family:
    thin-vessel recall 0.48 -> 0.35, segmented pixels far from any vessel 14.5 -> 19.1 %). This term asks for
    the clean detail *in its place*, each band weighted alike, where a pixel loss is ruled by low frequencies.
    """
    fov = _inner_fov(target).to(pred.dtype)
    per_band = [_fov_mean((bp - bt).abs(), fov) / _fov_mean(bt.abs(), fov).clamp_min(1e-4)
                for bp, bt in zip(_bands(pred, sigmas), _bands(target, sigmas))]
    return torch.stack(per_band).mean()


def _bands(x: torch.Tensor, sigmas: tuple[float, ...]) -> list[torch.Tensor]:
    """Luminance differences of Gaussians between neighbouring ``sigmas``, finest first."""
    y = _luminance(x)
    levels = [_blur(y, s) for s in sigmas]
    return [fine - coarse for fine, coarse in zip(levels, levels[1:])]


def _ridges(x: torch.Tensor, sigmas: tuple[float, ...]) -> list[torch.Tensor]:
    """Dark-line strength of the green channel at each Gaussian ``sigma``: the larger Hessian eigenvalue minus
    the magnitude of the smaller (a valley across, flat along: a vessel; a blob or noise speck scores little),
    scale-normalised. Second derivatives: blind to any offset."""
    g = x[:, 1:2]
    out = []
    for s in sigmas:
        b = F.pad(_blur(g, s), (1, 1, 1, 1), mode="replicate")
        c = b[..., 1:-1, 1:-1]
        dxx = b[..., 1:-1, 2:] - 2 * c + b[..., 1:-1, :-2]
        dyy = b[..., 2:, 1:-1] - 2 * c + b[..., :-2, 1:-1]
        dxy = (b[..., 2:, 2:] - b[..., 2:, :-2] - b[..., :-2, 2:] + b[..., :-2, :-2]) / 4
        half = ((dxx - dyy) ** 2 + 4 * dxy ** 2 + 1e-12).sqrt() / 2
        big, small = (dxx + dyy) / 2 + half, (dxx + dyy) / 2 - half
        out.append(F.relu(big - small.abs()) * s * s)
    return out


def ridge_loss(pred: torch.Tensor, target: torch.Tensor,
               sigmas: tuple[float, ...] = (1.0, 2.0, 3.0)) -> torch.Tensor:
    """Vessel-line agreement: the output's dark-line map (``_ridges``) against the clean photograph's, per
    scale, relative to the clean map's mean, inside the inner FOV.

    Why: ``band_loss`` charges every band-pass difference alike, so the clean photograph's unpredictable
    texture weighs as much as its vessels and the cheapest answer where a veil left a vessel a grey level or
    two is to smooth it away; this term asks for the lines a vessel segmenter reads (a Hessian line measure of
    the green channel, as Frangi's in quality.py), in place and at the clean strength: a vessel lost or
    weakened, a vessel drawn too strong, or a line where the clean photograph has none is what it costs.
    Both maps are divided by the clean map's mean, never by the output's own statistics: a first version
    standardised each image by its own green spread, and the network learnt to widen the spread (darker
    periphery, brighter disc) to tone down lines it had drawn too strong, a loophole that cost 1 dB."""
    fov = _inner_fov(target).to(pred.dtype)
    per_scale = [_fov_mean((rp - rt).abs(), fov) / _fov_mean(rt, fov).clamp_min(1e-4)
                 for rp, rt in zip(_ridges(pred, sigmas), _ridges(target, sigmas))]
    return torch.stack(per_scale).mean()


def vessel_loss(logits: list[torch.Tensor], vessels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy at every scale against the area-averaged annotation; unlabelled crops (-1) and
    padding are left out. Zero (with a gradient path) when the batch has no annotation."""
    known = (vessels[:, :1, :1, :1] >= 0).to(vessels.dtype)  # a crop is labelled whole or not at all
    total = logits[0].sum() * 0.0
    if not bool(known.any()):
        return total
    h, w = vessels.shape[-2:]
    for i, lg in enumerate(logits):
        # Logits cover the padded input, at 1/2**i of it: keep the part over the crop.
        lg = lg[..., : -(-h // 2**i), : -(-w // 2**i)]
        target = F.adaptive_avg_pool2d(vessels.clamp_min(0), (lg.shape[-2], lg.shape[-1]))
        bce = F.binary_cross_entropy_with_logits(lg, target, reduction="none")
        total = total + (bce * known).sum() / (known.sum() * lg.shape[-2] * lg.shape[-1])
    return total / len(logits)


class VesselJudge(Protocol):
    """What ``vessel_map_loss`` needs of a segmenter (``models.vessels.VesselNet``): logits, finest first."""

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]: ...


def vessel_map_loss(segmenter: VesselJudge, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Vessel-map agreement: a frozen segmenter trained on clean photographs (``models.vessels.VesselNet``)
    should find the clean photograph's vessels in the output, no fewer and no more. Cross-entropy of its
    logits on the output against its probabilities on the clean crop, at full resolution and inside the inner
    FOV; minus the target's own entropy, so a perfect match scores 0. Where ``band_loss`` asks for the clean
    band-pass signal, this asks for what a vessel detector reads from it: a vessel drawn a little fainter
    costs little, a vessel lost or texture that reads as a vessel costs a lot."""
    fov = _inner_fov(target)
    with torch.no_grad():
        t = torch.sigmoid(segmenter.forward_all(target)[0]).clamp(1e-4, 1 - 1e-4)
        entropy = -(t * t.log() + (1 - t) * (1 - t).log())
    logits = segmenter.forward_all(pred)[0]
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none") - entropy
    return (bce * fov).sum() / fov.sum().clamp_min(1.0)


def gram(feat: torch.Tensor) -> torch.Tensor:
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


class PerceptualLoss(nn.Module):
    """L1 between feature maps of a frozen network, plus optional Gram-matrix style term.

    ``extractor(x)`` must return a list of feature maps. ftrt downloads nothing,
    so the extractor is a network trained on fundus data (the readability
    classifier), as the Catintell paper's fundus perceptual loss.
    """

    def __init__(self, extractor: nn.Module, style_weight: float = 0.0) -> None:
        super().__init__()
        self.extractor = extractor.eval()
        for p in self.extractor.parameters():
            p.requires_grad_(False)
        self.style_weight = style_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.extractor(pred)
        with torch.no_grad():
            ft = self.extractor(target)
        loss = sum(F.l1_loss(a, b) for a, b in zip(fp, ft))
        if self.style_weight:
            loss = loss + self.style_weight * sum(F.l1_loss(gram(a), gram(b)) for a, b in zip(fp, ft))
        return loss


def fundus_feature_extractor(model_ref: str, depth: int) -> torch.nn.Module:
    """The fundus perceptual loss's network: a trained readability classifier's first ``depth`` stages."""
    from ftrt.models.pretrained import load_model
    from ftrt.models.readability import FeatureExtractor, ReadabilityNet

    net, meta = load_model(model_ref)
    if not isinstance(net, ReadabilityNet):
        raise ValueError(f"perceptual_model {model_ref!r} is a {meta.get('preset')} model, not a readability "
                         "classifier")
    return FeatureExtractor(net, depth)


def gan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN: the generator wants the critic to say 1."""
    return F.mse_loss(fake_logits, torch.ones_like(fake_logits))


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (
        F.mse_loss(real_logits, torch.ones_like(real_logits))
        + F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    )


def consistency_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean-teacher consistency: MSE to the (detached) teacher's prediction."""
    return F.mse_loss(student, teacher.detach())


def perturb(x: torch.Tensor, gen: torch.Generator, noise: float = 0.02, gain: float = 0.08,
            brightness: float = 0.1) -> torch.Tensor:
    """One random view of a batch for the consistency loss: per-image brightness and per-channel gain
    jitter plus Gaussian noise, black outside the FOV kept black."""
    n, c = x.shape[:2]
    b = 1.0 + brightness * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    g = 1.0 + gain * (2 * torch.rand(n, c, 1, 1, generator=gen) - 1)
    sigma = noise * torch.rand(n, 1, 1, 1, generator=gen)
    inside = (x.amax(dim=1, keepdim=True) > 0).to(x.dtype)
    return ((x * b * g + sigma * torch.randn(x.shape, generator=gen)) * inside).clamp(0, 1)
