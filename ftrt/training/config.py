"""Training configuration: a dataclass, loadable from YAML, with ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class GeneratorConfig:
    """What every generator run (restorer, Syn) shares: schedule, EMA, loss weights, bookkeeping."""

    model: str = "res-s"
    out: str = "runs/restorer"
    steps: int = 1000
    batch_size: int = 8
    crop: int = 128
    lr: float = 4e-4
    min_lr: float = 1e-6
    warmup: int = 100
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    w_pixel: float = 1.0
    w_perceptual: float = 0.0
    w_identity: float = 0.01
    w_gan: float = 0.0
    # Charbonnier on Laplacians: vessel-scale detail (blind to the global colour, so it teaches no colour pull).
    w_edge: float = 0.0
    # bf16 autocast for the forward pass (a CPU with AMX / AVX-512 BF16 runs it faster; see
    # benchmarks/results/train_speed.md); ignored where the CPU lacks native bf16.
    bf16: bool = False
    # channels_last weights and batches: PyTorch's CPU convolutions skip a layout reorder (1.3x measured).
    channels_last: bool = False
    # Fundus perceptual loss: features of this readability model (a shipped name or .safetensors).
    perceptual_model: str = "readability"
    perceptual_depth: int = 3
    val_images: int = 4
    val_every: int = 250
    save_every: int = 250
    log_every: int = 10
    seed: int = 0
    workers: int = 1
    threads: int = 2


@dataclass
class RestorerConfig(GeneratorConfig):
    affine_head: bool = False  # DenseUNet's illumination head (an ftrt addition to the paper's layout)
    global_head: bool = False  # its global colour term (needs affine_head)
    bottleneck_blocks: int = 0  # DenseUNet's bottleneck depth; 0: the preset's (blocks_per_unit)
    new_block_scale: float = 0.0  # blocks --init lacks: > 0 starts them at this layer scale, output projection zero
    new_lr_scale: float = 1.0  # what --init lacks (heads, blocks) learns at this multiple of the schedule's rate
    data: list[str] = field(default_factory=list)
    kind: str = "mixed"
    max_side: int = 576
    # The FOV size the runtime restores at (weights metadata ``work_side``); 0: max_side, the scale the
    # model learnt at. The light corrector learns at 256 px but sees every photograph at 128 px inside.
    work_side: int = 0
    # Each photograph becomes its FOV's bounding square at max_side (crop = max_side then trains on whole
    # photographs: what a restorer that estimates colour from the whole FOV needs).
    square: bool = False
    # Good photographs whose alternate rows differ (an interlacing camera: all of DRIVE's) have that comb taken
    # out before they become targets; with it left in, a restorer learns to paint stripes into every photograph.
    deinterlace: bool = False
    # Losses only inside the clean photograph's FOV (the pipeline blacks out the rest anyway).
    loss_in_fov: bool = False
    # losses.contrast_loss: the share of the clean photograph's local contrast the output lacks.
    w_contrast: float = 0.0
    # losses.contrast_match_loss: the output's local contrast against the clean photograph's, both ways.
    w_contrast_match: float = 0.0
    # losses.contrast_map_loss: local contrast maps (not one number per crop) against the clean photograph's.
    w_contrast_map: float = 0.0
    # losses.band_loss: band-pass luminance (sigma 1-8 px) against the clean photograph's, in place.
    w_band: float = 0.0
    # Its band edges (Gaussian sigmas, increasing); a leading 0 adds the finest band (periods under ~4 px).
    band_sigmas: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    # contrast_match_loss sees the luminance blurred by this sigma first (0: all of it, stages 4-9), so that a
    # texture finer than vessels cannot stand in for the clean photograph's vessel-scale contrast.
    contrast_fine_sigma: float = 0.0
    # [lo, hi]: contrast_match_loss weighs each crop by losses.noise_gate of its degraded input (1 up to a
    # noise-to-contrast ratio of lo, 0 from hi); empty: every crop alike (every run before stage 16).
    contrast_noise_gate: list[float] = field(default_factory=list)
    # losses.vessel_map_loss: a frozen vessel segmenter (``vessel_model``, trained by ``ftrt train vessels``
    # on clean photographs) finds the clean photograph's vessels in the output, no fewer and no more.
    w_vessel: float = 0.0
    # losses.ridge_loss: the green channel's dark-line map (a differentiable Frangi) against the clean one's.
    w_ridge: float = 0.0
    ridge_sigmas: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])
    vessel_model: str = ""
    identity_fraction: float = 0.25
    # Degraded pairs' pixel loss without each crop's per-channel FOV mean (losses.mean_free_pixel_loss): the
    # restorer learns structure and local contrast and keeps the photograph's global colour. Identity pairs
    # keep the full loss, so a clean photograph still comes out as it went in.
    mean_free_pixel: bool = False
    # With it: pull each degraded crop's output FOV mean towards its input's (weight), so dehazing raises
    # contrast at the photograph's own brightness instead of drifting (darker outputs read as less readable).
    w_keep_mean: float = 0.0
    # Each photograph rescaled by a log-uniform factor in [scale_min, scale_max] before it is degraded.
    scale_min: float = 1.0
    scale_max: float = 1.0
    val_kind: str = "mixed"
    # Start from these weights (fine-tuning) instead of the preset's initialisation.
    init: str = ""
    # A chained model (light-res-s): each part from its own trained weights, "PART=WEIGHTS" (e.g.
    # light=runs/light/final.safetensors, detail=res-s); and the parts that stay fixed while the rest trains.
    init_parts: list[str] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)
    # Learnt Catintell-Syn pairs: kind "syn" trains on them only; syn_fraction mixes them with `kind`.
    syn_model: str = "syn"
    syn_fraction: float = 0.0
    # kind "real": how often some physical families are drawn, overriding ftrt.degrade.physical.PROBABILITY
    # (e.g. {veil: 0.8}), for a run that dwells on the family its restorer recovers least.
    family_probability: dict[str, float] = field(default_factory=dict)
    # kind "real": some parameters redrawn from other ranges, "family.parameter": [low, high] (e.g.
    # {veil.t_var: [0.0, 0.45]}, a veil thicker towards one side), for a fit to real photographs tried as a run
    # (benchmarks/degradation_fit.py); the benchmarks' own `real` pairs keep the shipped ranges.
    family_ranges: dict[str, list[float]] = field(default_factory=dict)
    # Degraded inputs as a file stores them: 8 rounds them to 256 levels, as every photograph a clinic sends is;
    # 0 keeps them float (every shipped stage). The rounding is most of what the veil costs vessel Dice, but
    # res-s trained on rounded inputs lost vessels on the held-out Peli family instead (docs/models.md, stage 10).
    input_bits: int = 0
    # Mean teacher (T-MAGE-Net style): real unlabelled low-quality images, consistency against the EMA.
    real_lq: list[str] = field(default_factory=list)
    w_consistency: float = 1.0
    consistency_rampup: int = 200
    # MAGE-Net's retinal-structure segmenter (models mage-s / mage): folders of vessel annotations matched to
    # the training photographs by the name before the first "_" (DRIVE's 1st_manual), the share of samples
    # drawn from annotated photographs, and the segmentation loss weight (the paper's 0.5).
    vessel_masks: list[str] = field(default_factory=list)
    vessel_fraction: float = 0.5
    w_seg: float = 0.5


@dataclass
class VesselConfig(GeneratorConfig):
    """``ftrt train vessels``: the vessel segmenter behind the restorer's vessel-map loss, on clean
    photographs and their vessel annotations only (matched as ``RestorerConfig.vessel_masks``)."""

    model: str = "vessel-s"
    out: str = "runs/vessel-s"
    data: list[str] = field(default_factory=list)
    vessel_masks: list[str] = field(default_factory=list)
    max_side: int = 1024
    # The restorer's range of rescaling, so the judge knows vessels at every width the restorer sees.
    scale_min: float = 0.75
    scale_max: float = 1.4
    crop: int = 128
    lr: float = 2e-3
    warmup: int = 50
    min_lr: float = 1e-5


@dataclass
class DenoiserConfig(GeneratorConfig):
    """``ftrt train denoiser``: the sensor-noise remover in front of the restorer (``ftrt.models.denoise``), on
    crops of ``real`` degradations drawn without noise (the target) and the same crops with sensor noise."""

    model: str = "dn-s"
    out: str = "runs/dn-s"
    data: list[str] = field(default_factory=list)
    # The pipeline denoises at its working side (768 px for large photographs, DRIVE's 565 as it is).
    max_side: int = 768
    scale_min: float = 0.7
    scale_max: float = 1.0
    crop: int = 96
    batch_size: int = 16
    lr: float = 1e-3
    warmup: int = 50
    min_lr: float = 1e-5
    # The share of crops given sensor noise; the rest teach the identity on 8-bit noise-free crops.
    noise_fraction: float = 0.75
    # How often the physical families under the noise are drawn (noise and JPEG are never: see NoisePairDataset).
    family_probability: dict[str, float] = field(default_factory=lambda: {"veil": 0.9, "motion": 0.3})
    deinterlace: bool = True
    # Start from these denoiser weights: the same preset, or a dn-s into dn-m (its context branch starts at zero).
    init: str = ""
    # The restorer the denoiser feeds (a res-s .safetensors or shipped name), held frozen: with w_restored > 0 the
    # denoised crop is also judged by what that restorer makes of it against what it makes of the noise-free crop.
    # Under a veil the restorer multiplies faint detail, so residual noise there costs what it costs downstream.
    restorer: str = ""
    w_restored: float = 0.0


@dataclass
class RefinerConfig(GeneratorConfig):
    """``ftrt train refiner``: the detail network behind the shipped restorer (``ftrt.training.refine``), on the
    restorer's own outputs of ``real`` degradations against the clean photographs."""

    model: str = "rf-m"
    out: str = "runs/rf-m"
    data: list[str] = field(default_factory=list)
    # The restorer whose outputs it learns to refine: a shipped name or an ONNX file.
    restorer: str = "dn-res-s"
    # Where the (restored, clean) pairs are written once (the restorer takes seconds a photograph).
    pairs_dir: str = "runs/rf-m/pairs"
    max_side: int = 768
    scale_min: float = 0.7
    scale_max: float = 1.0
    crop: int = 128
    batch_size: int = 10
    lr: float = 5e-4
    warmup: int = 50
    min_lr: float = 1e-5
    # Share of photographs given no degradation: the restorer's output of a clean photograph must stay as it is.
    identity_fraction: float = 0.125
    family_probability: dict[str, float] = field(default_factory=lambda: {"veil": 0.9, "motion": 0.3})
    # Below this blur (px) the output keeps the restorer's; above it the detail is learnt.
    split_sigma: float = 4.0
    w_keep_low: float = 1.0
    w_ridge: float = 1.0
    # The restorer's detail terms (losses.contrast_match_loss, losses.band_loss), off by default.
    w_contrast_match: float = 0.0
    contrast_fine_sigma: float = 1.0
    w_band: float = 0.0
    band_sigmas: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0])
    # Below 0.5: the detail term asks for that quantile of the clean detail (refine.refine_loss), erring dark.
    detail_quantile: float = 0.5
    deinterlace: bool = True
    # Start from these weights: a denoiser of the same shape (dn-m), or none (the tail starts at zero: identity).
    init: str = ""


