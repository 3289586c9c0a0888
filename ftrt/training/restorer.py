"""``ftrt train restorer``: paired training of the restoration generator on synthetic degradations."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ftrt import __version__
from ftrt.metrics import psnr, ssim
from ftrt.models import build_model, count_parameters
from ftrt.models.pretrained import restore_array
from ftrt.models.registry import preset_kwargs
from ftrt.training.checkpoint import load_training_state, save_training_state, save_weights
from ftrt.training.config import RestorerConfig
from ftrt.training.data import PairedDegradationDataset, load_pool, make_validation_set, split_pool
from ftrt.training.ema import make_ema, update_ema
from ftrt.training.losses import (
    PerceptualLoss,
    gan_discriminator_loss,
    gan_generator_loss,
    pixel_loss,
)
from ftrt.training.schedule import lr_at


def fundus_feature_extractor(model_ref: str, depth: int) -> torch.nn.Module:
    """The fundus perceptual loss's network: a trained readability classifier's first ``depth`` stages."""
    from ftrt.models.pretrained import load_model
    from ftrt.models.readability import FeatureExtractor, ReadabilityNet

    net, meta = load_model(model_ref)
    if not isinstance(net, ReadabilityNet):
        raise ValueError(f"perceptual_model {model_ref!r} is a {meta.get('preset')} model, not a readability "
                         "classifier")
    return FeatureExtractor(net, depth)


def validate(model: torch.nn.Module, val_set: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, float]:
    ps, ss = [], []
    for lq, gt, mask in val_set:
        out = restore_array(model, lq) * mask[..., None]
        ps.append(psnr(out, gt, mask))
        ss.append(ssim(out, gt, mask))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))} if ps else {}


class RestorerTrainer:
    """Owns model, EMA, optimiser and data for one run; ``run()`` trains to ``cfg.steps``."""

    def __init__(self, cfg: RestorerConfig, perceptual: torch.nn.Module | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.out = Path(cfg.out)
        self.model_kwargs = preset_kwargs(cfg.model, **({"affine_head": True} if cfg.affine_head else {}))
        self.model = build_model(cfg.model, **self.model_kwargs)
        self.ema = make_ema(self.model)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                                    weight_decay=cfg.weight_decay)
        if perceptual is None and cfg.w_perceptual:
            perceptual = fundus_feature_extractor(cfg.perceptual_model, cfg.perceptual_depth)
        self.perceptual = PerceptualLoss(perceptual) if (perceptual is not None and cfg.w_perceptual) else None
        self.disc = build_model("patch-d") if cfg.w_gan else None
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.99)) if self.disc else None
        pool, errors = load_pool(cfg.data, cfg.max_side)
        for e in errors:
            log(f"warning: {e}")
        train, val = split_pool(pool, cfg.val_images, cfg.seed)
        self.dataset = PairedDegradationDataset(train, cfg.kind, cfg.crop, cfg.seed)
        self.val_set = make_validation_set(val, cfg.kind, cfg.seed)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.n_train, self.n_val = len(train), len(val)

    def resume(self, directory: str | Path) -> None:
        extra = {"disc": self.disc} if self.disc is not None else None
        state = load_training_state(directory, self.model, self.ema, self.opt, extra)
        self.step = int(state["step"])
        self.history = state.get("history", [])
        self.elapsed = float(state.get("elapsed_s", 0.0))

    def save(self) -> Path:
        extra = {"disc": self.disc} if self.disc is not None else None
        state = {"step": self.step, "config": dataclasses.asdict(self.cfg), "history": self.history,
                 "elapsed_s": self.elapsed}
        return save_training_state(self.out / "last", self.model, self.ema, self.opt, state, extra)

    def train_step(self, lq: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg.lr, cfg.min_lr, cfg.warmup, cfg.steps)
        n_id = max(1, int(round(cfg.identity_fraction * gt.shape[0]))) if cfg.w_identity else 0
        # Identity samples ride in the same forward pass: one batched call is cheaper than two.
        x = torch.cat([lq, gt[:n_id]]) if n_id else lq
        y = self.model(x)
        pred, ident = y[: lq.shape[0]], y[lq.shape[0]:]
        terms = {"pixel": pixel_loss(pred, gt)}
        if n_id:
            terms["identity"] = pixel_loss(ident, gt[:n_id])
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(pred, gt)
        if self.disc is not None:
            terms["gan"] = gan_generator_loss(self.disc(pred))
        weights = {"pixel": cfg.w_pixel, "identity": cfg.w_identity, "perceptual": cfg.w_perceptual,
                   "gan": cfg.w_gan}
        loss = sum(weights[k] * v for k, v in terms.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        if self.disc is not None and self.opt_d is not None:
            d_loss = gan_discriminator_loss(self.disc(gt), self.disc(pred.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            terms["disc"] = d_loss
        update_ema(self.ema, self.model, cfg.ema_decay, self.step)
        self.step += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    def loader(self, until: int | None = None) -> DataLoader:
        cfg = self.cfg
        indices = range(self.step * cfg.batch_size, (until or cfg.steps) * cfg.batch_size)
        return DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.workers,
                          persistent_workers=False)

    def run(self, progress: bool = True, until: int | None = None) -> dict[str, Any]:
        """Train to ``cfg.steps`` (or stop early at ``until``, leaving a resumable checkpoint)."""
        cfg = self.cfg
        until = min(until or cfg.steps, cfg.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        self.log(f"{cfg.model}: {count_parameters(self.model):,} parameters; {self.n_train} training, "
                 f"{self.n_val} validation images; steps {self.step}->{cfg.steps}")
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"train {cfg.model}")
        log_file = (self.out / "log.jsonl").open("a")
        t_last = time.perf_counter()
        self.model.train()
        for lq, gt in self.loader(until):
            rec = self.train_step(lq, gt)
            now = time.perf_counter()
            self.elapsed += now - t_last
            t_last = now
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                log_file.write(json.dumps({"step": self.step, "elapsed_s": round(self.elapsed, 1), **rec}) + "\n")
                log_file.flush()
            if self.val_set and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                metrics = validate(self.ema, self.val_set)
                self.history.append({"step": self.step, **metrics})
                bar.write(f"step {self.step}: val PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
                t_last = time.perf_counter()
            if self.step % cfg.save_every == 0 or self.step in (cfg.steps, until):
                self.save()
                t_last = time.perf_counter()
        bar.close()
        log_file.close()
        if self.step < cfg.steps:
            return {"step": self.step, "checkpoint": str(self.out / "last")}
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Write the EMA weights as a self-describing safetensors file (what `ftrt export` and restore load)."""
        cfg = self.cfg
        meta = {
            "preset": cfg.model,
            "kwargs": self.model_kwargs,
            "ftrt_version": __version__,
            "steps": self.step,
            "train_seconds": round(self.elapsed, 1),
            "kind": cfg.kind,
            "validation": self.history[-1] if self.history else {},
            "parameters": count_parameters(self.model),
            "input": {"range": [0.0, 1.0], "channels": "RGB", "layout": "NCHW",
                      "pad_multiple": int(self.model.pad_multiple)},
            # The scale the model learnt at: the runtime restores at this FOV size by default.
            "work_side": cfg.max_side,
        }
        final = self.out / "final.safetensors"
        save_weights(final, self.ema.state_dict(), meta)
        return {"weights": str(final), **meta}
