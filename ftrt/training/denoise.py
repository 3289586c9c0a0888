"""``ftrt train denoiser``: the sensor-noise remover (``dn-s``) in front of the restorer.

Its pairs are exact: a ``real`` degradation of a clean photograph drawn without sensor noise and JPEG is the
target, and the same crop with sensor noise drawn as the ``noise`` family draws it (Poisson-Gaussian), rounded to
8 bits, the input. So it learns to take away the noise and nothing the other families did: the veil, blur and
colour stay for the restorer. A quarter of the crops carry no noise, only the 8-bit rounding, and teach it to
leave a noise-free photograph as it is. Validation: PSNR against the noise-free target on fixed noisy crops of
photographs it never trains on.

With ``restorer`` and ``w_restored`` set, the denoised crop is also judged through the frozen restorer it feeds:
the restorer's output of it against the restorer's output of the noise-free crop. Pixel PSNR weighs every grey level
alike; the restorer, undoing a veil, multiplies the faint detail where the veil is thick, so a denoiser judged only
in pixels leaves there the residual noise that the restorer then turns into false texture (DRIVE training photograph
26: noisy 34.2 dB -> denoised 41.4 dB, yet the restored vessel Dice 0.343 against 0.594 from the noise-free input,
and a plain Gaussian blur at 37.4 dB gives 0.427).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ftrt.degrade import degrade
from ftrt.degrade.physical import apply_physical, check_probability, sample_physical
from ftrt.metrics import psnr
from ftrt.models import build_model
from ftrt.models.pretrained import load_model, resolve_weights
from ftrt.models.registry import DENOISER_PRESETS, preset_kwargs
from ftrt.models.unet import DenseUNet
from ftrt.training.checkpoint import load_weights
from ftrt.training.config import DenoiserConfig, RefinerConfig
from ftrt.training.data import (
    FundusImage,
    augment,
    load_pool_logged,
    quantise,
    random_crop_in_fov,
    rescale,
    split_pool,
    to_chw,
)
from ftrt.training.loop import TrainingRun
from ftrt.training.losses import charbonnier, edge_loss


class NoisePairDataset(Dataset):
    """(noisy 8-bit crop, the same crop without the noise) CHW tensors; sample i depends on i only."""

    def __init__(self, pool: list[FundusImage], crop: int, seed: int, scale_range: tuple[float, float],
                 probability: Mapping[str, float], noise_fraction: float) -> None:
        if not pool:
            raise ValueError("no usable training images")
        if not 0.0 <= noise_fraction <= 1.0:
            raise ValueError(f"noise_fraction must be in [0, 1], got {noise_fraction}")
        # Noise and JPEG are drawn here, on the crop, never under it: the target must hold none.
        self.probability = {**check_probability(probability), "noise": 0.0, "jpeg": 0.0}
        self.pool, self.crop, self.seed, self.scale_range = pool, crop, seed, scale_range
        self.noise_fraction = noise_fraction

    def __len__(self) -> int:
        return 2**62

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy input, target) HWC float32, before the flip and rotation."""
        rng = np.random.default_rng([self.seed, 11, int(index)])
        item = self.pool[int(rng.integers(len(self.pool)))]
        clean, mask = rescale(item, rng, self.scale_range)
        lq, _ = degrade(clean, "real", rng, mask=mask, probability=self.probability)
        crop = min(self.crop, *clean.shape[:2])
        y0, x0 = random_crop_in_fov(rng, mask, crop)
        sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        target, m = lq[sl], mask[sl]
        noisy = target
        if float(rng.uniform()) < self.noise_fraction:
            noisy = apply_physical(target, m, sample_physical(rng, m.shape, only="noise"))
        return quantise(noisy, 8) * m[..., None], target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        noisy, target = self.pair(index)
        rng = np.random.default_rng([self.seed, 12, int(index)])
        a, b = augment(rng, noisy, target)
        return to_chw(a), to_chw(b)


