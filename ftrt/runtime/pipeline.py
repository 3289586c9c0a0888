"""The fundus pipeline, one for every backend: image -> preprocess -> backend -> postprocess -> image.

preprocess: FOV mask, crop to its bounding box, optional working resolution.
backend:    whole image, or tiles with feathered overlap above ``tile`` pixels.
postprocess: back to the crop's resolution, scale the correction by the strength and fade it out at the
             FOV's rim, clip, paste into the frame, zero outside the FOV.

At a reduced working resolution only the *correction* (restored minus input)
is upsampled and added to the full-resolution photograph, so the native
resolution detail of the camera survives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ftrt.fov import fov_mask, mask_bbox
from ftrt.runtime.backends.base import Backend
from ftrt.runtime.tiles import run_tiled

# Beyond this the correction is mostly its own artefacts amplified; a larger value is a typo, not a wish.
MAX_STRENGTH = 4.0


@dataclass
class PipelineConfig:
    # None: the model's own working resolution (metadata ``work_side``); 0: always native resolution.
    max_side: int | None = None
    tile: int | None = 1024
    overlap: int = 64
    # The restorer's correction fades to nothing over this share of the FOV's size at its rim. A restorer
    # taught to sharpen sees the FOV's edge as the strongest step in the photograph and overshoots into a
    # bright ring (measured: +12 grey levels 2-8 px inside the edge of a 768 px photograph); the rim holds
    # no retina to restore. 0: off.
    rim: float = 0.03
    # How much of the restorer's correction (restored minus input) is applied: 1 as trained, 0 the input,
    # above 1 extrapolated. None: the model file's metadata ``strength`` where it carries one (a packager's
    # choice; no shipped model does, since a gain above 1 lost vessels on validation: docs/models.md), else 1.
    # A clinic may want a gentler restoration than the one the selection split favoured, without a new model.
    strength: float | None = None


@dataclass
class RestoreResult:
    image: np.ndarray
    mask: np.ndarray
    ms: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def rim_fade(mask: np.ndarray, rim: float) -> np.ndarray | None:
    """0 at the FOV's edge rising linearly to 1 at ``rim`` x the FOV's short side inside it; None when there
    is nothing to fade (no rim asked for, or no FOV edge: a mask that fills the frame)."""
    width = rim * min(mask.shape)
    if width < 1 or mask.all():
        return None
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(dist / np.float32(width), 0.0, 1.0).astype(np.float32)


class FundusPipeline:
    def __init__(self, backend: Backend, config: PipelineConfig | None = None) -> None:
        self.backend = backend
        self.config = config or PipelineConfig()
        if self.config.tile is not None and self.config.tile < 2 * self.config.overlap:
            raise ValueError(f"tile {self.config.tile} must be at least twice the overlap {self.config.overlap}")
        if self.config.strength is not None and not 0.0 <= self.config.strength <= MAX_STRENGTH:
            raise ValueError(f"strength {self.config.strength} is outside 0-{MAX_STRENGTH:g}")

    @property
    def work_side(self) -> int | None:
        if self.config.max_side is not None:
            return self.config.max_side or None
        return int(self.backend.info.metadata.get("work_side", 0) or 0) or None

    @property
    def strength(self) -> float:
        if self.config.strength is not None:
            return float(self.config.strength)
        raw = self.backend.info.metadata.get("strength")
        try:
            value = float(raw) if raw not in (None, "") else 1.0
        except (TypeError, ValueError):
            raise ValueError(f"model metadata strength={raw!r} is not a number") from None
        if not 0.0 <= value <= MAX_STRENGTH:  # metadata is untrusted input: a wild gain would wreck every photograph
            raise ValueError(f"model metadata strength={value} is outside 0-{MAX_STRENGTH:g}")
        return value

    def _infer(self, img: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        return self.backend.run(x)[0].transpose(1, 2, 0)

    def restore(self, img: np.ndarray) -> RestoreResult:
        ms: dict[str, float] = {}
        t0 = time.perf_counter()
        h, w = img.shape[:2]
        min_side = max(self.backend.min_side, 32)
        if min(h, w) < min_side:
            raise ValueError(f"image is {w}x{h} px; the model needs at least {min_side} px on each side")
        mask = fov_mask(img)
        y0, y1, x0, x1 = mask_bbox(mask)
        if min(y1 - y0, x1 - x0) < min_side:
            # A tiny detected FOV is a detection failure, not a tiny fundus: use the whole frame.
            mask = np.ones((h, w), bool)
            y0, y1, x0, x1 = 0, h, 0, w
        crop = img[y0:y1, x0:x1] * mask[y0:y1, x0:x1, None]
        work = crop
        ms_ = self.work_side
        if ms_ and max(crop.shape[:2]) > ms_:
            s = ms_ / max(crop.shape[:2])
            size = (max(min_side, round(crop.shape[1] * s)), max(min_side, round(crop.shape[0] * s)))
            work = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        t1 = time.perf_counter()
        ms["preprocess"] = (t1 - t0) * 1e3
        tile = self.config.tile
        tiled = bool(tile and max(work.shape[:2]) > tile)
        notice = None
        side = self.backend.max_square_side()
        if side is not None and not self.backend.supports_shape((1, 3, *work.shape[:2])):
            # An engine is built for bounded shapes: tile what falls outside its profiles rather than fail.
            tile, tiled = min(tile or side, side), True
            notice = f"{work.shape[1]}x{work.shape[0]} px is outside the engine's profiles: tiled at {side} px"
        if tiled:
            assert tile is not None
            out = run_tiled(work, self._infer, tile, self.config.overlap)
        else:
            out = self._infer(work)
        t2 = time.perf_counter()
        ms["infer"] = (t2 - t1) * 1e3
        if work.shape != crop.shape:
            delta = cv2.resize(out - work, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_CUBIC)
            out = crop + delta
        fade = rim_fade(mask[y0:y1, x0:x1], self.config.rim)
        gain = self.strength
        if fade is not None:
            out = crop + (out - crop) * (gain * fade[..., None])
        elif gain != 1.0:
            out = crop + (out - crop) * gain
        out = np.clip(out, 0.0, 1.0)
        frame = np.zeros_like(img, dtype=np.float32)
        frame[y0:y1, x0:x1] = out
        frame *= mask[..., None]
        ms["postprocess"] = (time.perf_counter() - t2) * 1e3
        info: dict[str, Any] = {"fov_bbox": [y0, y1, x0, x1], "work_shape": list(work.shape[:2]), "tiled": tiled}
        if gain != 1.0:
            info["strength"] = gain
        if notice:
            info["notice"] = notice
        return RestoreResult(frame, mask, ms, info)
