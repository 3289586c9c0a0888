"""``ftrt train refiner``: a detail network behind the shipped restorer, taught on what that restorer really outputs.

Why a second network and not more restorer training: on DRIVE training the restorer keeps losing vessels a
float input still holds under a strong veil (photograph 30: unrounded input Dice 0.681, the restorer on it 0.581),
and seven fine-tuning stages of it were rejected (checkpoints/README.md). Running it twice loses more (`real`
Dice 0.645 -> 0.622), and unsharp masking its output loses too (0.645 -> 0.639 at sigma 1, gain 1): its errors
are its own, so a network learns them from its outputs.

Pairs (``restored_pairs``): each training photograph at a random scale, one ``real`` degradation (or none, for
``identity_fraction`` of them), rounded to 8 bits as a file stores it, through the deployed restorer (ONNX Runtime,
the ``ftrt restore`` pipeline at its working side): (its float output, the clean photograph). They are written once
to ``pairs_dir`` (a resumed run reuses them) because the restorer takes seconds a photograph; ``pairs.json`` there
names the restorer (by SHA-256) and the draw's settings, and a folder another restorer or other settings wrote is
refused rather than trained on.

Loss: the refiner may change detail only. Below ``split_sigma`` the output must keep the restorer's own output
(colour, brightness, illumination: what the restorer decided from the whole photograph, which a crop cannot
see); above it, the output's detail must match the clean photograph's (Charbonnier), and its vessel lines the
clean ones (``ridge_loss``); optionally the restorer's own contrast-match and band terms (configs/rf-m-detail.yaml).

Tried in the fourteenth session and not shipped: both runs lowered the fixed segmenter's Dice on DRIVE training
(they sharpen vessels with a light rim on each side, as an unsharp mask does; docs/models.md, checkpoints/rf-m).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ftrt.degrade import degrade
from ftrt.degrade.physical import check_probability
from ftrt.metrics import psnr
from ftrt.models.denoise import blur
from ftrt.training.config import RefinerConfig
from ftrt.training.data import FundusImage, augment, quantise, random_crop_in_fov, rescale, to_chw
from ftrt.training.denoise import denoiser_network, held_out_pool
from ftrt.training.loop import TrainingRun
from ftrt.training.losses import band_loss, charbonnier, contrast_match_loss, ridge_loss


def pair_path(pairs_dir: Path, index: int, item: FundusImage) -> Path:
    return pairs_dir / f"{index:04d}_{item.path.stem}.npz"


def pairs_manifest(restorer: str, seed: int, scale_range: tuple[float, float], probability: Mapping[str, float],
                   identity_fraction: float) -> dict[str, Any]:
    """What a folder of pairs was written with: the restorer's file (by its SHA-256) and the draw's settings
    (``probability`` as ``check_probability`` returns it)."""
    from ftrt.runtime.models import resolve_model

    digest = hashlib.sha256(resolve_model(restorer, "onnx").read_bytes()).hexdigest()
    return {"restorer": str(restorer), "restorer_sha256": digest, "seed": int(seed),
            "scale_range": [float(v) for v in scale_range],
            "family_probability": {k: float(v) for k, v in sorted(probability.items())},
            "identity_fraction": float(identity_fraction)}


def check_pairs_dir(pairs_dir: Path, manifest: dict[str, Any]) -> None:
    """Refuse a folder whose pairs another restorer or other settings wrote: reused, they would teach the refiner
    someone else's errors without a word. A new folder gets ``pairs.json``."""
    mpath = pairs_dir / "pairs.json"
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{mpath}: unreadable ({exc}); give another pairs_dir or empty this one") from None
        if old != manifest:
            keys = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise ValueError(f"{pairs_dir}: its pairs were written with another {', '.join(keys)}; give another "
                             "pairs_dir or empty this one")
        return
    if any(pairs_dir.glob("*.npz")):
        raise ValueError(f"{pairs_dir}: holds pairs without pairs.json (their restorer and settings are unknown); "
                         "give another pairs_dir or empty this one")
    tmp = mpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(mpath)


