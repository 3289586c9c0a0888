"""``ftrt train restorer`` for MAGE-Net (presets ``mage-s``, ``mage``): both stages and the vessel segmenter.

Per the paper: Charbonnier + edge loss (eps 0.001) on each enhancement stage, the retinal-structure
segmenter supervised at four scales by vessel annotations (weight 0.5), and, with ``real_lq``, the mean
teacher's consistency per enhancement stage and per segmentation scale on real low-quality photographs
(student and teacher see differently perturbed copies, Gaussian noise included). The pixel term follows
the run's ``mean_free_pixel`` choice, as for the dense U-Net (see losses.mean_free_pixel_loss).
"""

from __future__ import annotations

from typing import Callable

import torch

from ftrt.models.mage import MAGENet, MageOutputs
from ftrt.training.config import RestorerConfig
from ftrt.training.losses import (
    charbonnier,
    consistency_loss,
    edge_loss,
    keep_mean_loss,
    mean_free_pixel_loss,
    perturb,
    vessel_loss,
)
from ftrt.training.restorer import RestorerTrainer


class MageTrainer(RestorerTrainer):
    """Paired training of MAGE-Net; the rest (data, EMA, validation, checkpoints) is the restorer's."""

    needs_vessels = True

    def __init__(self, cfg: RestorerConfig, log: Callable[[str], None] = print) -> None:
        super().__init__(cfg, log=log)
        if not isinstance(self.model, MAGENet):
            raise ValueError(f"{cfg.model} is not a MAGE-Net preset")
        if self.n_labelled == 0:
            log("warning: no vessel annotations matched the training photographs: the structure segmenter "
                "is trained by the mean teacher only (set vessel_masks)")

    def describe(self) -> str:
        return f"{super().describe()}, {self.n_labelled} with vessel annotations"

    def stage_losses(self, out: MageOutputs, n: int, gt: torch.Tensor, lq: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        pix = mean_free_pixel_loss if cfg.mean_free_pixel else charbonnier
        terms = {"pixel": sum(pix(y[:n], gt) for y in (out.stage1, out.stage2)),
                 "edge": sum(edge_loss(y[:n], gt) for y in (out.stage1, out.stage2))}
        if cfg.w_keep_mean:
            terms["keep_mean"] = keep_mean_loss(out.stage2[:n], lq)
        # Detail terms (not the paper's) on what ships, stage 2's image.
        terms.update(self.detail_terms(out.stage2[:n], gt, lq))
        return terms

    def train_step(self, lq: torch.Tensor, gt: torch.Tensor, vessels: torch.Tensor,  # type: ignore[override]
                   real: torch.Tensor | None = None) -> dict[str, float]:
        cfg = self.cfg
        self.set_lr()
        n = lq.shape[0]
        batch, n_id, gen = self.step_batch(lq, gt, real)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model.forward_all(batch)  # type: ignore[operator]
        out = MageOutputs(out.stage1.float(), out.stage2.float(), [v.float() for v in out.vessel_logits])
        terms = self.stage_losses(out, n, gt, lq)
        if n_id:
            terms["identity"] = sum(charbonnier(y[n:n + n_id], gt[:n_id]) for y in (out.stage1, out.stage2))
        # The segmenter sees stage 1's restoration of the degraded crop (and of the clean identity crop):
        # it learns to find the vessels a restoration keeps, and its gradient asks stage 1 to keep them.
        labelled = torch.cat([vessels, vessels[:n_id]])
        terms["seg"] = vessel_loss([v[: n + n_id] for v in out.vessel_logits], labelled)
        weights = {"pixel": cfg.w_pixel, "edge": cfg.w_edge, "identity": cfg.w_identity, "seg": cfg.w_seg,
                   "keep_mean": cfg.w_keep_mean, "consistency": self.consistency_weight(), **self.detail_weights()}
        if real is not None:
            with torch.no_grad():
                teacher = self.ema.forward_all(perturb(real, gen))  # type: ignore[operator]
            k = n + n_id
            cons = [consistency_loss(out.stage1[k:], teacher.stage1), consistency_loss(out.stage2[k:], teacher.stage2)]
            cons += [consistency_loss(torch.sigmoid(s[k:]), torch.sigmoid(t))
                     for s, t in zip(out.vessel_logits, teacher.vessel_logits)]
            terms["consistency"] = sum(cons) / len(cons)
        loss = sum(weights[k] * v for k, v in terms.items())
        self.optimise(loss)
        return self.end_step(loss, terms)
