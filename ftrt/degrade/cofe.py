"""Cofe-Net degradation model (Shen et al., IEEE TMI 2021), own implementation.

Illumination (global colour, halo ring, dark blob) -> artifact spots -> blur
(-> noise), multiplied by the FOV mask. Every size is a fraction of the image,
so a 512 px and a 2048 px photograph degrade alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ftrt.degrade.common import (
    REFERENCE_SIDE,
    color_jitter,
    f,
    gaussian_blur,
    radial_distance,
    smoothstep,
)


def sample_cofe(rng: np.random.Generator, shape: tuple[int, int], noise: bool = True) -> dict[str, Any]:
    h, w = shape
    side = min(h, w)
    scale = side / REFERENCE_SIDE
    n_spots = int(rng.integers(5, 11))
    return {
        "brightness": f(rng.uniform(0.7, 1.2)),
        "contrast": f(rng.uniform(0.6, 1.4)),
        "saturation": f(rng.uniform(0.6, 1.4)),
        "halo": {
            "cy": f(h / 2 + rng.uniform(-1, 1) * h / 8),
            "cx": f(w / 2 + rng.uniform(-1, 1) * w / 8),
            "inner_diameter": f(rng.uniform(0.75, 1.0) * side),
            "width": f(rng.uniform(0.1, 0.3) * side),
            "strength": f(rng.uniform(0.1, 0.4)),
        },
        "blob": {
            "cy": f(rng.uniform(0.2, 0.8) * h),
            "cx": f(rng.uniform(0.2, 0.8) * w),
            "diameter": f(rng.uniform(0.4, 0.7) * w),
            "strength": f(rng.uniform(0.2, 0.6)),
        },
        "spots": [
            {
                "cy": f(rng.uniform(0.15, 0.85) * h),
                "cx": f(rng.uniform(0.15, 0.85) * w),
                "size": f(rng.uniform(0.01, 0.05) * h),
                "strength": f(rng.uniform(0.05, 0.25)),
            }
            for _ in range(n_spots)
        ],
        "blur_sigma": f(rng.uniform(0.5, 4.0) * scale),
        "noise_sigma": f(rng.uniform(0.0, 0.02)) if noise else 0.0,
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
    }


def _add_spot(canvas: np.ndarray, s: dict[str, Any]) -> None:
    """Add one Gaussian spot, evaluated only inside its +-4 sigma window (spots are tiny)."""
    h, w = canvas.shape
    sigma = s["size"] / 2
    r = int(np.ceil(4 * sigma))
    y0, y1 = max(0, int(s["cy"]) - r), min(h, int(s["cy"]) + r + 1)
    x0, x1 = max(0, int(s["cx"]) - r), min(w, int(s["cx"]) + r + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d2 = (yy - s["cy"]) ** 2 + (xx - s["cx"]) ** 2
    canvas[y0:y1, x0:x1] += s["strength"] * np.exp(-0.5 * d2 / sigma**2)


def apply_cofe(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    h, w = img.shape[:2]
    out = color_jitter(img, p["brightness"], p["contrast"], p["saturation"], mask)

    halo = p["halo"]
    r = radial_distance((h, w), halo["cy"], halo["cx"])
    r_in = halo["inner_diameter"] / 2
    # Light leaking at the rim of the pupil: a bright ring that fades inwards over `width`.
    ring = smoothstep(r_in - halo["width"], r_in, r)
    out = out + halo["strength"] * ring[..., None] * (1.0 - out)

    blob = p["blob"]
    rb = radial_distance((h, w), blob["cy"], blob["cx"])
    sigma_b = blob["diameter"] / 4
    dark = np.exp(-0.5 * (rb / sigma_b) ** 2)
    out = out * (1.0 - blob["strength"] * dark[..., None])

    spots = np.zeros((h, w), np.float32)
    for s in p["spots"]:
        _add_spot(spots, s)
    out = out + np.clip(spots, 0, 1)[..., None] * (1.0 - out)

    out = gaussian_blur(np.ascontiguousarray(out, dtype=np.float32), p["blur_sigma"])
    if p["noise_sigma"] > 0:
        noise_rng = np.random.default_rng(p["noise_seed"])
        out = out + noise_rng.normal(0.0, p["noise_sigma"], out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0) * mask[..., None]
