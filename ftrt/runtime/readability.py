"""Readability scoring on the torch-free runtime: FOV-cropped input, four probabilities per image.

The same ``classifier_input`` feeds training, export checks and every backend,
so a photograph is scored identically wherever it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import cv2
import numpy as np

from ftrt.fov import fov_mask, mask_bbox
from ftrt.runtime.backends.base import Backend

DEFAULT_LABELS = ("valid", "macula", "disc", "retina")
DEFAULT_THRESHOLD = 0.5


def square_fov_crop(img: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The FOV's bounding box, zero outside the FOV, padded with black to a centred square.

    Returns the square and the image coordinates (y, x) of its top-left corner,
    so that points in the photograph can be mapped onto the classifier input.
    """
    mask = fov_mask(img)
    y0, y1, x0, x1 = mask_bbox(mask)
    if min(y1 - y0, x1 - x0) < 16:
        # No usable FOV (a non-fundus picture, a blank frame): score the whole frame as it is.
        y0, y1, x0, x1 = 0, img.shape[0], 0, img.shape[1]
        mask = np.ones(img.shape[:2], bool)
    crop = img[y0:y1, x0:x1] * mask[y0:y1, x0:x1, None]
    h, w = crop.shape[:2]
    side = max(h, w)
    out = np.zeros((side, side, 3), np.float32)
    oy, ox = (side - h) // 2, (side - w) // 2
    out[oy:oy + h, ox:ox + w] = crop
    return out, (y0 - oy, x0 - ox)


def square_to_input(sq: np.ndarray, side: int = 224) -> np.ndarray:
    """A square crop -> 3 x side x side float32."""
    interp = cv2.INTER_AREA if sq.shape[0] > side else cv2.INTER_LINEAR
    small = cv2.resize(sq, (side, side), interpolation=interp)
    return np.ascontiguousarray(np.clip(small, 0, 1).transpose(2, 0, 1), dtype=np.float32)


def classifier_input(img: np.ndarray, side: int = 224) -> np.ndarray:
    """HxWx3 float RGB in [0,1] -> 3 x side x side float32, as the classifier was trained."""
    return square_to_input(square_fov_crop(img)[0], side)


@dataclass(frozen=True)
class Readability:
    probs: dict[str, float]
    # Per-label decision thresholds (fitted on the training split, stored in the model's metadata).
    thresholds: dict[str, float] = field(default_factory=dict)

    def holds(self, label: str) -> bool:
        return self.probs.get(label, 0.0) >= self.thresholds.get(label, DEFAULT_THRESHOLD)

    @property
    def valid(self) -> bool:
        return "valid" not in self.probs or self.holds("valid")

    @property
    def readable(self) -> bool:
        return self.valid and self.holds("retina")

    def as_dict(self) -> dict[str, float | bool]:
        return {**{k: round(v, 4) for k, v in self.probs.items()}, "readable": self.readable}


class ReadabilityScorer:
    """Wraps an opened backend that holds a readability model (ONNX or safetensors)."""

    def __init__(self, backend: Backend, threshold: float | None = None) -> None:
        meta = backend.info.metadata
        if meta.get("model") not in (None, "", "readability"):
            raise ValueError(f"{meta.get('preset', 'this model')} is a {meta['model']} model, not a readability "
                             "classifier")
        self.backend = backend
        self.labels = tuple(meta.get("labels", ",".join(DEFAULT_LABELS)).split(","))
        fitted = json.loads(meta.get("thresholds") or "{}")
        # An explicit threshold overrides the model's own for every label.
        self.thresholds = {k: threshold if threshold is not None else float(fitted.get(k, DEFAULT_THRESHOLD))
                           for k in self.labels}
        self.side = int(meta.get("input_side", 224))

    def score_batch(self, images: list[np.ndarray]) -> list[Readability]:
        if not images:
            return []
        x = np.stack([classifier_input(im, self.side) for im in images])
        probs = np.asarray(self.backend.run(x), dtype=np.float64)
        if probs.shape != (len(images), len(self.labels)):
            raise ValueError(f"classifier returned shape {probs.shape}, expected {(len(images), len(self.labels))}")
        return [Readability(dict(zip(self.labels, map(float, row))), self.thresholds) for row in probs]

    def score(self, img: np.ndarray) -> Readability:
        return self.score_batch([img])[0]
