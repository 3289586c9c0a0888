"""The loop every ftrt generator trainer shares: schedule, progress, JSON log, validation, resumable checkpoints."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ftrt import __version__
from ftrt.models import count_parameters
from ftrt.training.checkpoint import load_training_state, save_training_state, save_weights
from ftrt.training.ema import make_ema, update_ema
from ftrt.training.losses import PerceptualLoss, fundus_feature_extractor, gan_discriminator_loss
from ftrt.training.schedule import lr_at


class TrainingRun:
    """Subclasses build ``model``, ``extra`` (e.g. a discriminator) and ``dataset`` (indexable by global
    sample index) and define ``train_step``, ``validate`` and ``finish``; ``run()`` does the rest.

    ``cfg`` needs: model, out, steps, lr, min_lr, warmup, log_every, val_every, save_every.
    """

    def __init__(self, cfg: Any, model: torch.nn.Module, log: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.log = log
        self.out = Path(cfg.out)
        self.model = model
        self.ema = make_ema(model)
        self.opt = torch.optim.Adam(self.param_groups(model), lr=cfg.lr, betas=(0.9, 0.99),
                                    weight_decay=getattr(cfg, "weight_decay", 0.0))
        self.extra: dict[str, torch.nn.Module] = {}
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0

    dataset: Dataset

    # -- what subclasses provide
    def train_step(self, *batch: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        return {}

    def finish(self) -> dict[str, Any]:
        """Write the EMA weights as a self-describing safetensors file (what `ftrt export` and restore load);
        trainers whose EMA records no metadata (``ema_metadata`` None) write their own result."""
        meta = self.ema_metadata()
        if meta is None:
            raise NotImplementedError
        return {"weights": str(self.save_final(meta)), **meta}

    def save_final(self, meta: dict[str, Any]) -> Path:
        """``OUT/final.safetensors``: the EMA weights with ``meta``."""
        final = self.out / "final.safetensors"
        save_weights(final, self.ema.state_dict(), meta)
        return final

    def describe(self) -> str:
        return ""

    def ema_metadata(self) -> dict[str, Any] | None:
        """What the EMA weights file records about its model (None: a bare checkpoint)."""
        return None

    # -- shared
    def loader(self, until: int | None = None) -> DataLoader:
        """Batches from the current step to ``until`` (default: the last step): sample i is a pure function
        of i, so a resumed run sees the samples the uninterrupted one would have."""
        cfg = self.cfg
        indices = range(self.step * cfg.batch_size, (until or cfg.steps) * cfg.batch_size)
        return DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.workers,
                          persistent_workers=False)

    def perceptual_loss(self, extractor: torch.nn.Module | None) -> PerceptualLoss | None:
        """The fundus perceptual loss when ``cfg.w_perceptual`` is on: ``extractor`` (tests pass a small one)
        or the configured readability model's first stages."""
        cfg = self.cfg
        if not cfg.w_perceptual:
            return None
        if extractor is None:
            extractor = fundus_feature_extractor(cfg.perceptual_model, cfg.perceptual_depth)
        return PerceptualLoss(extractor)

    def weights_metadata(self, model_kwargs: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """What every ftrt weights file records about its model and run; ``extra`` adds the trainer's own."""
        return {
            "preset": self.cfg.model,
            "kwargs": model_kwargs,
            "ftrt_version": __version__,
            "steps": self.step,
            "train_seconds": round(self.elapsed, 1),
            "validation": self.history[-1] if self.history else {},
            "parameters": count_parameters(self.model),
            "input": {"range": [0.0, 1.0], "channels": "RGB", "layout": "NCHW",
                      "pad_multiple": int(getattr(self.model, "pad_multiple", 1))},
            **extra,
        }

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """The optimizer's groups. Only what trains: a run may freeze parts first (the latent-diffusion phases). A
        group's ``lr_scale`` (default 1) multiplies the schedule's rate for it."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def set_lr(self) -> None:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = g.get("lr_scale", 1.0) * lr_at(self.step, cfg.lr, cfg.min_lr, cfg.warmup, cfg.steps)

    def optimise(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()

    @staticmethod
    def critic_step(disc: torch.nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor,
                    fake: torch.Tensor) -> torch.Tensor:
        """One least-squares discriminator update on real vs (detached) generated images."""
        loss = gan_discriminator_loss(disc(real), disc(fake.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def end_step(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """EMA update, step count, and the step's record of every loss term."""
        update_ema(self.ema, self.model, self.cfg.ema_decay, self.step)
        self.step += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    def resume(self, directory: str | Path) -> None:
        state = load_training_state(directory, self.model, self.ema, self.opt, self.extra or None)
        self.step = int(state["step"])
        self.history = state.get("history", [])
        self.elapsed = float(state.get("elapsed_s", 0.0))

    def resume_run(self) -> None:
        """Continue the run in ``cfg.out`` from its last checkpoint (``--resume``)."""
        last = self.out / "last"
        if not (last / "state.json").exists():
            raise ValueError(f"--resume: no checkpoint in {last}")
        self.resume(last)

    def save(self) -> Path:
        state = {"step": self.step, "config": dataclasses.asdict(self.cfg), "history": self.history,
                 "elapsed_s": self.elapsed}
        return save_training_state(self.out / "last", self.model, self.ema, self.opt, state, self.extra or None,
                                   ema_metadata=self.ema_metadata())

    def snapshot(self) -> Path:
        """The EMA weights at this validation step, kept in ``OUT/snapshots`` (``last`` moves on): the shipped
        checkpoint is chosen afterwards by validation on held-out photographs, not taken from the last step."""
        path = self.out / "snapshots" / f"ema-{self.step:06d}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_weights(path, self.ema.state_dict(), self.ema_metadata())
        return path

    def run(self, progress: bool = True, until: int | None = None) -> dict[str, Any]:
        """Train to ``cfg.steps`` (or stop early at ``until``, leaving a resumable checkpoint)."""
        cfg = self.cfg
        until = min(until or cfg.steps, cfg.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        self.log(f"{cfg.model}: {count_parameters(self.model):,} parameters; {self.describe()}; "
                 f"steps {self.step}->{cfg.steps}")
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"train {cfg.model}")
        t_last = time.perf_counter()
        self.model.train()
        with (self.out / "log.jsonl").open("a") as log_file:
            for batch in self.loader(until):
                rec = self.train_step(*batch)
                now = time.perf_counter()
                self.elapsed += now - t_last
                t_last = now
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    log_file.write(json.dumps({"step": self.step, "elapsed_s": round(self.elapsed, 1), **rec}) + "\n")
                    log_file.flush()
                if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                    metrics = self.validate()
                    if metrics:
                        self.history.append({"step": self.step, **metrics})
                        bar.write(f"step {self.step}: " + ", ".join(f"val {k} {v:.4f}" for k, v in metrics.items()))
                    self.snapshot()
                    t_last = time.perf_counter()
                if self.step % cfg.save_every == 0 or self.step in (cfg.steps, until):
                    self.save()
                    t_last = time.perf_counter()
        bar.close()
        if self.step < cfg.steps:
            return {"step": self.step, "checkpoint": str(self.out / "last")}
        return self.finish()