@dataclass
class VaeConfig(GeneratorConfig):
    """``ftrt train vae``: the latent-diffusion autoencoder on unpaired photographs of any quality."""

    model: str = "fundus-vae"
    out: str = "runs/vae"
    data: list[str] = field(default_factory=list)
    max_side: int = 768
    crop: int = 128
    lr: float = 5e-4
    warmup: int = 50
    # KL weight: small, so the latent keeps vessel detail (RetinaRegen's BCE + KL; Rombach et al. use ~1e-6).
    w_kl: float = 1e-6
    w_edge: float = 0.5
    val_images: int = 4


@dataclass
class LdmConfig(GeneratorConfig):
    """``ftrt train ldm --phase reconstruct|adapt`` (Yang et al.'s two phases)."""

    model: str = "ldm"
    out: str = "runs/ldm"
    phase: str = "reconstruct"
    # reconstruct: unpaired photographs of any quality; adapt: good photographs, degraded on the fly (kind).
    data: list[str] = field(default_factory=list)
    kind: str = "real"
    val_kind: str = "real"
    max_side: int = 768
    crop: int = 128
    lr: float = 4e-4
    warmup: int = 50
    # reconstruct: the trained VAE (ftrt train vae) and the readability model whose features condition.
    vae: str = ""
    features_model: str = "readability"
    # adapt: the reconstruction phase's weights.
    init: str = ""
    # reconstruct: the condition latent dropped (zeros) this often, so the denoiser learns a prior too.
    cond_dropout: float = 0.1
    # adapt: L1 between the adapted encoder's latent of the degraded crop and the clean latent, and between
    # the (adapted) decoder's image of the predicted clean latent and the clean crop.
    w_latent: float = 1.0
    w_pixel: float = 0.5
    val_images: int = 4
    val_side: int = 256


