"""``ftrt train syn``: the Catintell-Syn generator, good -> cataract-like, learnt from unpaired real cataract photos.

Loss (Catintell paper, eq. 5): 0.01 SmoothL1(G(good), good) keeps the structure,
the fundus perceptual term keeps features, 0.1 identity (G(cataract) = cataract)
stops it from hazing what is already hazy, 0.1 least-squares GAN against real
cataract crops. The generator is small on purpose (C=16, 3 stages): too weak to
invent lesions, strong enough for colour, haze and blur.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ftrt.io import write_json_atomic
from ftrt.models import build_model
from ftrt.models.pretrained import restore_array
from ftrt.realism import colour_features
from ftrt.models.registry import preset_kwargs
from ftrt.training.config import SynConfig
from ftrt.training.data import UnpairedCropDataset, load_pool, split_pool
from ftrt.training.loop import TrainingRun
from ftrt.training.losses import gan_generator_loss, pixel_loss


class SynTrainer(TrainingRun):
    def __init__(self, cfg: SynConfig, perceptual: torch.nn.Module | None = None,
                 log: Callable[[str], None] = print) -> None:
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.model_kwargs = preset_kwargs(cfg.model)
        super().__init__(cfg, build_model(cfg.model), log)
        self.disc = build_model("patch-d")
        self.extra["disc"] = self.disc
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.99))
        self.perceptual = self.perceptual_loss(perceptual)
        good, errs_g = load_pool(cfg.good, cfg.side, square=True)
        cat, errs_c = load_pool(cfg.cataract, cfg.side, square=True)
        for e in errs_g + errs_c:
            log(f"warning: {e}")
        self.good, self.val_good = split_pool(good, cfg.val_images, cfg.seed)
        self.cat, self.val_cat = split_pool(cat, cfg.val_images, cfg.seed)
        self.dataset = UnpairedCropDataset(self.good, self.cat, cfg.crop, cfg.seed)

    def describe(self) -> str:
        return (f"{len(self.good)} good and {len(self.cat)} real cataract training images, "
                f"{len(self.val_good)}+{len(self.val_cat)} for validation")

    def train_step(self, good: torch.Tensor, cataract: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        self.set_lr()
        y = self.model(torch.cat([good, cataract]))
        fake, ident = y[: good.shape[0]], y[good.shape[0]:]
        terms = {"pixel": pixel_loss(fake, good), "identity": pixel_loss(ident, cataract),
                 "gan": gan_generator_loss(self.disc(fake))}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(fake, good)
        weights = {"pixel": cfg.w_pixel, "identity": cfg.w_identity, "gan": cfg.w_gan,
                   "perceptual": cfg.w_perceptual}
        loss = sum(weights[k] * v for k, v in terms.items())
        self.optimise(loss)
        terms["disc"] = self.critic_step(self.disc, self.opt_d, cataract, fake)
        return self.end_step(loss, terms)

    def validate(self) -> dict[str, float]:
        """How far the synthetic set's FOV colour statistics are from the real cataract set's (lower is
        better), next to the input's own distance, and how well the identity term holds."""
        if not self.val_good or not self.val_cat:
            return {}

        def mean_stats(images: list[np.ndarray]) -> np.ndarray:
            return np.mean([colour_features(i) for i in images], axis=0)

        good = [g.float() * g.mask[..., None] for g in self.val_good]
        cat = [c.float() * c.mask[..., None] for c in self.val_cat]
        real = mean_stats(cat)
        fake = mean_stats([restore_array(self.ema, g) * m.mask[..., None] for g, m in zip(good, self.val_good)])
        ident = [float(np.abs(restore_array(self.ema, c) - c).mean()) for c in cat]
        return {"colour_gap_syn": float(np.abs(fake - real).mean()),
                "colour_gap_good": float(np.abs(mean_stats(good) - real).mean()),
                "identity_l1": float(np.mean(ident))}

    def finish(self) -> dict[str, Any]:
        cfg = self.cfg
        meta = self.weights_metadata(
            self.model_kwargs, role="syn", work_side=cfg.side,
            losses={k: getattr(cfg, k) for k in ("w_pixel", "w_perceptual", "w_identity", "w_gan")})
        final = self.save_final(meta)
        card = {**meta, "task": "Catintell-Syn: good fundus photograph -> cataract-like (a learnt degradation)",
                "training": {"good": by_folder(cfg.good), "cataract": by_folder(cfg.cataract), "n_good": len(self.good),
                             "n_cataract": len(self.cat), "batch_size": cfg.batch_size, "crop": cfg.crop,
                             "lr": cfg.lr, "lr_d": cfg.lr_d, "discriminator": "patch-d (spectral norm, LSGAN)",
                             "ema_decay": cfg.ema_decay, "seed": cfg.seed},
                "validation_history": self.history}
        write_json_atomic(self.out / "card.json", card)
        return {"weights": str(final), **meta}


def by_folder(sources: list[str]) -> dict[str, int]:
    """How many of the given files (or folders, globs) came from each folder: a card names its data sources
    without listing hundreds of paths."""
    from collections import Counter

    from ftrt.io import collect_inputs

    return dict(sorted(Counter(str(p.parent) for p in collect_inputs(sources)).items()))
