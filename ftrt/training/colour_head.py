"""Fit a restorer's global colour head to one camera, on whole photographs, with the network frozen.

The head maps FOV statistics of a whole photograph to one gain and offset per channel. Patch
training sees crops, whose statistics are not those of the photograph the runtime feeds it; here
every sample is a whole degraded photograph at the model's working size. Only the head (9 k
parameters) learns, so the frozen network's parts are computed once per sample and the whole fit
takes minutes: a clinic can calibrate the shipped model to its camera from a folder of its own good
photographs on a CPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from ftrt.degrade import degrade
from ftrt.metrics import psnr
from ftrt.models.pretrained import read_metadata, resolve_weights
from ftrt.models.registry import PRESETS, build_model
from ftrt.models.unet import DenseUNet, apply_colour, fov_statistics
from ftrt.training.checkpoint import save_weights
from ftrt.training.data import FundusImage, load_pool_logged, split_pool, to_chw
from ftrt.training.losses import pixel_loss
from ftrt.training.restorer import load_init


@dataclass
class ColourHeadConfig:
    init: str = "res-s"
    data: list[str] = field(default_factory=list)
    out: str = "runs/colour-head"
    kind: str = "real"  # the restorer's training family: cofe and cataract stay held out for the benchmark
    work_side: int = 0  # 0: the model's own working size
    samples: int = 24  # degraded versions of each photograph
    steps: int = 400
    batch_size: int = 16
    lr: float = 3e-4
    val_images: int = 4
    seed: int = 0
    # Shift each channel only, no gain: a gain fitted by the pixel loss to colours it cannot know exactly shrinks
    # towards a flatter photograph (green spread 11-29 % down on DRIVE, vessels lost in the 8-bit file).
    offset_only: bool = False


@dataclass
class _Sample:
    x: torch.Tensor  # degraded input, 1x3xHxW
    coef: torch.Tensor  # the affine head's local coefficients, 1x6xHxW
    stats: torch.Tensor  # the global head's input, 1xCx1x1
    residual: torch.Tensor  # the decoder's fine residual, 1x3xHxW
    target: torch.Tensor
    mask: torch.Tensor  # 1x1xHxW

    def output(self, head: torch.nn.Module) -> torch.Tensor:
        return (apply_colour(self.x, self.coef + head(self.stats)) + self.residual) * self.mask


@torch.no_grad()
def frozen_parts(model: DenseUNet, images: list[FundusImage], cfg: ColourHeadConfig, stream: int,
                 progress: bool) -> list[_Sample]:
    """Degrade each photograph ``cfg.samples`` times and keep what the frozen network computes of it."""
    out = []
    jobs = [(i, k) for i in range(len(images)) for k in range(cfg.samples)]
    for i, k in tqdm(jobs, disable=not progress, desc="frozen network"):
        im = images[i]
        clean = im.float() * im.mask[..., None]
        lq, _ = degrade(clean, cfg.kind, np.random.default_rng([cfg.seed, stream, i, k]), mask=im.mask)
        x = to_chw(lq)[None]
        h, w = x.shape[-2:]
        xp = model.pad(x)
        feat, skips = model.encode(xp)
        crop = (..., slice(0, h), slice(0, w))
        out.append(_Sample(x, model.local_colour(feat)[crop], fov_statistics(xp, feat, model.pad_multiple),
                           model.decode(feat, skips)[crop], to_chw(clean)[None], to_chw(im.mask[..., None])[None]))
    return out


def _mean_psnr(head: torch.nn.Module, samples: list[_Sample]) -> float:
    with torch.no_grad():
        vals = [psnr(s.output(head)[0].permute(1, 2, 0).clamp(0, 1).numpy(), s.target[0].permute(1, 2, 0).numpy(),
                     s.mask[0, 0].numpy() > 0) for s in samples]
    return float(np.mean(vals))


def _hold_gain_at_zero(head: torch.nn.Sequential) -> None:
    """Zero the head's gain outputs (its last layer's first three channels; ftrt.models.unet.apply_colour) and keep
    them there: their gradients are masked, and Adam leaves a parameter with zero gradients where it is."""
    last = head[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.out_channels == 6
    keep = torch.ones_like(last.bias)
    keep[:3] = 0
    with torch.no_grad():
        last.weight.mul_(keep.view(-1, 1, 1, 1))
        last.bias.mul_(keep)
    last.weight.register_hook(lambda g: g * keep.view(-1, 1, 1, 1))
    last.bias.register_hook(lambda g: g * keep)


def fit_colour_head(cfg: ColourHeadConfig, progress: bool = True,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit (or add and fit) the global colour head of ``cfg.init``; writes ``OUT/final.safetensors``."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    # Only the metadata here: load_init below loads the weights (once).
    meta = read_metadata(resolve_weights(cfg.init))
    if meta.get("preset") not in PRESETS:
        raise ValueError(f"{cfg.init!r}: metadata names no known preset")
    kwargs = {**meta.get("kwargs", {}), "global_head": True}
    if not kwargs.get("affine_head"):
        raise ValueError(f"{cfg.init!r} has no affine head: the global colour head refines it")
    model = build_model(meta["preset"], **kwargs)
    assert isinstance(model, DenseUNet)
    load_init(model, cfg.init, meta["preset"], kwargs)
    model.eval()
    assert model.global_head is not None
    side = cfg.work_side or int(meta.get("work_side") or 0)
    if not side:
        raise ValueError("no working size: give work_side (the model's weights do not name one)")
    train, val = split_pool(load_pool_logged(cfg.data, side, log), cfg.val_images, cfg.seed)
    if not train:
        raise ValueError("no usable training photographs")
    log(f"{len(train)} training, {len(val)} validation photographs at {side} px, {cfg.samples} degradations each")
    train_set = frozen_parts(model, train, cfg, 0, progress)
    val_set = frozen_parts(model, val, cfg, 1, progress)
    head = model.global_head
    if cfg.offset_only:
        _hold_gain_at_zero(head)
    history = [{"step": 0, "val_psnr": _mean_psnr(head, val_set)}] if val_set else []
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    batch = min(cfg.batch_size, len(train_set))
    for step in tqdm(range(1, cfg.steps + 1), disable=not progress, desc="colour head"):
        picks = rng.choice(len(train_set), batch, replace=False)
        loss = torch.stack([pixel_loss(train_set[j].output(head), train_set[j].target) for j in picks]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if val_set:
        history.append({"step": cfg.steps, "val_psnr": _mean_psnr(head, val_set)})
        log(f"validation PSNR {history[0]['val_psnr']:.2f} -> {history[-1]['val_psnr']:.2f} dB")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    new_meta = {**meta, "kwargs": kwargs, "parameters": sum(p.numel() for p in model.parameters()),
                "colour_head": {**asdict(cfg), "seconds": round(time.perf_counter() - t0, 1), "history": history}}
    for key in ("card_id", "name"):
        new_meta.pop(key, None)
    final = out / "final.safetensors"
    save_weights(final, {k: v.contiguous() for k, v in model.state_dict().items()}, new_meta)
    (out / "colour_head.json").write_text(json.dumps(new_meta["colour_head"], indent=2))
    return {"weights": str(final), "history": history, "seconds": new_meta["colour_head"]["seconds"]}
