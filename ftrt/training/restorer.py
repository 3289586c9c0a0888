"""``ftrt train restorer``: paired training of the restoration generator on synthetic degradations."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ftrt.degrade.syn import SynDegrader
from ftrt.metrics import psnr, ssim, structure_psnr
from ftrt.models import build_model
from ftrt.models.pretrained import load_model, restore_array
from ftrt.models.registry import preset_kwargs
from ftrt.models.vessels import VesselNet
from ftrt.training.config import RestorerConfig
from ftrt.training.data import (
    FundusImage,
    PairedDegradationDataset,
    RealCropDataset,
    ZipDataset,
    attach_vessels,
    load_pool_logged,
    make_validation_set,
    split_pool,
)
from ftrt.models.denoise import check_gate
from ftrt.training.loop import TrainingRun
from ftrt.training.losses import (
    band_loss,
    consistency_loss,
    contrast_loss,
    contrast_map_loss,
    contrast_match_loss,
    edge_loss,
    keep_mean_loss,
    mean_free_pixel_loss,
    noise_gate,
    gan_generator_loss,
    perturb,
    ridge_loss,
    pixel_loss,
    vessel_map_loss,
)


def validate(model: torch.nn.Module, val_set: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """PSNR and SSIM against the clean photographs, and the structure PSNR (global colour matched first: what
    a mean-free loss trains), each with the unrestored input's own score beside it, so a run that learns
    nothing shows as such."""
    rows = []
    for lq, gt, mask in val_set:
        out = restore_array(model, lq) * mask[..., None]
        inp = lq * mask[..., None]
        rows.append([psnr(out, gt, mask), ssim(out, gt, mask), structure_psnr(out, gt, mask),
                     psnr(inp, gt, mask), ssim(inp, gt, mask), structure_psnr(inp, gt, mask)])
    if not rows:
        return {}
    m = np.mean(np.array(rows), axis=0)
    return {"psnr": float(m[0]), "ssim": float(m[1]), "psnr_structure": float(m[2]),
            "input_psnr": float(m[3]), "input_ssim": float(m[4]), "input_psnr_structure": float(m[5])}


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 natively (elsewhere autocast emulates it, slower than fp32)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


# DenseUNet option -> the prefix of the weights it adds.
_HEAD_MODULES = {"affine_head": "affine.", "global_head": "global_head."}


def _bottleneck_depth(kwargs: dict[str, Any]) -> int:
    return int(kwargs.get("bottleneck_blocks") or kwargs.get("blocks_per_unit", 3))


def load_init(model: torch.nn.Module, path: str, preset: str, kwargs: dict[str, Any],
              new_block_scale: float = 0.0) -> tuple[str, ...]:
    """Fine-tuning start: the same architecture, or one that only adds heads (those keep their zero init) or
    bottleneck blocks (appended after the trained ones; each starts next to the identity, its layer scale 1e-5, or
    exactly the identity with ``new_block_scale`` > 0: that layer scale and a zero output projection, so it opens at
    the pace of its projection's learning rate instead of its layer scale's). Returns the name prefixes of what it
    added."""
    init, meta = load_model(path)
    old = meta.get("kwargs", {})
    added = {k for k in set(kwargs) - set(old) if k.endswith("_head") and kwargs[k]}
    old_depth, depth = _bottleneck_depth(old), _bottleneck_depth(kwargs)

    def rest(kw: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if k not in added and k != "bottleneck_blocks"}

    if meta.get("preset") != preset or rest(kwargs) != rest(old) or depth < old_depth:
        raise ValueError(f"init {path!r} is {meta.get('preset')} {old}, not {preset} {kwargs}")
    missing, unexpected = model.load_state_dict(init.state_dict(), strict=not added and depth == old_depth)
    new = tuple(_HEAD_MODULES[k] for k in added) + tuple(f"bottleneck.blocks.{i}." for i in range(old_depth, depth))
    if unexpected or any(not k.startswith(new) for k in missing):
        raise ValueError(f"init {path!r}: weights do not fit {preset} {kwargs}")
    if new_block_scale > 0:
        with torch.no_grad():
            for block in list(model.bottleneck.blocks)[old_depth:]:  # type: ignore[union-attr, arg-type]
                block.scale.fill_(new_block_scale)
                block.fc2.weight.zero_()
                block.fc2.bias.zero_()
    return new


def _part(model: torch.nn.Module, name: str) -> torch.nn.Module:
    part = getattr(model, name, None)
    if not isinstance(part, torch.nn.Module) or part is model:
        raise ValueError(f"the model has no part {name!r}")
    return part


def load_part(model: torch.nn.Module, spec: str) -> None:
    """``PART=WEIGHTS``: one part of a chained model from a trained model of the same architecture."""
    name, sep, path = spec.partition("=")
    if not sep or not path:
        raise ValueError(f"init_parts entry {spec!r}: expected PART=WEIGHTS")
    part = _part(model, name)
    init, meta = load_model(path)
    if type(init) is not type(part):
        raise ValueError(f"init_parts {spec!r}: {meta.get('preset')} is a {type(init).__name__}, "
                         f"the part {name!r} a {type(part).__name__}")
    try:
        part.load_state_dict(init.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"init_parts {spec!r}: weights do not fit ({str(exc).splitlines()[0][:160]})") from None


def freeze_parts(model: torch.nn.Module, names: list[str]) -> None:
    """Parts that stay as they are: no gradients, so the optimizer never sees them."""
    for name in names:
        for p in _part(model, name).parameters():
            p.requires_grad_(False)


def frozen_segmenter(path: str) -> VesselNet:
    """The vessel-map term's judge: a trained ``vessel-s`` (or any VesselNet), fixed while the restorer learns."""
    if not path:
        raise ValueError("w_vessel needs vessel_model: the weights of `ftrt train vessels`")
    net, meta = load_model(path)
    if not isinstance(net, VesselNet):
        raise ValueError(f"vessel_model {path!r} is a {meta.get('preset')} model, not a vessel segmenter")
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def restorer_trainer(cfg: RestorerConfig, log: Callable[[str], None] = print) -> "RestorerTrainer":
    """The trainer a restorer preset needs: MAGE-Net's (two stages + vessel segmenter) or the generic one."""
    from ftrt.models.mage import MAGENet
    from ftrt.models.registry import PRESETS

    preset = PRESETS.get(cfg.model)
    if preset is not None and preset.builder is MAGENet:
        from ftrt.training.mage import MageTrainer

        return MageTrainer(cfg, log=log)
    return RestorerTrainer(cfg, log=log)


