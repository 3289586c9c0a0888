"""Learnt cataract degradation: a trained Catintell-Syn generator turns a good photograph into a cataract-like one.

Unlike the physics models this needs torch (``train`` extra). The generator runs
at the FOV size it was trained at, so a 2048 px photograph is hazed like a
512 px one (the learnt blur and haze are in pixels of the training scale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

# The learnt effect is scaled by a random strength so one generator gives a range of severities
# (the generator itself is deterministic: one good image -> one cataract image).
STRENGTH_RANGE = (0.6, 1.2)


class SynDegrader:
    """``syn(img, mask, rng) -> (degraded, params)`` for float RGB [0, 1] images."""

    def __init__(self, model_ref: str | Path) -> None:
        from ftrt.models.pretrained import load_model

        self.model, meta = load_model(str(model_ref))
        if meta.get("role") != "syn":
            raise ValueError(f"{model_ref}: not a Catintell-Syn generator (train one with `ftrt train syn`)")
        self.work_side = int(meta.get("work_side") or 256)
        self.model_id = str(meta.get("weights"))

    def __call__(self, img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        import torch

        strength = float(rng.uniform(*STRENGTH_RANGE))
        h, w = img.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        small = img if scale == 1.0 else cv2.resize(img, (max(32, round(w * scale)), max(32, round(h * scale))),
                                                    interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1), dtype=np.float32))[None]
            y = self.model(x)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
        fake = y if scale == 1.0 else cv2.resize(y, (w, h), interpolation=cv2.INTER_LINEAR)
        base = img if scale == 1.0 else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        # Below the training scale the output is blurred by the resampling anyway; keep the input's own
        # resampled copy as the base so strength < 1 interpolates between two equally sharp images.
        out = np.clip(base + strength * (fake - base), 0, 1) * mask[..., None]
        return out.astype(np.float32), {"model": self.model_id, "strength": strength, "work_side": self.work_side}