@dataclass
class SynConfig(GeneratorConfig):
    """Catintell-Syn: good -> cataract-like, adversarial against real cataract photographs.

    Loss weights as the paper's eq. 5 (0.01 pixel, 0.1 identity, 0.1 GAN) except the perceptual
    term, off by default: measured here, an L1 feature term at weight 1 (or 0.1) pins the
    generator at the identity (its subgradient outweighs the critic's; output change stayed
    below 1e-3 for 160 steps), while without it the generator moves within 50 steps.
    """

    model: str = "syn"
    good: list[str] = field(default_factory=list)
    cataract: list[str] = field(default_factory=list)
    out: str = "runs/syn"
    steps: int = 600
    batch_size: int = 4
    side: int = 256  # both sets are FOV-cropped to a square of this side, so crops at one place line up
    lr: float = 5e-4
    lr_d: float = 4e-4
    warmup: int = 20
    w_pixel: float = 0.01
    w_identity: float = 0.1
    w_gan: float = 0.1
    val_every: int = 100
    save_every: int = 100


@dataclass
class ReadabilityConfig:
    model: str = "readability"
    data_root: str = ""
    out: str = "runs/readability"
    steps: int = 900
    batch_size: int = 32
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup: int = 50
    weight_decay: float = 1e-4
    synthetic_fraction: float = 0.25
    non_fundus_fraction: float = 0.08
    side: int = 224
    log_every: int = 10
    seed: int = 0
    threads: int = 2


def _coerce(value: str, target: Any) -> Any:
    if isinstance(target, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(target, int):
        return int(value)
    if isinstance(target, float):
        return float(value)
    if isinstance(target, list):
        return [v for v in value.split(",") if v]
    if isinstance(target, dict):  # key:value,key:value (numbers), e.g. family_probability=veil:0.8,motion:0.25
        pairs = [v.split(":", 1) for v in value.split(",") if v]
        if any(len(kv) != 2 for kv in pairs):
            raise ValueError(f"expected key:value,key:value, got {value!r}")
        return {k.strip(): float(v) for k, v in pairs}
    return value


def load_config(cls: type, path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                sets: list[str] | None = None) -> Any:
    """Defaults < YAML file < ``--set key=value`` < explicit CLI options (``overrides``)."""
    cfg = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a mapping of option: value")
        values.update(loaded)
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in names:
            raise ValueError(f"unknown option {key!r}")
        values[key] = _coerce(raw, getattr(cfg, key))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(cfg, **values)