def load_denoiser_init(model: torch.nn.Module, path: str, kwargs: Mapping[str, Any]) -> None:
    """Start ``model`` from a denoiser's weights: the same network, or one without the context branch (dn-s into
    dn-m, the branch keeps its zero output). Anything else is refused."""
    state, meta = load_weights(resolve_weights(path))
    old = dict(meta.get("kwargs", {}))
    same = {k: v for k, v in old.items() if k != "context"} == {k: v for k, v in kwargs.items() if k != "context"}
    context = (0, kwargs.get("context", 0))
    if meta.get("preset") not in DENOISER_PRESETS or not same or old.get("context", 0) not in context:
        raise ValueError(f"init {path!r} is {meta.get('preset')} {old}: it does not load into {dict(kwargs)}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("context.") for k in missing):
        raise ValueError(f"init {path!r}: weights do not fit {dict(kwargs)}")


def denoiser_network(cfg: DenoiserConfig | RefinerConfig) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A denoiser-shaped run's network (dn-s, dn-m, rf-m) and its preset kwargs: seeded, started from ``cfg.init``
    where one is given, channels_last where asked."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    kwargs = preset_kwargs(cfg.model)
    model = build_model(cfg.model, **kwargs)
    if cfg.init:
        load_denoiser_init(model, cfg.init, kwargs)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, kwargs


def held_out_pool(cfg: DenoiserConfig | RefinerConfig,
                  log: Callable[[str], None]) -> tuple[list[FundusImage], list[FundusImage]]:
    """(training, validation) photographs of a denoiser-shaped run: ``cfg.val_images`` held out by its seed."""
    pool = load_pool_logged(cfg.data, cfg.max_side, log, deinterlace=cfg.deinterlace)
    if len(pool) <= cfg.val_images:
        raise ValueError(f"{len(pool)} usable training photographs: too few for {cfg.val_images} held out")
    return split_pool(pool, cfg.val_images, cfg.seed)


def frozen_restorer(name: str, channels_last: bool) -> torch.nn.Module:
    """The restorer a denoiser is judged through: loaded from its safetensors (no pickle), in eval mode, every
    weight frozen; a chain or anything not a restorer is refused."""
    model, meta = load_model(name)
    if not isinstance(model, DenseUNet):
        raise ValueError(f"restorer {name!r} is {meta.get('preset')}: not a restorer to judge a denoiser through")
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _hwc(t: torch.Tensor) -> np.ndarray:
    return np.clip(t[0].numpy().transpose(1, 2, 0), 0, 1)


class DenoiserTrainer(TrainingRun):
    def __init__(self, cfg: DenoiserConfig, log: Callable[[str], None] = print) -> None:
        model, self.model_kwargs = denoiser_network(cfg)
        super().__init__(cfg, model, log)
        self.train_pool, self.val_pool = held_out_pool(cfg, log)
        scale = (cfg.scale_min, cfg.scale_max)
        self.dataset = NoisePairDataset(self.train_pool, cfg.crop, cfg.seed, scale, cfg.family_probability,
                                        cfg.noise_fraction)
        # Fixed noisy crops of the held-out photographs (every one noisy: the identity is not what is judged).
        val = NoisePairDataset(self.val_pool, 128, cfg.seed + 1, scale, cfg.family_probability, 1.0)
        self.val_pairs = [val.pair(i) for i in range(4 * len(self.val_pool))]
        self.judge = frozen_restorer(cfg.restorer, cfg.channels_last) if cfg.restorer else None
        if cfg.w_restored and self.judge is None:
            raise ValueError("w_restored > 0 needs a restorer to judge through (restorer: res-s or a .safetensors)")
        # What the frozen restorer makes of each noise-free crop, and the noisy crop's score through it, never
        # change between validations: worked out once.
        self.val_judged: list[np.ndarray] = []
        self.judge_scores: dict[str, float] = {}
        if self.judge is not None:
            with torch.no_grad():
                self.val_judged = [_hwc(self.judge(to_chw(t)[None])) for _, t in self.val_pairs]
                self.judge_scores["restored_input_psnr"] = float(np.mean(
                    [psnr(_hwc(self.judge(to_chw(n)[None])), want)
                     for (n, _), want in zip(self.val_pairs, self.val_judged)]))

    def describe(self) -> str:
        return (f"{len(self.train_pool)} training, {len(self.val_pool)} validation photographs "
                f"({', '.join(p.path.name for p in self.val_pool)})")

    def train_step(self, noisy: torch.Tensor, target: torch.Tensor) -> dict[str, float]:  # type: ignore[override]
        self.set_lr()
        if self.cfg.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        fov = (target.amax(dim=1, keepdim=True) > 0).to(target.dtype)
        out = self.model(noisy)
        pixel = charbonnier(out * fov, target * fov)
        terms = {"pixel": pixel}
        loss = self.cfg.w_pixel * pixel
        if self.judge is not None and self.cfg.w_restored:
            with torch.no_grad():
                want = self.judge(target)
            got = self.judge(out)
            # Pixels and their Laplacians: the fine texture a restorer draws from residual noise is what a vessel
            # filter mistakes for vessels, and a pixel difference alone barely sees it.
            terms["restored"] = charbonnier(got * fov, want * fov) + edge_loss(got * fov, want * fov)
            loss = loss + self.cfg.w_restored * terms["restored"]
        self.optimise(loss)
        return self.end_step(loss, terms)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR against the noise-free target, of the denoised and of the noisy crops (mean over crops); with a
        restorer to judge through, the same of the restorer's outputs against its output of the target."""
        ours, theirs, restored = [], [], []
        for k, (noisy, target) in enumerate(self.val_pairs):
            y = self.ema(to_chw(noisy)[None])
            ours.append(psnr(_hwc(y), target))
            theirs.append(psnr(noisy, target))
            if self.judge is not None:
                restored.append(psnr(_hwc(self.judge(y)), self.val_judged[k]))
        figures = {"psnr": float(np.mean(ours)), "input_psnr": float(np.mean(theirs))}
        if restored:
            figures.update(restored_psnr=float(np.mean(restored)), **self.judge_scores)
        return figures

    def ema_metadata(self) -> dict[str, Any]:
        return self.weights_metadata(self.model_kwargs, trained_on="real degradations with and without sensor noise",
                                     validation_photographs=[p.path.name for p in self.val_pool])