class RestorerTrainer(TrainingRun):
    """Paired training on synthetic degradations; optionally a mean teacher on real low-quality images."""

    # Whether batches carry the crops' vessel annotations (a model with a vessel segmenter: MageTrainer).
    needs_vessels = False

    def __init__(self, cfg: RestorerConfig, perceptual: torch.nn.Module | None = None,
                 log: Callable[[str], None] = print) -> None:
        sig = cfg.band_sigmas
        if len(sig) < 2 or any(not np.isfinite(x) or x < 0 for x in sig) or any(b <= a for a, b in zip(sig, sig[1:])):
            raise ValueError(f"band_sigmas must be at least two increasing sigmas >= 0, got {sig}")
        if not cfg.ridge_sigmas or any(not np.isfinite(x) or x <= 0 for x in cfg.ridge_sigmas):
            raise ValueError(f"ridge_sigmas must be sigmas > 0, got {cfg.ridge_sigmas}")
        if not np.isfinite(cfg.contrast_fine_sigma) or cfg.contrast_fine_sigma < 0:
            raise ValueError(f"contrast_fine_sigma must be >= 0, got {cfg.contrast_fine_sigma}")
        if cfg.contrast_noise_gate:  # empty: off
            check_gate(cfg.contrast_noise_gate, "contrast_noise_gate")
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        if not np.isfinite(cfg.new_block_scale) or cfg.new_block_scale < 0 or cfg.bottleneck_blocks < 0 \
                or not np.isfinite(cfg.new_lr_scale) or cfg.new_lr_scale <= 0:
            raise ValueError("bottleneck_blocks and new_block_scale must be >= 0 and new_lr_scale > 0, got "
                             f"{cfg.bottleneck_blocks}, {cfg.new_block_scale}, {cfg.new_lr_scale}")
        options: dict[str, Any] = {k: True for k in _HEAD_MODULES if getattr(cfg, k)}
        if cfg.bottleneck_blocks:
            options["bottleneck_blocks"] = cfg.bottleneck_blocks
        self.model_kwargs = preset_kwargs(cfg.model, **options)
        model = build_model(cfg.model, **self.model_kwargs)
        self.added: tuple[str, ...] = ()  # name prefixes of what --init lacked (param_groups)
        if cfg.init:
            self.added = load_init(model, cfg.init, cfg.model, self.model_kwargs, cfg.new_block_scale)
        for spec in cfg.init_parts:
            load_part(model, spec)
        freeze_parts(model, cfg.freeze)
        super().__init__(cfg, model, log)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.bf16 = bool(cfg.bf16) and cpu_has_bf16()
        if cfg.bf16 and not self.bf16:
            log("warning: bf16 asked for, but this CPU has no native bf16 (AMX / AVX-512 BF16): training in fp32")
        self.perceptual = self.perceptual_loss(perceptual)
        self.vessel_judge = frozen_segmenter(cfg.vessel_model) if cfg.w_vessel else None
        self.disc = build_model("patch-d") if cfg.w_gan else None
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.99)) if self.disc else None
        if self.disc is not None:
            self.extra["disc"] = self.disc
        pool = load_pool_logged(cfg.data, cfg.max_side, log, square=cfg.square, deinterlace=cfg.deinterlace)
        train, val = split_pool(pool, cfg.val_images, cfg.seed)
        syn_fraction = 1.0 if cfg.kind == "syn" else cfg.syn_fraction
        syn = SynDegrader(cfg.syn_model) if syn_fraction > 0 else None
        classical = "mixed" if cfg.kind == "syn" else cfg.kind
        # Validation photographs keep no annotation: they are never trained on, a segmenter included.
        self.n_labelled = attach_vessels(train, cfg.vessel_masks) if self.needs_vessels and cfg.vessel_masks else 0
        self.dataset: Dataset = PairedDegradationDataset(
            train, classical, cfg.crop, cfg.seed, syn=syn, syn_fraction=syn_fraction,
            scale_range=(cfg.scale_min, cfg.scale_max), vessels=self.needs_vessels,
            vessel_fraction=cfg.vessel_fraction, probability=cfg.family_probability, input_bits=cfg.input_bits,
            ranges=cfg.family_ranges)
        self.real_pool: list[FundusImage] = []
        if cfg.real_lq:
            self.real_pool = load_pool_logged(cfg.real_lq, cfg.max_side, log)
            if not self.real_pool:
                raise ValueError("--real-lq: no usable low-quality images")
            self.dataset = ZipDataset(self.dataset, RealCropDataset(self.real_pool, cfg.crop, cfg.seed))
        # Validation always on the same classical pairs, so runs trained on different pairs compare.
        self.val_set = make_validation_set(val, cfg.val_kind, cfg.seed, cfg.input_bits)
        self.n_train, self.n_val = len(train), len(val)

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """What --init lacked starts from nothing: with ``new_lr_scale`` it learns at its own pace (appended
        bottleneck blocks open too slowly at the fine-tuning rate of the trained ones; checkpoints/res-s-p)."""
        if not self.added or self.cfg.new_lr_scale == 1.0:
            return super().param_groups(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return [{"params": [p for n, p in named if not n.startswith(self.added)]},
                {"params": [p for n, p in named if n.startswith(self.added)], "lr_scale": self.cfg.new_lr_scale}]

    def describe(self) -> str:
        real = f", {len(self.real_pool)} real low-quality images (mean teacher)" if self.real_pool else ""
        return f"{self.n_train} training, {self.n_val} validation images{real}"

    def consistency_weight(self) -> float:
        """Gaussian ramp-up exp(-5 (1 - t)^2) of the mean-teacher weight (Laine & Aila; Tarvainen & Valpola)."""
        cfg = self.cfg
        t = min(1.0, self.step / max(1, cfg.consistency_rampup))
        return cfg.w_consistency * math.exp(-5.0 * (1.0 - t) ** 2)

    def step_batch(self, lq: torch.Tensor, gt: torch.Tensor,
                   real: torch.Tensor | None) -> tuple[torch.Tensor, int, torch.Generator]:
        """(the step's one forward batch, identity crops in it, the step's generator): degraded crops, then
        clean identity crops, then the student's view of the real photographs. They ride in one pass: one
        batched call is cheaper than several."""
        cfg = self.cfg
        n_id = max(1, int(round(cfg.identity_fraction * gt.shape[0]))) if cfg.w_identity else 0
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + self.step)
        student_real = perturb(real, gen) if real is not None else None
        parts = [lq] + ([gt[:n_id]] if n_id else []) + ([student_real] if student_real is not None else [])
        batch = torch.cat(parts)
        if cfg.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch, n_id, gen

    def detail_terms(self, pred: torch.Tensor, gt: torch.Tensor, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms that ask for the clean photograph's detail (local contrast, band-pass signal, vessels),
        those the config weighs; every restorer architecture's trainer adds them to its own. ``lq``: the
        degraded inputs ``pred`` restores, which ``contrast_noise_gate`` reads."""
        cfg = self.cfg
        terms = {}
        if cfg.w_contrast:
            terms["contrast"] = contrast_loss(pred, gt)
        if cfg.w_contrast_match:
            gate = cfg.contrast_noise_gate
            weights = noise_gate(lq, gt, gate[0], gate[1]) if gate else None
            terms["contrast_match"] = contrast_match_loss(pred, gt, cfg.contrast_fine_sigma, weights)
        if cfg.w_contrast_map:
            terms["contrast_map"] = contrast_map_loss(pred, gt)
        if cfg.w_band:
            terms["band"] = band_loss(pred, gt, tuple(cfg.band_sigmas))
        if cfg.w_ridge:
            terms["ridge"] = ridge_loss(pred, gt, tuple(cfg.ridge_sigmas))
        if self.vessel_judge is not None:
            terms["vessel"] = vessel_map_loss(self.vessel_judge, pred, gt)
        return terms

    def detail_weights(self) -> dict[str, float]:
        cfg = self.cfg
        return {"contrast": cfg.w_contrast, "contrast_match": cfg.w_contrast_match,
                "contrast_map": cfg.w_contrast_map, "band": cfg.w_band, "ridge": cfg.w_ridge,
                "vessel": cfg.w_vessel}

    def train_step(self, lq: torch.Tensor, gt: torch.Tensor, real: torch.Tensor | None = None) -> dict[str, float]:
        cfg = self.cfg
        self.set_lr()
        batch, n_id, gen = self.step_batch(lq, gt, real)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            y = self.model(batch)
        y = y.float()
        pred = y[: lq.shape[0]]
        ident = y[lq.shape[0]: lq.shape[0] + n_id]
        if cfg.loss_in_fov:
            # The pipeline blacks out everything outside the FOV: no capacity spent on the border.
            fov = (gt.amax(dim=1, keepdim=True) > 0).to(y.dtype)
            pred, ident = pred * fov, ident * fov[:n_id]
        terms = {"pixel": (mean_free_pixel_loss if cfg.mean_free_pixel else pixel_loss)(pred, gt)}
        if n_id:
            terms["identity"] = pixel_loss(ident, gt[:n_id])
        if cfg.w_edge:
            terms["edge"] = edge_loss(pred, gt)
        if cfg.w_keep_mean:
            terms["keep_mean"] = keep_mean_loss(pred, lq)
        terms.update(self.detail_terms(pred, gt, lq))
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(pred, gt)
        if self.disc is not None:
            terms["gan"] = gan_generator_loss(self.disc(pred))
        weights = {"pixel": cfg.w_pixel, "identity": cfg.w_identity, "perceptual": cfg.w_perceptual,
                   "gan": cfg.w_gan, "edge": cfg.w_edge, "keep_mean": cfg.w_keep_mean,
                   "consistency": self.consistency_weight(), **self.detail_weights()}
        if real is not None:
            with torch.no_grad():
                target = self.ema(perturb(real, gen))
            terms["consistency"] = consistency_loss(y[lq.shape[0] + n_id:], target)
        loss = sum(weights[k] * v for k, v in terms.items())
        self.optimise(loss)
        if self.disc is not None and self.opt_d is not None:
            terms["disc"] = self.critic_step(self.disc, self.opt_d, gt, pred)
        # The EMA is both the exported model and, with --real-lq, the mean teacher (end_step updates it).
        return self.end_step(loss, terms)

    def validate(self) -> dict[str, float]:
        return validate(self.ema, self.val_set)

    def ema_metadata(self) -> dict[str, Any]:
        cfg = self.cfg
        return self.weights_metadata(
            self.model_kwargs, kind=cfg.kind, syn_fraction=cfg.syn_fraction, mean_teacher=bool(cfg.real_lq),
            init=cfg.init or None,
            # The scale the model learnt at, unless the config says otherwise: the runtime restores at this
            # FOV size by default.
            work_side=cfg.work_side or cfg.max_side,
            # What ran, not what was asked: `bf16: true` falls back to fp32 on a CPU without native bf16.
            bf16=self.bf16)
