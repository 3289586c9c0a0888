"""Helpers shared by the degradation models: size-relative blur and smooth shapes."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Sizes in the papers are quoted for ~512 px photographs; everything scales from here.
REFERENCE_SIDE = 512.0


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur whose kernel spans +-4 sigma (the public Cofe-Net code truncates it)."""
    if sigma <= 0:
        return img.copy()
    k = 2 * int(math.ceil(4.0 * sigma)) + 1
    return cv2.GaussianBlur(img, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def radial_distance(shape: tuple[int, int], cy: float, cx: float) -> np.ndarray:
    h, w = shape
    yy = (np.arange(h, dtype=np.float32) - np.float32(cy))[:, None]
    xx = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, :]
    return np.sqrt(yy * yy + xx * xx)


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / max(edge1 - edge0, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def luminance(img: np.ndarray) -> np.ndarray:
    return img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def color_jitter(img: np.ndarray, brightness: float, contrast: float, saturation: float,
                 mask: np.ndarray) -> np.ndarray:
    """PIL-ImageEnhance-style brightness, contrast (about the FOV mean grey) and saturation."""
    out = img * brightness
    grey_mean = float(luminance(out)[mask].mean()) if mask.any() else float(luminance(out).mean())
    out = grey_mean + (out - grey_mean) * contrast
    grey = luminance(out)[..., None]
    out = grey + (out - grey) * saturation
    return np.clip(out, 0.0, 1.0)


def f(x: float) -> float:
    """Round a sampled parameter for the JSON record without losing reproducibility (the value used is the rounded one)."""
    return float(round(x, 6))
