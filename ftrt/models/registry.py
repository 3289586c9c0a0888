"""One builder for every ftrt model: ``build_model(name, **overrides)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ftrt.models.chain import LightThenDetail
from ftrt.models.denoise import Denoiser, DenoiseThenRestore, Refiner
from ftrt.models.ldm import FundusVAE, LatentDiffusionRestorer
from ftrt.models.light import LightCorrector
from ftrt.models.mage import MAGENet
from ftrt.models.readability import ReadabilityNet
from ftrt.models.twoscale import TwoScaleRestorer
from ftrt.models.unet import DenseUNet, PatchDiscriminator
from ftrt.models.vessels import VesselNet


@dataclass(frozen=True)
class Preset:
    name: str
    builder: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("res-l", DenseUNet, {"width": 32, "stages": 4}, "Catintell-Res generator, paper size (~12.7 M)"),
        Preset("res-m", DenseUNet, {"width": 32, "stages": 3}, "Catintell-Res, 3 stages (~3.2 M)"),
        Preset("res-s", DenseUNet, {"width": 16, "stages": 3}, "Catintell-Res, small, CPU-trainable (~1.2 M)"),
        Preset("mage-s", MAGENet, {"width": 16, "step": 16, "stage1_blocks": 2, "stage2_width": 16,
                                   "stage2_blocks": 2, "rsp_width": 8},
               "MAGE-Net (T-MAGE-Net's backbone), CPU size: two stages + vessel segmenter"),
        Preset("mage", MAGENet, {"width": 40, "step": 20, "stage1_blocks": 2, "stage2_width": 24,
                                 "stage2_blocks": 3, "rsp_width": 16},
               "MAGE-Net, larger (GPU training)"),
        Preset("vessel-s", VesselNet, {"width": 16},
               "vessel segmenter (MAGE-Net's RSP U-Net) on clean photographs: the judge of the vessel-map loss"),
        Preset("twoscale", TwoScaleRestorer, {"lr_width": 32, "hr_width": 16, "factor": 8, "dilations": [1, 2, 4]},
               "two-scale restorer: whole-photograph colour/haze map at 1/8 + full-resolution detail (default)"),
        Preset("light", LightCorrector, {"width": 16, "side": 128, "levels": 3, "map_side": 32},
               "light corrector: a smooth colour gain/offset map (32 px grid) from the whole photograph at 128 px"),
        Preset("light-res-s", LightThenDetail,
               {"light": {"width": 16, "side": 128, "levels": 3, "map_side": 32},
                "detail": {"width": 16, "stages": 3, "affine_head": True}},
               "the light corrector, then res-s at full resolution (one graph)"),
        Preset("dn-s", Denoiser, {"width": 32, "layers": 8},
               "sensor-noise remover: a residual CNN on the 2x2-unshuffled photograph (~66 k)"),
        Preset("dn-m", Denoiser, {"width": 32, "layers": 8, "context": 48},
               "dn-s with a quarter-resolution context branch (~2x the view; a dn-s loads into it)"),
        Preset("rf-m", Refiner, {"width": 32, "layers": 8, "context": 48},
               "detail refiner behind the restorer: dn-m's network taught on the restorer's own outputs"),
        Preset("dn-res-s", DenoiseThenRestore,
               {"denoiser": {"width": 32, "layers": 8}, "restorer": {"width": 16, "stages": 3, "affine_head": True},
                "gate": [0.9, 1.2]},
               "the denoiser (dn-s; dn-m as shipped) where the photograph's noise-to-contrast ratio shows sensor "
               "noise, then res-s (one graph; the default)"),
        Preset("dn-res-rf-s", DenoiseThenRestore,
               {"denoiser": {"width": 32, "layers": 8, "context": 48},
                "restorer": {"width": 16, "stages": 3, "affine_head": True}, "gate": [0.9, 1.2],
                "refiner": {"width": 32, "layers": 8, "context": 48}},
               "dn-res-s, then the detail refiner (rf-m) taught on res-s's own outputs (one graph)"),
        Preset("fundus-vae", FundusVAE, {"width": 16, "latent": 4, "downs": 2, "adaptor_rank": 8},
               "fundus VAE for latent diffusion: 4 latent channels at 1/4 resolution"),
        Preset("ldm", LatentDiffusionRestorer,
               {"vae": {"width": 16, "latent": 4, "downs": 2, "adaptor_rank": 8},
                "denoiser": {"width": 64, "adaptor_rank": 8}, "backbone": "edge"},
               "latent-diffusion restorer (RetinaRegen / Yang et al.): VAE, readability features, denoiser, adaptors"),
        Preset("syn", DenseUNet, {"width": 16, "stages": 3}, "Catintell-Syn cataract-synthesis generator"),
        Preset("patch-d", PatchDiscriminator, {"width": 32, "layers": 4}, "PatchGAN discriminator"),
        Preset("readability", ReadabilityNet, {"backbone": "edge", "width": 1.0},
               "readability classifier, light edge backbone (default)"),
        Preset("readability-inception", ReadabilityNet, {"backbone": "inception", "width": 1.0},
               "readability classifier, InceptionV3-class backbone (RetinaRegen)"),
    ]
}


# The sensor-noise removers a dn-res-s chain takes (ftrt.training.checkpoint.chain_denoiser) and a denoiser run may
# start from (ftrt.training.denoise.load_denoiser_init).
DENOISER_PRESETS = tuple(name for name, p in PRESETS.items() if p.builder is Denoiser)
# The chains of a denoiser, res-s and perhaps a refiner (ftrt.models.denoise.DenoiseThenRestore).
CHAIN_PRESETS = tuple(name for name, p in PRESETS.items() if p.builder is DenoiseThenRestore)


def list_models() -> list[str]:
    return sorted(PRESETS)


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build a preset by name; keyword overrides replace preset arguments (e.g. ``width=24``)."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}") from None
    return preset.builder(**{**preset.kwargs, **overrides})


def preset_kwargs(name: str, **overrides: Any) -> dict[str, Any]:
    return {**PRESETS[name].kwargs, **overrides}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
