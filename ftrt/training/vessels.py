"""``ftrt train vessels``: the vessel segmenter (``vessel-s``) on clean annotated photographs.

It is the judge of the restorer's vessel-map term, so it learns from clean photographs only: vessels a
degradation hides must be vessels it cannot find. Validation is Dice on annotated photographs it never
trained on (``val_images`` of them, held out by the seed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ftrt.metrics import dice
from ftrt.models import build_model
from ftrt.models.registry import preset_kwargs
from ftrt.training.config import VesselConfig
from ftrt.training.data import (
    FundusImage,
    attach_vessels,
    augment,
    load_pool_logged,
    random_crop_in_fov,
    rescale,
    split_pool,
    to_chw,
    vessels_at,
)
from ftrt.training.loop import TrainingRun
from ftrt.training.losses import vessel_loss


class VesselCropDataset(Dataset):
    """(clean crop, its vessel annotation) at a random scale, flip and rotation; sample i depends on i only."""

    def __init__(self, pool: list[FundusImage], crop: int, seed: int, scale_range: tuple[float, float]) -> None:
        if not pool:
            raise ValueError("no annotated training photographs")
        self.pool, self.crop, self.seed, self.scale_range = pool, crop, seed, scale_range

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 5, int(index)])
        item = self.pool[int(rng.integers(len(self.pool)))]
        clean, mask = rescale(item, rng, self.scale_range)
        ves = vessels_at(item, clean.shape[:2])
        crop = min(self.crop, *clean.shape[:2])
        y0, x0 = random_crop_in_fov(rng, mask, crop)
        sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        img, ves_c = augment(rng, (clean * mask[..., None])[sl], ves[sl][..., None])
        return to_chw(img), to_chw(ves_c)


class VesselTrainer(TrainingRun):
    def __init__(self, cfg: VesselConfig, log: Callable[[str], None] = print) -> None:
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.model_kwargs = preset_kwargs(cfg.model)
        super().__init__(cfg, build_model(cfg.model, **self.model_kwargs), log)
        pool = load_pool_logged(cfg.data, cfg.max_side, log)
        attach_vessels(pool, cfg.vessel_masks)
        pool = [p for p in pool if p.vessels is not None]
        if len(pool) <= cfg.val_images:
            raise ValueError(f"{len(pool)} training photographs have a vessel annotation: too few (set vessel_masks)")
        self.train_pool, self.val_pool = split_pool(pool, cfg.val_images, cfg.seed)
        self.dataset = VesselCropDataset(self.train_pool, cfg.crop, cfg.seed, (cfg.scale_min, cfg.scale_max))

    def describe(self) -> str:
        return (f"{len(self.train_pool)} annotated training, {len(self.val_pool)} validation photographs "
                f"({', '.join(p.path.name for p in self.val_pool)})")

    def train_step(self, img: torch.Tensor, ves: torch.Tensor) -> dict[str, float]:  # type: ignore[override]
        self.set_lr()
        loss = vessel_loss(self.model.forward_all(img), ves)  # type: ignore[operator]
        self.optimise(loss)
        return self.end_step(loss, {"seg": loss})

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Dice at probability 0.5 inside the FOV, mean over the held-out photographs."""
        scores = []
        for item in self.val_pool:
            x = torch.from_numpy(np.ascontiguousarray((item.float() * item.mask[..., None]).transpose(2, 0, 1)))
            prob = self.ema(x[None].float())[0, 0].numpy()
            assert item.vessels is not None
            scores.append(dice((prob > 0.5) & item.mask, item.vessels & item.mask))
        return {"dice": float(np.mean(scores))} if scores else {}

    def ema_metadata(self) -> dict[str, Any]:
        return self.weights_metadata(self.model_kwargs, trained_on="clean photographs with vessel annotations",
                                     validation_photographs=[p.path.name for p in self.val_pool])

    def finish(self) -> dict[str, Any]:
        result = super().finish()
        write_card(self.out)  # reads last/state.json, which run() saved at the final step
        return result


def write_card(run_dir: Path) -> dict[str, Any]:
    """``RUN/card.json``, what ``ftrt.training.card.ship`` copies beside the weights: what the segmenter is
    for, what it learnt from and how well it finds vessels on annotated photographs it never saw."""
    from ftrt.models.pretrained import read_metadata

    meta = read_metadata(run_dir / "final.safetensors")
    state = json.loads((run_dir / "last" / "state.json").read_text())
    cfg = state["config"]
    card = {
        "preset": meta["preset"], "kwargs": meta["kwargs"], "parameters": meta["parameters"],
        "ftrt_version": meta.get("ftrt_version"),
        "task": "vessel segmentation of clean fundus photographs; the judge of the restorer's vessel-map loss "
                "(losses.vessel_map_loss), not a clinical segmenter",
        "input": meta["input"],
        "training": {"data": cfg["data"], "annotations": cfg["vessel_masks"], "steps": meta["steps"],
                     "batch_size": cfg["batch_size"], "crop": cfg["crop"], "max_side": cfg["max_side"],
                     "scale_range": [cfg["scale_min"], cfg["scale_max"]], "lr": cfg["lr"],
                     "loss": "binary cross-entropy at 4 scales against the area-averaged annotation",
                     "seed": cfg["seed"], "train_seconds": meta["train_seconds"]},
        "validation": {"photographs": meta["validation_photographs"],
                       "metric": "Dice at probability 0.5 inside the FOV, mean over the held-out photographs",
                       **meta["validation"]},
        "validation_history": state.get("history", []),
    }
    (run_dir / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card
