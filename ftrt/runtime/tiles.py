"""Tiled inference with overlap and feathered blending, so memory stays bounded on huge photographs."""

from __future__ import annotations

from typing import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    if step <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than tile {tile}")
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # last tile flush with the edge, never past it
    return starts


def _ramp(length: int, start: int, end: int, total: int, overlap: int) -> np.ndarray:
    """1-D blend weights: linear ramps over the overlap on inner edges, flat on image borders."""
    w = np.ones(length, np.float32)
    r = min(overlap, length // 2)
    if r > 0:
        ramp = (np.arange(r, dtype=np.float32) + 0.5) / r
        if start > 0:
            w[:r] = ramp
        if end < total:
            w[-r:] = ramp[::-1]
    return w


def run_tiled(img: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], tile: int, overlap: int) -> np.ndarray:
    """Apply ``fn`` (HxWx3 -> HxWx3) tile by tile and blend; exact where tiles do not overlap."""
    h, w = img.shape[:2]
    acc = np.zeros(img.shape, np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    for y0 in tile_starts(h, tile, overlap):
        for x0 in tile_starts(w, tile, overlap):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            out = fn(img[y0:y1, x0:x1])
            wy = _ramp(y1 - y0, y0, y1, h, overlap)
            wx = _ramp(x1 - x0, x0, x1, w, overlap)
            wt = (wy[:, None] * wx[None, :])[..., None]
            acc[y0:y1, x0:x1] += out * wt
            weight[y0:y1, x0:x1] += wt
    return acc / np.maximum(weight, 1e-8)