def restored_pairs(pool: list[FundusImage], restorer: str, pairs_dir: Path, seed: int,
                   scale_range: tuple[float, float], probability: Mapping[str, float], identity_fraction: float,
                   threads: int, log: Callable[[str], None]) -> list[Path]:
    """Write (clean uint8, restored float16, mask) for each photograph of ``pool`` that has none yet; returns
    every pair's path, in pool order. Photograph i's scale and degradation depend on (seed, its name) only. The
    folder must hold pairs of this restorer and these settings only (``check_pairs_dir``)."""
    from ftrt.runtime import open_pipeline

    pairs_dir.mkdir(parents=True, exist_ok=True)
    probability = check_probability(probability)
    check_pairs_dir(pairs_dir, pairs_manifest(restorer, seed, scale_range, probability, identity_fraction))
    paths = [pair_path(pairs_dir, i, item) for i, item in enumerate(pool)]
    todo = [(i, item) for i, item in enumerate(pool) if not paths[i].exists()]
    if not todo:
        return paths
    pipeline = open_pipeline(restorer, "ort", threads=threads).pipeline
    for n, (i, item) in enumerate(todo):
        rng = np.random.default_rng([seed, 31, *item.path.name.encode()])
        clean, mask = rescale(item, rng, scale_range)
        clean = quantise(clean * mask[..., None], 8)
        lq = clean
        if float(rng.uniform()) >= identity_fraction:
            lq, _ = degrade(clean, "real", rng, mask=mask, probability=probability)
        out = pipeline.restore(quantise(lq, 8) * mask[..., None]).image * mask[..., None]
        tmp = paths[i].with_suffix(".tmp.npz")
        np.savez(tmp, clean=(clean * 255 + 0.5).astype(np.uint8), restored=out.astype(np.float16), mask=mask)
        tmp.replace(paths[i])  # whole files only: a run stopped mid-write leaves no half pair behind
        if n % 20 == 0 or n == len(todo) - 1:
            log(f"restored pairs: {n + 1}/{len(todo)} written ({item.path.name})")
    return paths


