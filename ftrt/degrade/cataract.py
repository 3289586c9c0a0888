"""Peli-style cataract haze as used by ArcNet, own implementation.

D = (a - rho*T) * B + rho * T * max(B) per channel: B is the image seen through
a scattering lens (a Gaussian blur), T the normalised distance from a haze
centre, so the veil thickens away from it. Followed by a mild colour jitter.

The published recipe quotes sigma 10-30 px at 512 px, but its kernel is cut to
at most 7x7, so the blur it really applies is a near-box of 1-7 px (standard
deviation 0-2 px). We sample that effective width as an untruncated Gaussian;
a true sigma of 10-30 px would erase every vessel and make pairs no restorer
could invert.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ftrt.degrade.common import REFERENCE_SIDE, color_jitter, f, gaussian_blur, radial_distance


def sample_cataract(rng: np.random.Generator, shape: tuple[int, int]) -> dict[str, Any]:
    h, w = shape
    scale = min(h, w) / REFERENCE_SIDE
    return {
        "a": f(rng.uniform(0.8, 0.95)),
        "rho": f(rng.uniform(0.6, 0.8)),
        "blur_sigma": f(rng.uniform(0.5, 2.5) * scale),
        "cy": f(h / 2 + rng.uniform(-0.3, 0.3) * h),
        "cx": f(w / 2 + rng.uniform(-0.3, 0.3) * w),
        "brightness": f(rng.uniform(0.9, 1.0)),
        "contrast": f(rng.uniform(0.9, 1.3)),
        "saturation": f(rng.uniform(0.9, 1.3)),
    }


def apply_cataract(img: np.ndarray, mask: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    h, w = img.shape[:2]
    b = gaussian_blur(np.ascontiguousarray(img, dtype=np.float32), p["blur_sigma"])
    r = radial_distance((h, w), p["cy"], p["cx"])
    rmax = float(r[mask].max()) if mask.any() else float(r.max())
    t = np.clip(r / max(rmax, 1e-6), 0.0, 1.0)[..., None]
    fov = b[mask] if mask.any() else b.reshape(-1, 3)
    bmax = fov.max(axis=0)
    out = (p["a"] - p["rho"] * t) * b + p["rho"] * t * bmax
    out = color_jitter(np.clip(out, 0, 1).astype(np.float32), p["brightness"], p["contrast"], p["saturation"], mask)
    return out * mask[..., None]
