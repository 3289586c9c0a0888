"""``ftrt train vae`` and ``ftrt train ldm --phase reconstruct|adapt``: latent-diffusion restoration.

Yang et al.'s split: the autoencoder and the latent denoiser first learn to *reconstruct* photographs of any
quality (no pairs needed); *adaptation* then trains only the small enhancement adaptors on pairs of one
degradation (here ftrt's physical families), so a new camera or degradation costs few parameters and steps.
"""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ftrt.metrics import psnr, ssim
from ftrt.models import build_model, count_parameters
from ftrt.models.ldm import Adaptor, FundusVAE, LatentDiffusionRestorer
from ftrt.models.pretrained import load_model, restore_array
from ftrt.models.registry import preset_kwargs
from ftrt.runtime.sampler import TRAIN_STEPS, alphas_cumprod
from ftrt.training.config import LdmConfig, VaeConfig
from ftrt.training.data import (
    PairedDegradationDataset,
    RealCropDataset,
    ZipDataset,
    load_pool_logged,
    make_validation_set,
    split_pool,
)
from ftrt.training.loop import TrainingRun
from ftrt.training.restorer import validate
from ftrt.training.losses import edge_loss

PHASES = ("reconstruct", "adapt")


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent element."""
    return 0.5 * torch.mean(mean * mean + logvar.exp() - 1.0 - logvar)


def _pool(cfg: Any, log: Callable[[str], None]) -> tuple[list[Any], list[Any]]:
    pool = load_pool_logged(cfg.data, cfg.max_side, log)
    if not pool:
        raise ValueError("no usable training images")
    return split_pool(pool, cfg.val_images, cfg.seed)


def _small(triples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], side: int) -> list[tuple[np.ndarray, ...]]:
    """Validation photographs at ``side`` px (long side): sampling a few latents per validation stays cheap."""
    out = []
    for lq, gt, mask in triples:
        s = side / max(lq.shape[:2])
        if s < 1:
            size = (round(lq.shape[1] * s), round(lq.shape[0] * s))
            lq, gt = (cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in (lq, gt))
            mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        out.append((lq, gt, mask))
    return out


class VaeTrainer(TrainingRun):
    def __init__(self, cfg: VaeConfig, log: Callable[[str], None] = print) -> None:
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.model_kwargs = preset_kwargs(cfg.model)
        super().__init__(cfg, build_model(cfg.model, **self.model_kwargs), log)
        train, val = _pool(cfg, log)
        # ZipDataset: a 1-tuple per sample, so the loader's batch arrives as one argument.
        self.dataset = ZipDataset(RealCropDataset(train, cfg.crop, cfg.seed))
        self.val = [(item.float() * item.mask[..., None], item.mask) for item in val]
        self.n_train = len(train)

    def describe(self) -> str:
        return f"{self.n_train} training, {len(self.val)} validation photographs (unpaired, any quality)"

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        self.set_lr()
        vae: FundusVAE = self.model  # type: ignore[assignment]
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        logits = vae.decode_logits(z)[:, :, : x.shape[-2], : x.shape[-1]]
        terms = {"bce": F.binary_cross_entropy_with_logits(logits, x), "kl": kl_loss(mean, logvar)}
        if cfg.w_edge:
            terms["edge"] = edge_loss(torch.sigmoid(logits), x)
        loss = terms["bce"] + cfg.w_kl * terms["kl"] + cfg.w_edge * terms.get("edge", torch.zeros(()))
        self.optimise(loss)
        return self.end_step(loss, terms)

    def validate(self) -> dict[str, float]:
        rows = []
        for img, m in self.val:
            out = restore_array(self.ema, img) * m[..., None]
            rows.append((psnr(out, img, m), ssim(out, img, m)))
        return {"psnr": float(np.mean([r[0] for r in rows])), "ssim": float(np.mean([r[1] for r in rows]))} if rows else {}

    def ema_metadata(self) -> dict[str, Any]:
        return self.weights_metadata(self.model_kwargs, work_side=self.cfg.max_side)


def set_adaptors(model: torch.nn.Module, enabled: bool) -> None:
    """Adaptors on or off (off: exactly the reconstruction-phase network, for the clean target latent)."""
    for m in model.modules():
        if isinstance(m, Adaptor):
            m.enabled = enabled


class LdmTrainer(TrainingRun):
    def __init__(self, cfg: LdmConfig, log: Callable[[str], None] = print) -> None:
        if cfg.phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}, not {cfg.phase!r}")
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.model_kwargs = preset_kwargs(cfg.model)
        model: LatentDiffusionRestorer = build_model(cfg.model, **self.model_kwargs)  # type: ignore[assignment]
        train, val = _pool(cfg, log)
        if cfg.phase == "reconstruct":
            self._start_reconstruction(model, cfg, train)
            self.dataset: Any = ZipDataset(RealCropDataset(train, cfg.crop, cfg.seed))
        else:
            if not cfg.init:
                raise ValueError("--phase adapt starts from the reconstruction phase's weights: give --init")
            init, meta = load_model(cfg.init)
            if meta.get("preset") != cfg.model:
                raise ValueError(f"--init {cfg.init}: a {meta.get('preset')} model, not {cfg.model}")
            model.load_state_dict(init.state_dict())
            model.set_adaptation(True)
            self.dataset = PairedDegradationDataset(train, cfg.kind, cfg.crop, cfg.seed)
        super().__init__(cfg, model, log)
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        log(f"{cfg.phase}: {self.trainable:,} trainable parameters of {count_parameters(model):,}")
        self.ac = torch.tensor(alphas_cumprod(), dtype=torch.float32)
        self.val_set = _small(make_validation_set(val, cfg.val_kind, cfg.seed), cfg.val_side)
        self.n_train = len(train)

    @staticmethod
    def _start_reconstruction(model: LatentDiffusionRestorer, cfg: LdmConfig, train: list[Any]) -> None:
        """The trained VAE and readability network in, the latent scale measured on training crops, and everything
        but the denoiser frozen."""
        if not cfg.vae:
            raise ValueError("--phase reconstruct needs the trained autoencoder: give --vae (ftrt train vae)")
        vae, meta = load_model(cfg.vae)
        if not isinstance(vae, FundusVAE) or meta.get("kwargs") != preset_kwargs(cfg.model)["vae"]:
            raise ValueError(f"--vae {cfg.vae}: not a fundus-vae of this model's size ({meta.get('kwargs')})")
        model.vae.load_state_dict(vae.state_dict())
        feats, fmeta = load_model(cfg.features_model)
        if fmeta.get("preset") != "readability":
            raise ValueError(f"--features-model {cfg.features_model}: a {fmeta.get('preset')} model, not the "
                             "edge-backbone readability classifier")
        model.features.net.load_state_dict(feats.state_dict())
        crops = RealCropDataset(train, cfg.crop, cfg.seed + 1)
        with torch.no_grad():
            z = torch.cat([model.vae.encode(crops[i][None])[0] for i in range(min(32, 4 * len(train)))])
        model.latent_scale.fill_(float(1.0 / z.std().clamp_min(1e-3)))
        # Only the denoiser trains here: the VAE and the readability network are frozen, the adaptors wait for
        # the adaptation phase.
        for p in [*model.vae.parameters(), *model.features.parameters(),
                  *(q for a in model.adaptors() for q in a.parameters())]:
            p.requires_grad_(False)

    def describe(self) -> str:
        return f"phase {self.cfg.phase}, {self.n_train} training photographs, {len(self.val_set)} validation pairs"

    def _encode(self, x: torch.Tensor, adapted: bool) -> torch.Tensor:
        m: LatentDiffusionRestorer = self.model  # type: ignore[assignment]
        set_adaptors(m, adapted)
        try:
            return m.vae.encode(x)[0] * m.latent_scale
        finally:
            set_adaptors(m, True)

    def train_step(self, *batch: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        self.set_lr()
        m: LatentDiffusionRestorer = self.model  # type: ignore[assignment]
        adapt = cfg.phase == "adapt"
        lq, gt = (batch[0], batch[1]) if adapt else (batch[0], batch[0])
        n = gt.shape[0]
        with torch.no_grad():
            z0 = self._encode(gt, adapted=False)
            feats = m.features(lq)
        terms: dict[str, torch.Tensor] = {}
        if adapt:
            cond = self._encode(lq, adapted=True)
            terms["latent"] = F.l1_loss(cond, z0)
        else:
            cond = z0 * (torch.rand(n, 1, 1, 1) >= cfg.cond_dropout).to(z0.dtype)
        t = torch.randint(0, TRAIN_STEPS, (n,))
        a = self.ac[t].view(n, 1, 1, 1)
        eps = torch.randn_like(z0)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * eps
        v = m.denoiser(zt, t.float(), cond, feats)
        terms["v"] = F.mse_loss(v, a.sqrt() * eps - (1 - a).sqrt() * z0)
        loss = terms["v"]
        if adapt:
            z0_hat = a.sqrt() * zt - (1 - a).sqrt() * v
            out = m.vae.decode(z0_hat / m.latent_scale)[:, :, : gt.shape[-2], : gt.shape[-1]]
            terms["pixel"] = F.l1_loss(out, gt)
            loss = loss + cfg.w_latent * terms["latent"] + cfg.w_pixel * terms["pixel"]
        self.optimise(loss)
        return self.end_step(loss, terms)

    def validate(self) -> dict[str, float]:
        return validate(self.ema, self.val_set)

    def ema_metadata(self) -> dict[str, Any]:
        return self.weights_metadata(self.model_kwargs, phase=self.cfg.phase, trainable=self.trainable,
                                     kind=self.cfg.kind if self.cfg.phase == "adapt" else None,
                                     work_side=self.cfg.max_side)
