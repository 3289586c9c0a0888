"""Field-of-view (FOV) mask of a fundus photograph.

The circular FOV is what every metric, degradation and output is restricted to:
the black corners carry no information and would inflate PSNR.
"""

from __future__ import annotations

import cv2
import numpy as np


def fov_mask(img: np.ndarray, threshold: float | None = None, erode_frac: float = 0.0) -> np.ndarray:
    """Boolean HxW mask of the fundus field of view.

    Threshold the brightest channel, keep the largest connected component and
    fill its holes. ``threshold`` defaults to a fraction of the image's dynamic
    range so that dim (cataract) photographs are still found. An image without
    a dark surround (a full-frame crop) yields a full mask.
    """
    if img.ndim == 3:
        lum = img.max(axis=2)
    else:
        lum = img
    lum = lum.astype(np.float32)
    if lum.max() > 1.5:
        lum = lum / (65535.0 if lum.max() > 255 else 255.0)
    if threshold is None:
        hi = float(np.percentile(lum, 99))
        threshold = max(0.02, 0.12 * hi)
    # Smoothing first removes JPEG noise in the black border that would otherwise bridge components.
    k = max(3, (min(lum.shape) // 150) | 1)
    smooth = cv2.medianBlur((np.clip(lum, 0, 1) * 255).astype(np.uint8), k)
    binary = (smooth > threshold * 255).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.ones(lum.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (labels == largest).astype(np.uint8)
    comp = _fill_holes(comp)
    if erode_frac > 0:
        r = max(1, int(round(erode_frac * min(lum.shape))))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        comp = cv2.erode(comp, kernel)
    return comp.astype(bool)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill interior holes (dark lesions, vessels at the rim) by flooding the background from outside."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the mask's bounding box, end-exclusive."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return 0, mask.shape[0], 0, mask.shape[1]
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
