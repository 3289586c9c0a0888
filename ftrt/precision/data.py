"""Calibration images: real fundus photographs, FOV-cropped, at the shapes the engine will run.

Selection is deterministic (a hash of seed and file name, independent of the
order a folder lists in), and the images left over after the calibration
selection are the report's held-out set, so no image is used for both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ftrt.fov import fov_mask, mask_bbox
from ftrt.io import ImageReadError, collect_inputs, read_image
from ftrt.shapes import parse_shape

__all__ = ["CalibrationDataError", "FundusCalibrationReader", "fundus_crop", "ordered_images", "parse_shape",
           "select_images"]

MIN_FOV_FRACTION = 0.2


class CalibrationDataError(ValueError):
    """No usable calibration images: calibration never runs silently on nothing."""


def ordered_images(sources: list[str], seed: int = 0) -> list[Path]:
    """Every image under ``sources`` in a fixed pseudo-random order keyed by (seed, file name)."""
    files = collect_inputs(sources)
    return sorted(files, key=lambda p: hashlib.sha1(f"{seed}:{p.name}".encode()).hexdigest())


def fundus_crop(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """FOV bounding box resized to ``shape`` (H, W), zero outside the FOV; 3 x H x W float32."""
    mask = fov_mask(img)
    y0, y1, x0, x1 = mask_bbox(mask)
    crop = img[y0:y1, x0:x1] * mask[y0:y1, x0:x1, None]
    out = cv2.resize(crop, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.clip(out, 0, 1).transpose(2, 0, 1), dtype=np.float32)


@dataclass
class Selection:
    used: list[Path] = field(default_factory=list)
    rest: list[Path] = field(default_factory=list)  # not used for calibration: the report's held-out pool
    rejected: list[str] = field(default_factory=list)  # one line per file: why it was not used


def is_fundus(img: np.ndarray, scorer: object | None = None) -> str | None:
    """None when ``img`` looks like a fundus photograph, else the reason it does not."""
    mask = fov_mask(img)
    if mask.mean() < MIN_FOV_FRACTION or mask.all():
        return f"no fundus field of view found (FOV covers {mask.mean():.0%} of the frame)"
    if scorer is not None:
        r = scorer.score(img)  # type: ignore[attr-defined]
        if not r.valid:
            return f"not a fundus photograph (readability valid p={r.probs['valid']:.2f})"
    return None


def select_images(sources: list[str], num: int, seed: int = 0, scorer: object | None = None) -> Selection:
    """The first ``num`` usable fundus photographs in :func:`ordered_images` order."""
    sel = Selection()
    for path in ordered_images(sources, seed):
        if len(sel.used) >= num:
            sel.rest.append(path)
            continue
        try:
            img, _ = read_image(path)
        except ImageReadError as exc:
            sel.rejected.append(str(exc))
            continue
        reason = is_fundus(img, scorer)
        if reason:
            sel.rejected.append(f"{path}: {reason}")
        else:
            sel.used.append(path)
    if not sel.used:
        detail = "; ".join(sel.rejected[:3]) or "no image files found"
        raise CalibrationDataError(f"no usable fundus photographs for calibration ({detail})")
    return sel


class FundusCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader``: every selected image at every shape, in chunks.

    ``chunks()`` yields readers of ``chunk`` samples each: the histogram
    calibrators keep every intermediate tensor of a ``collect_data`` call in
    memory, so feeding them a few samples at a time bounds the peak.
    """

    def __init__(self, paths: list[Path], shapes: list[tuple[int, int]], input_name: str = "image",
                 progress: bool = True) -> None:
        self.paths, self.shapes, self.input_name = paths, shapes, input_name
        self.progress = progress

    def __len__(self) -> int:
        return len(self.paths) * len(self.shapes)

    def samples(self) -> Iterator[dict[str, np.ndarray]]:
        from tqdm import tqdm

        with tqdm(total=len(self), desc="calibrate", unit="sample", disable=not self.progress) as bar:
            for path in self.paths:
                img, _ = read_image(path)
                for shape in self.shapes:
                    yield {self.input_name: fundus_crop(img, shape)[None]}
                    bar.update(1)

    def chunks(self, chunk: int) -> Iterator[_ListReader]:
        buf: list[dict[str, np.ndarray]] = []
        for s in self.samples():
            buf.append(s)
            if len(buf) == chunk:
                yield _ListReader(buf)
                buf = []
        if buf:
            yield _ListReader(buf)


class _ListReader:
    """The minimal reader interface ``collect_data`` calls: ``get_next()`` until None."""

    def __init__(self, items: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)