def load_pair(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(restored float16, clean uint8, mask) of one written pair: kept as stored, a third of float32's memory."""
    try:
        with np.load(path, allow_pickle=False) as z:
            restored, clean, mask = z["restored"], z["clean"], z["mask"].astype(bool)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable refiner pair ({exc}); delete it to have it written again") from None
    if restored.shape != clean.shape or restored.ndim != 3 or mask.shape != clean.shape[:2]:
        raise ValueError(f"{path}: a refiner pair of mismatched shapes; delete it to have it written again")
    return restored, clean, mask


def as_float(restored: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return restored.astype(np.float32), clean.astype(np.float32) / np.float32(255)


class RefinePairDataset(Dataset):
    """(restored crop, clean crop) CHW tensors from written pairs; sample i depends on i only."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], crop: int, seed: int) -> None:
        if not pairs:
            raise ValueError("no restored pairs to train on")
        self.pairs, self.crop, self.seed = pairs, crop, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 13, int(index)])
        restored, clean, mask = self.pairs[int(rng.integers(len(self.pairs)))]
        crop = min(self.crop, *mask.shape)
        y0, x0 = random_crop_in_fov(rng, mask, crop)
        sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        a, b = augment(rng, *as_float(restored[sl], clean[sl]))
        return to_chw(a), to_chw(b)


def pinball(pred: torch.Tensor, target: torch.Tensor, quantile: float) -> torch.Tensor:
    """The quantile loss: its minimiser is the ``quantile`` of the target's distribution (0.5: half the L1)."""
    d = target - pred
    return torch.maximum(quantile * d, (quantile - 1.0) * d).mean()


def refine_loss(out: torch.Tensor, restored: torch.Tensor, clean: torch.Tensor, split_sigma: float,
                w_keep_low: float, w_ridge: float, w_contrast_match: float = 0.0, contrast_fine_sigma: float = 1.0,
                w_band: float = 0.0, band_sigmas: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0),
                detail_quantile: float = 0.5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total, parts): the refiner's detail against the clean photograph's, its low band against the restorer's,
    and optionally the restorer's own detail terms (local contrast matched both ways, band-pass in place).

    ``detail_quantile`` below 0.5 asks for a low quantile of the clean detail instead of its median (a pinball loss
    in place of Charbonnier): unsure whether a vessel is narrow and dark or wide and faint, the median answer is
    narrow with a bright rim on each side, which the segmenter reads as less vessel; a low quantile errs dark."""
    fov = (clean.amax(dim=1, keepdim=True) > 0).to(clean.dtype)
    low_out, low_clean = blur(out, split_sigma), blur(clean, split_sigma)
    if detail_quantile == 0.5:
        detail = charbonnier((out - low_out) * fov, (clean - low_clean) * fov)
    else:
        detail = 2.0 * pinball((out - low_out) * fov, (clean - low_clean) * fov, detail_quantile)
    keep = charbonnier(low_out * fov, blur(restored, split_sigma) * fov)
    zero = detail * 0.0
    parts = {"detail": detail, "keep_low": keep,
             "ridge": ridge_loss(out * fov, clean * fov) if w_ridge else zero,
             "contrast_match": contrast_match_loss(out * fov, clean * fov, contrast_fine_sigma) if w_contrast_match
             else zero,
             "band": band_loss(out * fov, clean * fov, tuple(band_sigmas)) if w_band else zero}
    total = (detail + w_keep_low * keep + w_ridge * parts["ridge"] + w_contrast_match * parts["contrast_match"]
             + w_band * parts["band"])
    return total, parts


class RefinerTrainer(TrainingRun):
    def __init__(self, cfg: RefinerConfig, log: Callable[[str], None] = print) -> None:
        model, self.model_kwargs = denoiser_network(cfg)
        super().__init__(cfg, model, log)
        train_pool, self.val_pool = held_out_pool(cfg, log)
        paths = restored_pairs(train_pool + self.val_pool, cfg.restorer, Path(cfg.pairs_dir), cfg.seed,
                               (cfg.scale_min, cfg.scale_max), cfg.family_probability, cfg.identity_fraction,
                               cfg.threads, log)
        pairs = [load_pair(p) for p in paths]
        self.n_train = len(train_pool)
        self.dataset = RefinePairDataset(pairs[: self.n_train], cfg.crop, cfg.seed)
        # The held-out photographs whole, with what does not change between validations worked out once: the
        # clean photograph's detail and the restorer's own scores.
        self.val_pairs: list[tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]] = []
        theirs, theirs_hp = [], []
        for restored16, clean8, mask in pairs[self.n_train:]:
            restored, clean = as_float(restored16, clean8)
            x = torch.from_numpy(np.ascontiguousarray(restored.transpose(2, 0, 1)))[None]
            hp_c = self.detail(torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None])
            self.val_pairs.append((x, clean, mask, hp_c))
            theirs.append(psnr(restored, clean, mask))
            theirs_hp.append(psnr(self.detail(x) + 0.5, hp_c + 0.5, mask))
        self.restorer_scores = {"restorer_psnr": float(np.mean(theirs)),
                                "restorer_detail_psnr": float(np.mean(theirs_hp))}

    def detail(self, t: torch.Tensor) -> np.ndarray:
        """A 1 x 3 x H x W tensor's detail above ``split_sigma``, H x W x 3."""
        return (t - blur(t, self.cfg.split_sigma))[0].numpy().transpose(1, 2, 0)

    def describe(self) -> str:
        return (f"{self.n_train} training, {len(self.val_pool)} validation photographs "
                f"({', '.join(p.path.name for p in self.val_pool)}); restorer {self.cfg.restorer}")

    def loss(self, restored: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        return refine_loss(self.model(restored), restored, clean, c.split_sigma, c.w_keep_low, c.w_ridge,
                           c.w_contrast_match, c.contrast_fine_sigma, c.w_band, tuple(c.band_sigmas),
                           c.detail_quantile)

    def train_step(self, restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:  # type: ignore[override]
        self.set_lr()
        if self.cfg.channels_last:
            restored = restored.contiguous(memory_format=torch.channels_last)
        loss, parts = self.loss(restored, clean)
        self.optimise(loss)
        return self.end_step(loss, parts)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """On the held-out photographs, whole: PSNR inside the FOV of the refined and of the restorer's output,
        and of their detail alone (above ``split_sigma``), where the refiner works."""
        ours, ours_hp = [], []
        for x, clean, mask, hp_c in self.val_pairs:
            out = self.ema(x).clamp(0, 1)
            ours.append(psnr(out[0].numpy().transpose(1, 2, 0), clean, mask))
            ours_hp.append(psnr(self.detail(out) + 0.5, hp_c + 0.5, mask))
        return {"psnr": float(np.mean(ours)), "detail_psnr": float(np.mean(ours_hp)), **self.restorer_scores}

    def ema_metadata(self) -> dict[str, Any]:
        return self.weights_metadata(self.model_kwargs, trained_on=f"outputs of {self.cfg.restorer} on real "
                                     "degradations, against the clean photographs",
                                     validation_photographs=[p.path.name for p in self.val_pool])

